// Tests of the CEL lexer against the lexis of cel-spec langdef.md.
#include "rules/cel/lexer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::cel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using K = TokenKind;

struct Lexed {
  std::vector<Token> tokens;  // without the final kEnd
  std::vector<LexError> errors;
};

Lexed LexAll(absl::string_view source) {
  Lexed out;
  Lexer lexer(source, &out.errors);
  for (int guard = 0; guard < 100000; ++guard) {
    Token t = lexer.Next();
    if (t.kind == K::kEnd) break;
    out.tokens.push_back(std::move(t));
  }
  return out;
}

std::vector<K> Kinds(absl::string_view source) {
  std::vector<K> kinds;
  for (const Token& t : LexAll(source).tokens) kinds.push_back(t.kind);
  return kinds;
}

// Lexes a single literal token and expects no error.
Token One(absl::string_view source) {
  Lexed l = LexAll(source);
  EXPECT_TRUE(l.errors.empty()) << source << ": " << l.errors[0].message;
  EXPECT_EQ(l.tokens.size(), 1u) << source;
  return l.tokens.empty() ? Token{} : l.tokens[0];
}

// Lexes `source` and returns the first error's message ("" when none).
std::string FirstError(absl::string_view source) {
  Lexed l = LexAll(source);
  return l.errors.empty() ? "" : l.errors[0].message;
}

TEST(LexerTest, Punctuation) {
  EXPECT_THAT(Kinds("()[]{}.,:?+-*/%!"),
              ElementsAre(K::kLParen, K::kRParen, K::kLBracket, K::kRBracket,
                          K::kLBrace, K::kRBrace, K::kDot, K::kComma, K::kColon,
                          K::kQuestion, K::kPlus, K::kMinus, K::kStar,
                          K::kSlash, K::kPercent, K::kBang));
  EXPECT_THAT(
      Kinds("< <= > >= == != && || in"),
      ElementsAre(K::kLess, K::kLessEqual, K::kGreater, K::kGreaterEqual,
                  K::kEqual, K::kNotEqual, K::kAndAnd, K::kOrOr, K::kIn));
  // Maximal munch: "<=" is one token, "!!" two.
  EXPECT_THAT(Kinds("a<=b!!c"), ElementsAre(K::kIdent, K::kLessEqual, K::kIdent,
                                            K::kBang, K::kBang, K::kIdent));
}

TEST(LexerTest, OffsetsAndSizes) {
  Lexed l = LexAll("  foo <= 'é'");
  ASSERT_EQ(l.tokens.size(), 3u);
  EXPECT_EQ(l.tokens[0].offset, 2);
  EXPECT_EQ(l.tokens[0].size, 3);
  EXPECT_EQ(l.tokens[1].offset, 6);
  EXPECT_EQ(l.tokens[1].size, 2);
  EXPECT_EQ(l.tokens[2].offset, 9);
  EXPECT_EQ(l.tokens[2].size, 4);  // quotes plus a two-byte character
}

TEST(LexerTest, IdentifiersAndKeywords) {
  EXPECT_THAT(Kinds("true false null in _x X9 inx nullable"),
              ElementsAre(K::kTrue, K::kFalse, K::kNull, K::kIn, K::kIdent,
                          K::kIdent, K::kIdent, K::kIdent));
  EXPECT_EQ(One("_a1").text, "_a1");
  // Host-reserved words lex as identifiers; the parser rejects them where an
  // identifier is required.
  EXPECT_EQ(One("while").kind, K::kIdent);
  for (const char* w : {"as", "break", "const", "continue", "else", "for",
                        "function", "if", "import", "let", "loop", "package",
                        "namespace", "return", "var", "void", "while"}) {
    EXPECT_TRUE(IsHostReservedWord(w)) << w;
  }
  EXPECT_FALSE(IsHostReservedWord("in"));
  EXPECT_FALSE(IsHostReservedWord("size"));
  EXPECT_FALSE(IsHostReservedWord("iff"));
}

TEST(LexerTest, WhitespaceAndComments) {
  EXPECT_THAT(Kinds(" \t\r\n\f a // comment ) ]\n b // to the end"),
              ElementsAre(K::kIdent, K::kIdent));
  EXPECT_THAT(Kinds("a / b"), ElementsAre(K::kIdent, K::kSlash, K::kIdent));
  EXPECT_TRUE(Kinds("// only a comment").empty());
  // Vertical tab is not CEL whitespace.
  EXPECT_EQ(FirstError("a \v b"), "unexpected character '\\x0B'");
}

