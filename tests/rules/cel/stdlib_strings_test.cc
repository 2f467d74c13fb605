// String functions, regular expressions and UTF-8 validation, per the CEL
// specification: size() counts code points, matches() is an unanchored RE2
// search.
#include <string>

#include "gtest/gtest.h"
#include "re2/re2.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

Value S(absl::string_view s) { return Value::BorrowedString(s); }

bool IsTrue(const Value& v) { return v.IsBool() && v.bool_value(); }
bool IsFalse(const Value& v) { return v.IsBool() && !v.bool_value(); }
bool IsErrorWith(const Value& v, absl::string_view part) {
  return v.IsError() && v.error_message().find(part) != absl::string_view::npos;
}

TEST(StringSizeTest, CodePointsAndBytes) {
  auto size = [](const Value& v) {
    Value r = StringSize(v);
    EXPECT_TRUE(r.IsInt()) << r.DebugString();
    return r.IsInt() ? r.int_value() : -1;
  };
  EXPECT_EQ(size(S("")), 0);
  EXPECT_EQ(size(S("four")), 4);
  EXPECT_EQ(size(S("\xc3\xbf")), 1);  // ÿ, 2 bytes
  EXPECT_EQ(size(S("\xe2\x82\xac"
                   "1")),
            2);                                // €1
  EXPECT_EQ(size(S("\xf0\x9f\x98\x80!")), 2);  // 😀!
  EXPECT_EQ(size(Value::BorrowedBytes("\xc3\xbf")), 2);
  EXPECT_EQ(size(Value::BorrowedBytes(absl::string_view("\0\0\0", 3))), 3);
  EXPECT_TRUE(IsErrorWith(StringSize(Value::Int(1)),
                          "no matching overload for 'size'"));
}

TEST(StringPredicatesTest, ContainsStartsEnds) {
  EXPECT_TRUE(IsTrue(Contains(S("hello world"), S("o w"))));
  EXPECT_TRUE(IsTrue(Contains(S("hello"), S(""))));
  EXPECT_TRUE(IsTrue(Contains(S(""), S(""))));
  EXPECT_TRUE(IsFalse(Contains(S("hello"), S("Hello"))));
  EXPECT_TRUE(IsFalse(Contains(S("ab"), S("abc"))));
  EXPECT_TRUE(IsTrue(StartsWith(S("web.home_hero"), S("web."))));
  EXPECT_TRUE(IsTrue(StartsWith(S("x"), S(""))));
  EXPECT_TRUE(IsFalse(StartsWith(S("web"), S("web."))));
  EXPECT_TRUE(IsTrue(EndsWith(S("caf\xc3\xa9"), S("\xc3\xa9"))));
  EXPECT_TRUE(IsFalse(EndsWith(S("cafe"), S("\xc3\xa9"))));
  EXPECT_TRUE(IsTrue(EndsWith(S("x"), S(""))));
  EXPECT_TRUE(IsErrorWith(Contains(S("a"), Value::Int(1)),
                          "no matching overload for 'contains'"));
  EXPECT_TRUE(IsErrorWith(Contains(Value::BorrowedBytes("a"), S("a")),
                          "no matching overload"));
  EXPECT_TRUE(IsErrorWith(StartsWith(Value::Null(), S("a")),
                          "no matching overload for 'startsWith'"));
  EXPECT_TRUE(IsErrorWith(EndsWith(S("a"), Value::Bool(true)),
                          "no matching overload for 'endsWith'"));
  EXPECT_TRUE(
      IsErrorWith(Contains(Value::StaticError("first"), S("a")), "first"));
}

