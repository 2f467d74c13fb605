// Drives the real tappactl binary through a shell pipe, checking the
// contracts people and conformance tests rely on.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

using nlohmann::json;
using ::testing::HasSubstr;

struct RunResult {
  int exit_code = -1;
  std::string out;
};

// Runs `tappactl <args>` with `input` on stdin (stderr merged into stdout
// when `merge_stderr`).
RunResult RunTappactl(const std::string& args, const std::string& input,
                      bool merge_stderr = false) {
  // ctest runs tests in parallel processes: the input file is per test.
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string in_path = absl::StrCat(::testing::TempDir(), "/tappactl_in_",
                                     info->name(), "_", getpid(), ".txt");
  {
    std::ofstream f(in_path, std::ios::binary);
    f << input;
  }
  std::string cmd = absl::StrCat(TAPPACTL_PATH, " ", args, " < ", in_path,
                                 merge_stderr ? " 2>&1" : " 2>/dev/null");
  RunResult run;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return run;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) run.out.append(buf, n);
  int status = pclose(p);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::vector<json> Lines(const std::string& out) {
  std::vector<json> lines;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    lines.push_back(json::parse(line));
  }
  return lines;
}

std::string Src(const std::string& relative) {
  return absl::StrCat(TAPPA_SOURCE_DIR, "/", relative);
}

TEST(TappactlExprTest, OneLinePerInputInOrder) {
  RunResult run = RunTappactl("expr",
                              "{\"expr\": \"1 + 2\"}\n"
                              "{\"expr\": \"x * 2u\", \"bindings\": {\"x\": "
                              "{\"uint64Value\": \"21\"}}}\n"
                              "not json\n"
                              "{\"expr\": \"1 / 0\"}\n"
                              "{\"expr\": \"[1, 'a'].exists(v, v == 'a')\"}\n"
                              "{\"expr\": \"'%s'.size()\"}\n");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<json> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], json::parse(R"({"value": {"int64Value": "3"}})"));
  EXPECT_EQ(lines[1], json::parse(R"({"value": {"uint64Value": "42"}})"));
  EXPECT_TRUE(lines[2].contains("error"));
  EXPECT_THAT(lines[3]["error"].get<std::string>(),
              HasSubstr("division by zero"));
  EXPECT_EQ(lines[4], json::parse(R"({"value": {"boolValue": true}})"));
  EXPECT_EQ(lines[5], json::parse(R"({"value": {"int64Value": "2"}})"));
}

TEST(TappactlExprTest, ValueForms) {
  RunResult run =
      RunTappactl("expr",
                  "{\"expr\": \"[1.5, 'a', b'\\\\x00', null, true]\"}\n"
                  "{\"expr\": \"{'k': 1}\"}\n"
                  "{\"expr\": \"timestamp('2009-02-13T23:31:30Z')\"}\n"
                  "{\"expr\": \"duration('1.5s')\"}\n"
                  "{\"expr\": \"type(1)\"}\n"
                  "{\"expr\": \"1.0 / 0.0\"}\n");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<json> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(lines[0], json::parse(R"({"value": {"listValue": {"values": [
      {"doubleValue": 1.5}, {"stringValue": "a"}, {"bytesValue": "AA=="},
      {"nullValue": null}, {"boolValue": true}]}}})"));
  EXPECT_EQ(lines[1], json::parse(R"({"value": {"mapValue": {"entries": [
      {"key": {"stringValue": "k"}, "value": {"int64Value": "1"}}]}}})"));
  EXPECT_EQ(lines[2], json::parse(R"({"value": {"objectValue": {
      "@type": "type.googleapis.com/google.protobuf.Timestamp",
      "value": "2009-02-13T23:31:30Z"}}})"));
  EXPECT_EQ(lines[3]["value"]["objectValue"]["@type"],
            "type.googleapis.com/google.protobuf.Duration");
  EXPECT_EQ(lines[4], json::parse(R"({"value": {"typeValue": "int"}})"));
  EXPECT_EQ(lines[5], json::parse(R"({"value": {"doubleValue": "Infinity"}})"));
}