TEST(LexerTest, IntegerLiterals) {
  Token t = One("0");
  EXPECT_EQ(t.kind, K::kInt);
  EXPECT_EQ(t.int_value, 0u);
  EXPECT_EQ(One("123").int_value, 123u);
  EXPECT_EQ(One("007").int_value, 7u);
  EXPECT_EQ(One("0x1F").int_value, 31u);
  EXPECT_EQ(One("0xabcDEF").int_value, 0xabcdefu);
  // The magnitude may exceed INT64_MAX: the parser decides with the sign.
  EXPECT_EQ(One("9223372036854775808").int_value, 9223372036854775808u);
  EXPECT_EQ(One("18446744073709551615").int_value, 18446744073709551615u);
  EXPECT_EQ(FirstError("18446744073709551616"), "integer literal out of range");
  EXPECT_EQ(FirstError("0x10000000000000000"), "integer literal out of range");
  // "0x" without digits is 0 followed by the identifier x (as in cel-go).
  EXPECT_THAT(Kinds("0x"), ElementsAre(K::kInt, K::kIdent));
  // Only a lowercase x introduces hex digits (spec: `0x HEXDIGIT+`).
  EXPECT_THAT(Kinds("0X1"), ElementsAre(K::kInt, K::kIdent));
}

TEST(LexerTest, UintLiterals) {
  Token t = One("1u");
  EXPECT_EQ(t.kind, K::kUint);
  EXPECT_EQ(t.int_value, 1u);
  EXPECT_EQ(One("2U").kind, K::kUint);
  EXPECT_EQ(One("0x1Fu").int_value, 31u);
  EXPECT_EQ(One("18446744073709551615u").int_value, 18446744073709551615u);
  EXPECT_EQ(FirstError("18446744073709551616u"),
            "integer literal out of range");
  // A double cannot take the suffix.
  EXPECT_THAT(Kinds("1.5u"), ElementsAre(K::kDouble, K::kIdent));
}

TEST(LexerTest, DoubleLiterals) {
  EXPECT_EQ(One("1.5").double_value, 1.5);
  EXPECT_EQ(One("0.0").double_value, 0.0);
  EXPECT_EQ(One("1e10").double_value, 1e10);
  EXPECT_EQ(One("1E10").double_value, 1e10);
  EXPECT_EQ(One("1e+2").double_value, 100.0);
  EXPECT_EQ(One("2.5e-3").double_value, 2.5e-3);
  // The spec's FLOAT_LIT is DIGIT* . DIGIT+ EXPONENT?: ".5" is a double...
  EXPECT_EQ(One(".5").double_value, 0.5);
  EXPECT_EQ(One(".5e1").double_value, 5.0);
  // ...but "1." is not: it is 1 followed by a dot.
  EXPECT_THAT(Kinds("1."), ElementsAre(K::kInt, K::kDot));
  EXPECT_THAT(Kinds("1.e5"), ElementsAre(K::kInt, K::kDot, K::kIdent));
  // An exponent needs digits; otherwise `e` is an identifier.
  EXPECT_THAT(Kinds("1e"), ElementsAre(K::kInt, K::kIdent));
  EXPECT_THAT(Kinds("1e+"), ElementsAre(K::kInt, K::kIdent, K::kPlus));
  // Out of range: overflow is an error, underflow rounds to zero.
  EXPECT_EQ(FirstError("1e400"), "double literal out of range");
  EXPECT_EQ(One("1e-400").double_value, 0.0);
  EXPECT_EQ(One("4.9e-324").double_value, 4.9e-324);  // denormal
  EXPECT_EQ(One("1.7976931348623157e308").double_value, 1.7976931348623157e308);
}

TEST(LexerTest, StringQuoteForms) {
  EXPECT_EQ(One("\"abc\"").text, "abc");
  EXPECT_EQ(One("'abc'").text, "abc");
  EXPECT_EQ(One("''").text, "");
  EXPECT_EQ(One("'\"\"'").text, "\"\"");
  EXPECT_EQ(One("\"'\"").text, "'");
  EXPECT_EQ(One("'''x''x'''").text, "x''x");
  EXPECT_EQ(One("\"\"\"a\"b\"\"c\"\"\"").text, "a\"b\"\"c");
  EXPECT_EQ(One("'''line1\nline2'''").text, "line1\nline2");
  EXPECT_EQ(One("\"\"\"\"\"\"").text, "");
  EXPECT_EQ(One("'é😀'").text, "é😀");
  EXPECT_EQ(One("'a'").kind, K::kString);
  // A triple-quoted literal ends at the first closing triple.
  // (the fourth quote then opens an unterminated literal).
  EXPECT_THAT(Kinds("'''a''''"), ElementsAre(K::kString, K::kString));
  EXPECT_EQ(FirstError("'''a''''"), "unterminated string literal");
}

