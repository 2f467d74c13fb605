// The ruleset's `identity:` section: namespaces, auto_link, limits and the
// merge phase rule, and their file:line:col errors.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using ::testing::HasSubstr;

constexpr char kBase[] = R"(phases: [awareness, consideration]
channels: [web]
)";

absl::StatusOr<std::shared_ptr<const Ruleset>> Load(const std::string& extra) {
  return LoadRulesetFromString(std::string(kBase) + extra, "identity.yaml");
}

TEST(IdentitySettingsTest, DefaultsWithoutTheSection) {
  auto rs = Load("");
  ASSERT_TRUE(rs.ok()) << rs.status();
  const IdentitySettings& id = (*rs)->identity;
  EXPECT_TRUE(id.IsNamespace("cookie"));
  EXPECT_TRUE(id.IsNamespace("email_sha256"));
  EXPECT_FALSE(id.IsNamespace("loyalty"));
  EXPECT_TRUE(id.AutoLinks("email_sha256"));
  EXPECT_TRUE(id.AutoLinks("crm"));
  EXPECT_FALSE(id.AutoLinks("cookie"));
  EXPECT_EQ(id.max_aliases, 50);
  EXPECT_EQ(id.max_aliases_per_namespace, 10);
  EXPECT_EQ(id.merge_phase, MergePhaseRule::kFurthest);
}

TEST(IdentitySettingsTest, ReadsEveryKey) {
  auto rs = Load(R"(identity:
  namespaces: [loyalty, store_card]
  auto_link: [loyalty, email_sha256]
  max_aliases: 20
  max_aliases_per_namespace: 3
  merge_phase: most_recent
)");
  ASSERT_TRUE(rs.ok()) << rs.status();
  const IdentitySettings& id = (*rs)->identity;
  EXPECT_TRUE(id.IsNamespace("loyalty"));
  EXPECT_TRUE(id.IsNamespace("store_card"));
  EXPECT_TRUE(id.AutoLinks("loyalty"));
  EXPECT_FALSE(id.AutoLinks("crm"));
  EXPECT_EQ(id.max_aliases, 20);
  EXPECT_EQ(id.max_aliases_per_namespace, 3);
  EXPECT_EQ(id.merge_phase, MergePhaseRule::kMostRecent);
}

TEST(IdentitySettingsTest, ErrorsNameTheirPlace) {
  auto rs = Load(R"(identity:
  namespaces: [Loyalty, cookie]
  auto_link: [nowhere]
  max_aliases: 0
  merge_phase: sideways
  colour: blue
)");
  ASSERT_FALSE(rs.ok());
  std::string message(rs.status().message());
  EXPECT_THAT(message, HasSubstr("identity.yaml:4:16: identity.namespaces: "
                                 "'Loyalty' must match"));
  EXPECT_THAT(message, HasSubstr("identity.yaml:4:25: identity.namespaces: "
                                 "'cookie' is already a namespace"));
  EXPECT_THAT(message, HasSubstr("identity.yaml:5:15: identity.auto_link: "
                                 "unknown namespace 'nowhere'"));
  EXPECT_THAT(message, HasSubstr("identity.yaml:6:16: max_aliases"));
  EXPECT_THAT(message, HasSubstr("identity.yaml:7:16: identity.merge_phase"));
  EXPECT_THAT(message, HasSubstr("identity.yaml:8:3:"));
}

}  // namespace
}  // namespace tappa::ruleset
