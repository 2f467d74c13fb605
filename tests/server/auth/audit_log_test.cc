#include "server/auth/audit_log.h"

#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace tappa::server {
namespace {

TEST(AuditLogTest, OneJsonObjectPerLineWithTheFixedFields) {
  std::ostringstream out;
  AuditLog log(&out);
  absl::Time t = absl::FromUnixMillis(1'764'483'121'532);
  log.Record(t, "DeleteContact", "crm-sync", "c-42", absl::OkStatus(),
             "existed");
  log.Record(t, "ReloadRuleset", "ops", "rules.yaml",
             absl::InvalidArgumentError("rules.yaml:3:1: bad"));
  std::istringstream lines(out.str());
  std::string first, second, none;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  EXPECT_FALSE(std::getline(lines, none));
  EXPECT_EQ(first,
            R"({"time":"2025-11-30T06:12:01.532Z","audit":"DeleteContact",)"
            R"("key":"crm-sync","target":"c-42","result":"OK",)"
            R"("detail":"existed"})");
  nlohmann::json parsed = nlohmann::json::parse(second);
  EXPECT_EQ(parsed["result"], "INVALID_ARGUMENT");
  EXPECT_EQ(parsed["error"], "rules.yaml:3:1: bad");
}

TEST(AuditLogTest, InvalidUtf8AndQuotesStayOneValidLine) {
  std::string line = AuditLog::Line(absl::UnixEpoch(), "x", "k", "a\"b\n\xff",
                                    absl::OkStatus(), "");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded());
}

TEST(AuditLogTest, NullStreamRecordsNothing) {
  AuditLog log(nullptr);
  log.Record(absl::UnixEpoch(), "x", "k", "t", absl::OkStatus());
}

}  // namespace
}  // namespace tappa::server