TEST(LexerTest, RawStrings) {
  EXPECT_EQ(One("r'\\n'").text, "\\n");
  EXPECT_EQ(One("R\"\\d+\"").text, "\\d+");
  EXPECT_EQ(One("r'''a\\'''").text, "a\\");
  // In a raw string a backslash does not escape the quote.
  EXPECT_EQ(One("r\"\\\"").text, "\\");
  EXPECT_EQ(One("r\"\\\\\"").text, "\\\\");  // spec: two backslashes
  // r and b only prefix a string when the quote follows directly.
  EXPECT_THAT(Kinds("r 'a'"), ElementsAre(K::kIdent, K::kString));
  EXPECT_THAT(Kinds("rb'a'"), ElementsAre(K::kIdent, K::kString));
}

TEST(LexerTest, Escapes) {
  EXPECT_EQ(One(R"('\a\b\f\n\r\t\v')").text, "\a\b\f\n\r\t\v");
  EXPECT_EQ(One(R"('\\\?\"\'\`')").text, "\\?\"'`");
  EXPECT_EQ(One(R"("\"")").text, "\"");
  EXPECT_EQ(One(R"("\\")").text, "\\");
  // \x and octal denote code points in strings (spec table).
  EXPECT_EQ(One(R"("\xFF")").text, "\u00ff");
  EXPECT_EQ(One(R"("\XfF")").text, "\u00ff");
  EXPECT_EQ(One(R"("\377")").text, "\u00ff");
  EXPECT_EQ(One(R"("\303\277")").text, "\u00c3\u00bf");
  EXPECT_EQ(One(R"("\000")").text, std::string(1, '\0'));
  EXPECT_EQ(One(R"("\x41\101")").text, "AA");
  EXPECT_EQ(One(R"("\u00e9")").text, "é");
  EXPECT_EQ(One(R"("\u20AC")").text, "€");
  EXPECT_EQ(One(R"("\U0001F600")").text, "😀");
  EXPECT_EQ(One(R"("\U0010FFFF")").text, "\U0010FFFF");
  // Escapes work in triple-quoted strings too.
  EXPECT_EQ(One(R"('''\n\'''')").text, "\n'");
}

TEST(LexerTest, BytesLiterals) {
  Token t = One("b'abc'");
  EXPECT_EQ(t.kind, K::kBytes);
  EXPECT_EQ(t.text, "abc");
  EXPECT_EQ(One("B\"abc\"").text, "abc");
  // Characters are their UTF-8 bytes; \x and octal are raw octets.
  EXPECT_EQ(One("b'ÿ'").text, "\xc3\xbf");
  EXPECT_EQ(One(R"(b'\303\277')").text, "\xc3\xbf");
  EXPECT_EQ(One(R"(b'\377')").text, "\xff");
  EXPECT_EQ(One(R"(b'\xFF')").text, "\xff");
  EXPECT_EQ(One(R"(b'\x00\n')").text, std::string("\0\n", 2));
  EXPECT_EQ(One(R"(br'\xFF')").text, "\\xFF");
  EXPECT_EQ(One(R"(BR'''a\''')").text, "a\\");
  EXPECT_EQ(One("b'''a\nb'''").text, "a\nb");
}

TEST(LexerTest, EscapeErrors) {
  EXPECT_EQ(FirstError(R"('\q')"), "invalid escape sequence '\\q'");
  EXPECT_EQ(FirstError(R"('\é')"), "invalid escape sequence '\\é'");
  EXPECT_THAT(FirstError(R"('\x4')"), HasSubstr("\\x needs 2 hexadecimal"));
  EXPECT_THAT(FirstError(R"('\u12')"), HasSubstr("\\u needs 4 hexadecimal"));
  EXPECT_THAT(FirstError(R"('\U0001F60')"),
              HasSubstr("\\U needs 8 hexadecimal"));
  EXPECT_THAT(FirstError(R"('\ud800')"),
              HasSubstr("U+D800 is not a valid Unicode code point"));
  EXPECT_THAT(FirstError(R"('\uDFFF')"), HasSubstr("not a valid Unicode"));
  EXPECT_THAT(FirstError(R"('\U0000D800')"), HasSubstr("not a valid Unicode"));
  EXPECT_THAT(FirstError(R"('\U00110000')"), HasSubstr("not a valid Unicode"));
  EXPECT_THAT(FirstError(R"('\400')"), HasSubstr("octal escapes"));
  EXPECT_THAT(FirstError(R"('\18')"), HasSubstr("octal escapes"));
  EXPECT_THAT(FirstError(R"('\7')"), HasSubstr("octal escapes"));
  EXPECT_EQ(FirstError(R"(b'\u00e9')"),
            "\\u escape is not allowed in bytes literals");
  EXPECT_EQ(FirstError(R"(b'\U0001F600')"),
            "\\U escape is not allowed in bytes literals");
  // The error points at the backslash, and lexing continues after it.
  Lexed l = LexAll(R"('ab\qc' + 1)");
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_EQ(l.errors[0].offset, 3);
  ASSERT_EQ(l.tokens.size(), 3u);
  EXPECT_EQ(l.tokens[0].text, "abc");
  EXPECT_EQ(l.tokens[2].kind, K::kInt);
}

