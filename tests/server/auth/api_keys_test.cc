#include "server/auth/api_keys.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

using ::testing::HasSubstr;

const char kKey[] = "tpk_unit_test_key_0123456789";

std::string OneKey(const std::string& body) {
  return "keys:\n  - name: web\n    sha256: " + HashApiKey(kKey) + "\n" + body;
}

TEST(ApiKeysTest, ParsesNamesScopesAndRates) {
  absl::StatusOr<ApiKeyTable> table = ApiKeyTable::Parse(
      OneKey("    scopes: [decide, track]\n    requests_per_second: 50\n"),
      "keys.yaml");
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_EQ(table->keys().size(), 1u);
  const ApiKey& key = table->keys()[0];
  EXPECT_EQ(key.name, "web");
  EXPECT_TRUE(key.Allows(Scope::kDecide));
  EXPECT_TRUE(key.Allows(Scope::kTrack));
  EXPECT_FALSE(key.Allows(Scope::kErase));
  EXPECT_FALSE(key.Allows(Scope::kAdmin));
  EXPECT_EQ(key.requests_per_second, 50);
  EXPECT_EQ(key.burst, 50);  // one second's worth by default
}

TEST(ApiKeysTest, FindsOnlyTheExactKey) {
  absl::StatusOr<ApiKeyTable> table =
      ApiKeyTable::Parse(OneKey("    scopes: [admin]\n"), "keys.yaml");
  ASSERT_TRUE(table.ok()) << table.status();
  const ApiKey* found = table->Find(kKey);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->name, "web");
  std::string truncated = kKey;
  truncated.pop_back();
  EXPECT_EQ(table->Find(truncated), nullptr);
  std::string longer = std::string(kKey) + "0";
  EXPECT_EQ(table->Find(longer), nullptr);
  std::string changed = kKey;
  changed[5] ^= 1;
  EXPECT_EQ(table->Find(changed), nullptr);
  EXPECT_EQ(table->Find(""), nullptr);
  // The hash itself is not a key.
  EXPECT_EQ(table->Find(HashApiKey(kKey)), nullptr);
  EXPECT_EQ(table->Find(std::string(10000, 'a')), nullptr);
}

TEST(ApiKeysTest, EveryErrorNamesItsPlace) {
  absl::StatusOr<ApiKeyTable> table = ApiKeyTable::Parse(
      "keys:\n"
      "  - name: Web Site\n"         // line 2
      "    sha256: abc\n"            // line 3
      "    scopes: [decide, fly]\n"  // line 4
      "    colour: blue\n"           // line 5
      "  - name: ok\n"               // line 6
      "    sha256: " +
          HashApiKey(kKey) +
          "\n"
          "    burst: 5\n"
          "    scopes: [admin]\n",
      "keys.yaml");
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(table.status().message());
  EXPECT_THAT(message, HasSubstr("keys.yaml:2:11: keys[0].name"));
  EXPECT_THAT(message, HasSubstr("keys.yaml:3:13: keys[0].sha256: 64 hex"));
  EXPECT_THAT(message,
              HasSubstr("keys.yaml:4:22: keys[0].scopes[1]: unknown scope "
                        "`fly`"));
  EXPECT_THAT(message, HasSubstr("keys.yaml:5:5: keys[0].colour: unknown key"));
  EXPECT_THAT(message, HasSubstr("keys[1].burst: needs requests_per_second"));
}

TEST(ApiKeysTest, RefusesDuplicatesMissingFieldsAndBadShapes) {
  std::string twice = OneKey("    scopes: [admin]\n") + "  - name: web\n" +
                      "    sha256: " + HashApiKey("another_key_0123456789") +
                      "\n    scopes: [admin]\n";
  EXPECT_THAT(ApiKeyTable::Parse(twice, "k").status().message(),
              HasSubstr("is used by an earlier key"));
  std::string same_hash = OneKey("    scopes: [admin]\n") +
                          "  - name: other\n    sha256: " + HashApiKey(kKey) +
                          "\n    scopes: [admin]\n";
  EXPECT_THAT(ApiKeyTable::Parse(same_hash, "k").status().message(),
              HasSubstr("listed twice"));
  EXPECT_THAT(ApiKeyTable::Parse(OneKey(""), "k").status().message(),
              HasSubstr("keys[0].scopes: missing"));
  EXPECT_THAT(ApiKeyTable::Parse("- a\n- b\n", "k").status().message(),
              HasSubstr("must be a map"));
  EXPECT_THAT(ApiKeyTable::Parse("keys: 3\n", "k").status().message(),
              HasSubstr("keys: must be a list"));
  EXPECT_THAT(ApiKeyTable::Parse("keys: [\n", "k").status().message(),
              HasSubstr("k:"));
  EXPECT_THAT(
      ApiKeyTable::Parse(OneKey("    scopes: []\n"), "k").status().message(),
      HasSubstr("non-empty list"));
  EXPECT_THAT(
      ApiKeyTable::Parse(
          OneKey("    scopes: [admin]\n    requests_per_second: -1\n"), "k")
          .status()
          .message(),
      HasSubstr("a positive number"));
}

TEST(ApiKeysTest, AnEmptyListIsValidAndLetsNobodyIn) {
  absl::StatusOr<ApiKeyTable> table = ApiKeyTable::Parse("keys: []\n", "k");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->Find(kKey), nullptr);
}

TEST(ApiKeysTest, GeneratedKeysAreLongRandomAndFindable) {
  std::string a = GenerateApiKey(), b = GenerateApiKey();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 4u + 43u);
  EXPECT_EQ(a.substr(0, 4), "tpk_");
  absl::StatusOr<ApiKeyTable> table =
      ApiKeyTable::Parse("keys:\n  - name: gen\n    sha256: " + HashApiKey(a) +
                             "\n    scopes: [track]\n",
                         "k");
  ASSERT_TRUE(table.ok());
  EXPECT_NE(table->Find(a), nullptr);
  EXPECT_EQ(table->Find(b), nullptr);
}

}  // namespace
}  // namespace tappa::server