TEST(TappactlExprTest, DisableMacrosAndUnboundIdentifiers) {
  RunResult run = RunTappactl(
      "expr",
      "{\"expr\": \"[1].all(x, x > 0)\", \"disable_macros\": true}\n"
      "{\"expr\": \"y + 1\"}\n"
      "{\"expr\": \"a.b\", \"bindings\": {\"a.b\": {\"int64Value\": 7}}}\n");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<json> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].contains("error"));
  EXPECT_TRUE(lines[1].contains("error"));
  EXPECT_EQ(lines[2], json::parse(R"({"value": {"int64Value": "7"}})"));
}

TEST(TappactlRulesTest, CheckAcceptsTheExampleAndRejectsBrokenFiles) {
  RunResult ok =
      RunTappactl("rules check " + Src("rules/examples/retail.yaml"), "");
  EXPECT_EQ(ok.exit_code, 0) << ok.out;

  std::string broken =
      absl::StrCat(::testing::TempDir(), "/broken_", getpid(), ".yaml");
  {
    std::ofstream f(broken);
    f << "phases: [awareness]\nchannels: [web]\nbogus: 1\n";
  }
  RunResult bad =
      RunTappactl("rules check " + broken, "", /*merge_stderr=*/true);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.out, HasSubstr(broken + ":3:1:"));
  EXPECT_THAT(bad.out, HasSubstr("bogus"));
}

TEST(TappactlRulesTest, EvalRanksActionsPerLineAndReportsErrors) {
  RunResult run =
      RunTappactl("rules eval " + Src("rules/examples/retail.yaml") +
                      " --placement web.home_hero --now 2026-11-24T10:00:00Z",
                  "{\"contact\": {\"id\": \"c1\", \"phase\": \"awareness\"}, "
                  "\"context\": {\"referrer\": \"instagram\"}}\n"
                  "{\"contact\": {\"phase\": \"no_such_phase\"}}\n"
                  "{\"contact\": {\"counts\": {\"no_such_counter\": 1}}}\n");
  ASSERT_EQ(run.exit_code, 0);
  std::vector<json> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["phase"], "awareness");
  EXPECT_TRUE(lines[0]["eligible"].is_array());
  EXPECT_THAT(lines[1]["error"].get<std::string>(), HasSubstr("contact.phase"));
  EXPECT_THAT(lines[2]["error"].get<std::string>(),
              HasSubstr("contact.counts.no_such_counter"));
}

TEST(TappactlTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunTappactl("", "").exit_code, 2);
  EXPECT_EQ(RunTappactl("rules eval", "").exit_code, 2);
  EXPECT_EQ(RunTappactl("expr extra", "").exit_code, 2);
}

TEST(TappactlKeygenTest, PrintsAKeyAndTheEntryWithItsSha256) {
  RunResult run =
      RunTappactl("keygen website --scopes decide,track --rate 50", "");
  ASSERT_EQ(run.exit_code, 0) << run.out;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 7u) << run.out;
  const std::string& key = lines[1];
  EXPECT_EQ(key.substr(0, 4), "tpk_");
  EXPECT_EQ(key.size(), 47u);
  EXPECT_EQ(lines[3], "  - name: website");
  EXPECT_EQ(lines[5], "    scopes: [decide, track]");
  EXPECT_EQ(lines[6], "    requests_per_second: 50");
  // The entry's hash is the key's SHA-256, as sha256sum computes it.
  std::string hash;
  FILE* p =
      popen(absl::StrCat("printf '%s' '", key, "' | sha256sum").c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[128];
  size_t n = fread(buf, 1, sizeof buf, p);
  pclose(p);
  hash.assign(buf, n);
  EXPECT_EQ(lines[4], "    sha256: " + hash.substr(0, 64));
  // A second key differs.
  RunResult again = RunTappactl("keygen website --scopes decide", "");
  EXPECT_THAT(again.out, ::testing::Not(HasSubstr(key)));
}

TEST(TappactlKeygenTest, RefusesUnknownScopesAndBadNames) {
  RunResult scope = RunTappactl("keygen web --scopes decide,fly", "", true);
  EXPECT_EQ(scope.exit_code, 2);
  EXPECT_THAT(scope.out, HasSubstr("unknown scope `fly`"));
  RunResult name = RunTappactl("keygen 'Web Site' --scopes decide", "", true);
  EXPECT_EQ(name.exit_code, 2);
  EXPECT_THAT(name.out, HasSubstr("keys[0].name"));
  EXPECT_EQ(RunTappactl("keygen web", "").exit_code, 2);
}

}  // namespace