TEST(LexerTest, UnterminatedLiterals) {
  EXPECT_EQ(FirstError("'abc"), "unterminated string literal");
  EXPECT_EQ(FirstError("\"abc"), "unterminated string literal");
  EXPECT_EQ(FirstError("b'abc"), "unterminated bytes literal");
  EXPECT_EQ(FirstError("'''abc''"), "unterminated string literal");
  EXPECT_EQ(FirstError("'abc\\"), "unterminated string literal");
  // Single-quoted literals may not span lines; the lexer resumes on the
  // next line.
  Lexed l = LexAll("'abc\nx");
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_EQ(l.errors[0].message, "unterminated string literal");
  EXPECT_EQ(l.errors[0].offset, 0);
  ASSERT_EQ(l.tokens.size(), 2u);
  EXPECT_EQ(l.tokens[1].text, "x");
  EXPECT_EQ(FirstError("'a\rb'"), "unterminated string literal");
  EXPECT_EQ(FirstError("r'a\nb'"), "unterminated string literal");
}

TEST(LexerTest, UnexpectedCharacters) {
  EXPECT_EQ(FirstError("a # b"), "unexpected character '#'");
  EXPECT_EQ(FirstError("a = b"),
            "unexpected character '='; did you mean '=='?");
  EXPECT_EQ(FirstError("a & b"),
            "unexpected character '&'; did you mean '&&'?");
  EXPECT_EQ(FirstError("a | b"),
            "unexpected character '|'; did you mean '||'?");
  EXPECT_EQ(FirstError("`a`"), "unexpected character '`'");
  EXPECT_EQ(FirstError("é"), "unexpected character 'é' (U+00E9)");
  EXPECT_EQ(FirstError("😀"), "unexpected character '😀' (U+1F600)");
  Lexed l = LexAll("a $ é b");
  EXPECT_EQ(l.errors.size(), 2u);
  EXPECT_THAT(Kinds("a $ é b"),
              ElementsAre(K::kIdent, K::kError, K::kError, K::kIdent));
}

TEST(LexerTest, ManyErrorsAreCapped) {
  std::string s = "'";
  for (int i = 0; i < 10000; ++i) s += "\\q";
  s += "'";
  Lexed l = LexAll(s);
  EXPECT_LE(l.errors.size(), 64u);
  EXPECT_EQ(l.tokens.size(), 1u);
}

TEST(LexerTest, EndIsSticky) {
  std::vector<LexError> errors;
  Lexer lexer("a", &errors);
  EXPECT_EQ(lexer.Next().kind, K::kIdent);
  EXPECT_EQ(lexer.Next().kind, K::kEnd);
  EXPECT_EQ(lexer.Next().kind, K::kEnd);
}

TEST(LexerTest, DescribeToken) {
  const std::string src = "foo) 'a very long string literal indeed'";
  Lexed l = LexAll(src);
  ASSERT_EQ(l.tokens.size(), 3u);
  EXPECT_EQ(DescribeToken(src, l.tokens[0]), "'foo'");
  EXPECT_EQ(DescribeToken(src, l.tokens[1]), "')'");
  EXPECT_EQ(DescribeToken(src, l.tokens[2]), "''a very long string lite...'");
  EXPECT_EQ(DescribeToken(src, Token{}), "end of expression");
}

TEST(Utf8Test, FindInvalidUtf8) {
  EXPECT_EQ(FindInvalidUtf8(""), -1);
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), -1);
  EXPECT_EQ(FindInvalidUtf8("é€😀\U0010FFFF"), -1);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2);
  EXPECT_EQ(FindInvalidUtf8("a\x80"), 1);             // lone continuation
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1);             // truncated
  EXPECT_EQ(FindInvalidUtf8("\xe2\x82"), 0);          // truncated
  EXPECT_EQ(FindInvalidUtf8("\xc0\x80"), 0);          // overlong NUL
  EXPECT_EQ(FindInvalidUtf8("\xc1\xbf"), 0);          // overlong
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\x80"), 0);      // overlong
  EXPECT_EQ(FindInvalidUtf8("\xf0\x80\x80\x80"), 0);  // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1);     // surrogate U+D800
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("\xf5\x80\x80\x80"), 0);
  EXPECT_EQ(FindInvalidUtf8("\xc3\x28"), 0);               // bad continuation
  EXPECT_EQ(FindInvalidUtf8(std::string("a\0b", 3)), -1);  // NUL is valid
}

}  // namespace
}  // namespace tappa::cel