TEST(MatchesTest, UnanchoredRe2) {
  EXPECT_TRUE(IsTrue(Matches(S("hubba"), S("ubb"))));
  EXPECT_TRUE(IsTrue(Matches(S("hubba"), S(""))));
  EXPECT_TRUE(IsFalse(Matches(S("hubba"), S("^ubb"))));
  EXPECT_TRUE(IsTrue(Matches(S("hubba"), S("^h.*a$"))));
  EXPECT_TRUE(
      IsTrue(Matches(S("foo@example.com"), S("^[^@]+@[^@]+\\.[a-z]+$"))));
  EXPECT_TRUE(IsTrue(Matches(S("\xc3\xbf"), S("^.$"))));  // one code point
  EXPECT_TRUE(IsTrue(Matches(S("ABC"), S("(?i)abc"))));
  EXPECT_TRUE(IsFalse(Matches(S("ABC"), S("abc"))));
  EXPECT_TRUE(IsTrue(Matches(S("IT"), S("^(IT|FR)$"))));
  EXPECT_TRUE(IsErrorWith(Matches(S("a"), Value::Int(1)),
                          "no matching overload for 'matches'"));
}

TEST(MatchesTest, InvalidPatternNamesIt) {
  Value v = Matches(S("a"), S("(a"));
  ASSERT_TRUE(v.IsError());
  EXPECT_NE(v.error_message().find("invalid regular expression '(a'"),
            absl::string_view::npos)
      << v.error_message();
  EXPECT_NE(v.error_message().find("missing )"), absl::string_view::npos)
      << v.error_message();
  // RE2 rejects backreferences and lookaround: no backtracking engine here.
  EXPECT_TRUE(
      IsErrorWith(Matches(S("aa"), S("(a)\\1")), "invalid regular expression"));
  EXPECT_TRUE(
      IsErrorWith(Matches(S("a"), S("a(?=b)")), "invalid regular expression"));
}

TEST(CompileRegexTest, PathologicalPatternsFailCleanly) {
  absl::StatusOr<std::unique_ptr<re2::RE2>> re =
      CompileRegex("((((a{100}){100}){100}){100})");
  ASSERT_FALSE(re.ok());
  EXPECT_EQ(re.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(re.status().message().find("invalid regular expression"),
            absl::string_view::npos);
  re = CompileRegex("a{1001}");  // RE2's repetition limit is 1000
  EXPECT_FALSE(re.ok());
  // Within the repetition limits but beyond the memory budget: 1,000 copies
  // of the large "any letter" class.
  re = CompileRegex("(\\pL{100}){10}");
  ASSERT_FALSE(re.ok());
  EXPECT_NE(re.status().message().find("pattern too large"),
            absl::string_view::npos)
      << re.status();
  // Ordinary patterns of realistic size stay well inside it.
  EXPECT_TRUE(CompileRegex("\\w{1000}").ok());
  EXPECT_TRUE(
      CompileRegex("(?i)^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$").ok());
  std::string huge(100000, 'a');
  re = CompileRegex(huge);
  ASSERT_FALSE(re.ok());
  // The message quotes a bounded prefix of the pattern, not all of it.
  EXPECT_LT(re.status().message().size(), 200u);
}

TEST(CompileRegexTest, CompiledPatternMatchesLinearly) {
  absl::StatusOr<std::unique_ptr<re2::RE2>> re = CompileRegex("(a+)+$");
  ASSERT_TRUE(re.ok()) << re.status();
  // Catastrophic for a backtracking engine; linear for RE2.
  std::string input(100000, 'a');
  input.push_back('b');
  Value text = Value::String(input);
  EXPECT_TRUE(IsFalse(MatchesCompiled(text, **re)));
  EXPECT_TRUE(IsTrue(MatchesCompiled(S("xaa"), **re)));
  EXPECT_TRUE(IsErrorWith(MatchesCompiled(Value::Int(1), **re),
                          "no matching overload"));
}

TEST(Utf8Test, Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xc3\xbf\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_TRUE(IsValidUtf8(absl::string_view("\0", 1)));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xf8\x88\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("a\xc3(b"));  // bad continuation
}

}  // namespace
}  // namespace tappa::cel
