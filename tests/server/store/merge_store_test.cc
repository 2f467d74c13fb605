// The stored-form merges of merge_store.h: histories and restraint records.
// (The four merge steps run against Redis in tests/server/
// identity_e2e_test.cc.)
#include "server/store/merge_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

std::string At(int64_t ms, absl::string_view rest) {
  return absl::StrCat(Base36(ms), rest);
}

TEST(MergeHistoryTextTest, InterleavesNewestFirstAndCuts) {
  std::string survivor = absl::StrJoin(
      {At(500, "|b|0|purchase|web|"), At(100, "|a|0|x|web|")}, "\n");
  std::string absorbed = absl::StrJoin(
      {At(700, "|c|0|share|social|"), At(300, "|a|0|y|social|")}, "\n");
  EXPECT_EQ(MergeHistoryText(survivor, absorbed, 10),
            absl::StrJoin(
                {At(700, "|c|0|share|social|"), At(500, "|b|0|purchase|web|"),
                 At(300, "|a|0|y|social|"), At(100, "|a|0|x|web|")},
                "\n"));
  EXPECT_EQ(MergeHistoryText(survivor, absorbed, 2),
            absl::StrJoin(
                {At(700, "|c|0|share|social|"), At(500, "|b|0|purchase|web|")},
                "\n"));
  EXPECT_EQ(MergeHistoryText("", absorbed, 10), absorbed);
  // A tie keeps the survivor's entry first.
  EXPECT_EQ(MergeHistoryText(At(5, "|s|0|e|web|"), At(5, "|t|0|e|web|"), 10),
            At(5, "|s|0|e|web|") + "\n" + At(5, "|t|0|e|web|"));
}

TEST(MergeRestraintFieldsTest, FieldByField) {
  FieldMap survivor = {
      {"t", At(900, "|s|email|a1") + "," + At(100, "|i|web|a2")},
      {"ls|a1", "2"},
      {"gs", "5"},
      {"fr|cart", At(800, "") + "," + At(200, "")},
      {"d|a1", At(300, "")},
      {"o|dec1", At(50, "|i")},
      {"oc", "3"},
  };
  FieldMap absorbed = {
      {"t", At(500, "|s|sms|a3")},
      {"ls|a1", "1"},
      {"ls|gone", "4"},
      {"gs", "7"},
      {"fr|cart", At(400, "")},
      {"d|a1", At(600, "")},
      {"dc|sms", At(10, "")},
      {"o|dec1", At(60, "|c")},
      {"o|dec2", At(70, "|v")},
      {"oc", "9"},
  };
  FieldMap merged = MergeRestraintFields(survivor, absorbed);
  EXPECT_EQ(merged["t"], At(900, "|s|email|a1") + "," + At(500, "|s|sms|a3") +
                             "," + At(100, "|i|web|a2"));
  EXPECT_EQ(merged["ls|a1"], "3");
  EXPECT_EQ(merged["ls|gone"], "4");  // an action the ruleset lost survives
  EXPECT_EQ(merged["gs"], "12");
  EXPECT_EQ(merged["fr|cart"],
            At(800, "") + "," + At(400, "") + "," + At(200, ""));
  EXPECT_EQ(merged["d|a1"], At(600, ""));
  EXPECT_EQ(merged["dc|sms"], At(10, ""));
  EXPECT_EQ(merged["o|dec1"], At(50, "|ic"));
  EXPECT_EQ(merged["o|dec2"], At(70, "|v"));
  EXPECT_EQ(merged["oc"], "3");
}

TEST(MergeRestraintFieldsTest, TouchesAreCutToTheCap) {
  std::vector<std::string> mine, theirs;
  for (int i = 0; i < ruleset::kMaxTouches; ++i) {
    mine.push_back(At(2 * i, "|s|web|a"));
    theirs.push_back(At(2 * i + 1, "|s|web|b"));
  }
  std::reverse(mine.begin(), mine.end());
  std::reverse(theirs.begin(), theirs.end());
  FieldMap merged = MergeRestraintFields({{"t", absl::StrJoin(mine, ",")}},
                                         {{"t", absl::StrJoin(theirs, ",")}});
  std::vector<std::string> touches = absl::StrSplit(merged["t"], ',');
  ASSERT_EQ(touches.size(), static_cast<size_t>(ruleset::kMaxTouches));
  EXPECT_EQ(touches.front(), At(2 * ruleset::kMaxTouches - 1, "|s|web|b"));
  EXPECT_EQ(touches.back(), At(ruleset::kMaxTouches, "|s|web|a"));
}

}  // namespace
}  // namespace tappa::server
