// Tests of the CEL parser. Expected trees are written from cel-spec
// langdef.md (grammar, precedence, literals) and the canonical macro
// expansions listed in rules/cel/ast.h; they are compared through
// DebugString, which prints every operator as a call.
#include "rules/cel/parser.h"

#include <pthread.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/cel/ast.h"

namespace tappa::cel {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The tree of `source`, or "error: line:col: message; ..." when it fails.
std::string P(absl::string_view source, ParseOptions options = {}) {
  ParseResult r = Parse(source, options);
  if (r.expr == nullptr) {
    EXPECT_FALSE(r.issues.empty()) << source;
    return absl::StrCat(
        "error: ",
        absl::StrJoin(r.issues, "; ", [](std::string* out, const Issue& i) {
          absl::StrAppend(out, i.position.line, ":", i.position.column, ": ",
                          i.message);
        }));
  }
  EXPECT_TRUE(r.issues.empty()) << source;
  return DebugString(*r.expr);
}

std::string NoMacros(absl::string_view source) {
  ParseOptions options;
  options.enable_macros = false;
  return P(source, options);
}

std::string Repeat(absl::string_view s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) out.append(s.data(), s.size());
  return out;
}

// ---- Precedence and associativity -----------------------------------------

TEST(ParserTest, LogicalPrecedence) {
  EXPECT_EQ(P("a || b && c"), "_||_(a, _&&_(b, c))");
  EXPECT_EQ(P("a && b || c"), "_||_(_&&_(a, b), c)");
  EXPECT_EQ(P("a && (b || c)"), "_&&_(a, _||_(b, c))");
  EXPECT_EQ(P("a == b && c < d"), "_&&_(_==_(a, b), _<_(c, d))");
  EXPECT_EQ(P("!a || b"), "_||_(!_(a), b)");
}

TEST(ParserTest, LogicalChainsAreBalanced) {
  EXPECT_EQ(P("a || b"), "_||_(a, b)");
  EXPECT_EQ(P("a || b || c || d"), "_||_(_||_(a, b), _||_(c, d))");
  EXPECT_EQ(P("a && b && c && d"), "_&&_(_&&_(a, b), _&&_(c, d))");
  EXPECT_EQ(P("a && b && c"), "_&&_(a, _&&_(b, c))");
}

TEST(ParserTest, Conditional) {
  EXPECT_EQ(P("a ? b : c"), "_?_:_(a, b, c)");
  // Right associative.
  EXPECT_EQ(P("a ? b : c ? d : e"), "_?_:_(a, b, _?_:_(c, d, e))");
  // Lowest precedence.
  EXPECT_EQ(P("a || b ? c && d : e + f"),
            "_?_:_(_||_(a, b), _&&_(c, d), _+_(e, f))");
  // The middle operand is a ConditionalOr: a nested ?: needs parentheses.
  EXPECT_EQ(P("a ? (b ? c : d) : e"), "_?_:_(a, _?_:_(b, c, d), e)");
  EXPECT_THAT(P("a ? b ? c : d : e"), HasSubstr("expected ':', found '?'"));
}

TEST(ParserTest, Relations) {
  EXPECT_EQ(P("a < b"), "_<_(a, b)");
  EXPECT_EQ(P("a <= b"), "_<=_(a, b)");
  EXPECT_EQ(P("a > b"), "_>_(a, b)");
  EXPECT_EQ(P("a >= b"), "_>=_(a, b)");
  EXPECT_EQ(P("a == b"), "_==_(a, b)");
  EXPECT_EQ(P("a != b"), "_!=_(a, b)");
  EXPECT_EQ(P("a in b"), "@in(a, b)");
  // Left associative, all at one level.
  EXPECT_EQ(P("a < b == c"), "_==_(_<_(a, b), c)");
  EXPECT_EQ(P("a == b in c"), "@in(_==_(a, b), c)");
  EXPECT_EQ(P("a + 1 in [1, 2]"), "@in(_+_(a, 1), [1, 2])");
  EXPECT_EQ(P("'k' in m && x"), "_&&_(@in(\"k\", m), x)");
}

TEST(ParserTest, Arithmetic) {
  EXPECT_EQ(P("1 + 2 * 3 - 4"), "_-_(_+_(1, _*_(2, 3)), 4)");
  EXPECT_EQ(P("a - b - c"), "_-_(_-_(a, b), c)");
  EXPECT_EQ(P("a / b % c * d"), "_*_(_%_(_/_(a, b), c), d)");
  EXPECT_EQ(P("a * (b + c)"), "_*_(a, _+_(b, c))");
  EXPECT_EQ(P("a + b * c + d"), "_+_(_+_(a, _*_(b, c)), d)");
  EXPECT_EQ(P("a < b + c * d"), "_<_(a, _+_(b, _*_(c, d)))");
  EXPECT_EQ(P("2 -1"), "_-_(2, 1)");
  EXPECT_EQ(P("2-1"), "_-_(2, 1)");
}

TEST(ParserTest, Unary) {
  EXPECT_EQ(P("!a"), "!_(a)");
  EXPECT_EQ(P("!!a"), "!_(!_(a))");
  EXPECT_EQ(P("-a"), "-_(a)");
  EXPECT_EQ(P("--a"), "-_(-_(a))");
  EXPECT_EQ(P("-!a"), "-_(!_(a))");
  EXPECT_EQ(P("!a.b"), "!_(a.b)");
  EXPECT_EQ(P("-a[0]"), "-_(_[_](a, 0))");
  EXPECT_EQ(P("-a * 2"), "_*_(-_(a), 2)");
  EXPECT_EQ(P("!a == b"), "_==_(!_(a), b)");
}

TEST(ParserTest, NegativeLiteralsAreFolded) {
  EXPECT_EQ(P("-1"), "-1");
  EXPECT_EQ(P("- 1"), "-1");
  EXPECT_EQ(P("--1"), "-_(-1)");
  EXPECT_EQ(P("!-1"), "!_(-1)");
  EXPECT_EQ(P("-1.5"), "-1.5");
  EXPECT_EQ(P("-0x10"), "-16");
  EXPECT_EQ(P("1 - -1"), "_-_(1, -1)");
  // A uint cannot be negative: negation stays a call (an error at runtime).
  EXPECT_EQ(P("-1u"), "-_(1u)");
  // Member access binds tighter than negation.
  EXPECT_EQ(P("-1.size()"), "-_(1.size())");
  EXPECT_EQ(P("-(1)"), "-_(1)");
}

// ---- Integer ranges -------------------------------------------------------

TEST(ParserTest, IntegerLiteralRange) {
  EXPECT_EQ(P("9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(P("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(P("-0x8000000000000000"), "-9223372036854775808");
  EXPECT_EQ(P("0x7fffffffffffffff"), "9223372036854775807");
  EXPECT_EQ(P("9223372036854775808"),
            "error: 1:1: integer literal out of range");
  EXPECT_EQ(P("0x8000000000000000"),
            "error: 1:1: integer literal out of range");
  EXPECT_EQ(P("-9223372036854775809"),
            "error: 1:2: integer literal out of range");
  EXPECT_EQ(P("-(9223372036854775808)"),
            "error: 1:3: integer literal out of range");
  EXPECT_EQ(P("1 + 99999999999999999999"),
            "error: 1:5: integer literal out of range");
}

TEST(ParserTest, UintLiteralRange) {
  EXPECT_EQ(P("0u"), "0u");
  EXPECT_EQ(P("18446744073709551615u"), "18446744073709551615u");
  EXPECT_EQ(P("0xFFFFFFFFFFFFFFFFu"), "18446744073709551615u");
  EXPECT_EQ(P("18446744073709551616u"),
            "error: 1:1: integer literal out of range");
}

// ---- Literals ---------------------------------------------------------------

TEST(ParserTest, ScalarLiterals) {
  EXPECT_EQ(P("0"), "0");
  EXPECT_EQ(P("42"), "42");
  EXPECT_EQ(P("0x1F"), "31");
  EXPECT_EQ(P("7u"), "7u");
  EXPECT_EQ(P("7U"), "7u");
  EXPECT_EQ(P("1.5"), "1.5");
  EXPECT_EQ(P("7.0"), "7.0");
  EXPECT_EQ(P("7e0"), "7.0");
  EXPECT_EQ(P("1e10"), "1e+10");
  EXPECT_EQ(P(".5"), "0.5");
  EXPECT_EQ(P("2.5e-3"), "0.0025");
  EXPECT_EQ(P("true"), "true");
  EXPECT_EQ(P("false"), "false");
  EXPECT_EQ(P("null"), "null");
  EXPECT_EQ(P("1e400"), "error: 1:1: double literal out of range");
  // `7.` is not a CEL double (FLOAT_LIT needs digits after the point).
  EXPECT_THAT(P("7."), HasSubstr("expected a field or function name"));
}

TEST(ParserTest, StringLiterals) {
  EXPECT_EQ(P("'abc'"), "\"abc\"");
  EXPECT_EQ(P("\"abc\""), "\"abc\"");
  EXPECT_EQ(P("'''a'b'''"), "\"a'b\"");
  EXPECT_EQ(P("\"\"\"a\"b\"\"\""), "\"a\\\"b\"");
  EXPECT_EQ(P("'''x''x'''"), "\"x''x\"");
  EXPECT_EQ(P("'''two\nlines'''"), "\"two\\nlines\"");
  EXPECT_EQ(P("r'\\n'"), "\"\\\\n\"");
  EXPECT_EQ(P("R'\\d+'"), "\"\\\\d+\"");
  EXPECT_EQ(P("'\\303\\277'"), "\"Ã¿\"");
  EXPECT_EQ(P("'\\377'"), "\"ÿ\"");
  EXPECT_EQ(P("'\\xFF'"), "\"ÿ\"");
  EXPECT_EQ(P("'\\u00e9\\U0001F600'"), "\"é😀\"");
  EXPECT_EQ(P("'\\a\\b\\f\\n\\r\\t\\v\\\\\\'\\\"\\`\\?'"),
            "\"\\x07\\x08\\x0c\\n\\r\\t\\x0b\\\\'\\\"`?\"");
  EXPECT_EQ(P("'a' + \"b\""), "_+_(\"a\", \"b\")");
}

TEST(ParserTest, StringConstantsAreOwnedValues) {
  ParseResult r = Parse("'hello'");
  ASSERT_NE(r.expr, nullptr);
  ASSERT_EQ(r.expr->kind, ExprKind::kConstant);
  ASSERT_TRUE(r.expr->constant.IsString());
  EXPECT_EQ(r.expr->constant.string_value(), "hello");
  EXPECT_TRUE(r.expr->constant.IsOwned());
}

TEST(ParserTest, BytesLiterals) {
  EXPECT_EQ(P("b'abc'"), "b\"abc\"");
  EXPECT_EQ(P("B\"abc\""), "b\"abc\"");
  EXPECT_EQ(P("b'ÿ'"), "b\"\\xc3\\xbf\"");
  EXPECT_EQ(P("b'\\303\\277'"), "b\"\\xc3\\xbf\"");
  EXPECT_EQ(P("b'\\377'"), "b\"\\xff\"");
  EXPECT_EQ(P("b'\\xFF'"), "b\"\\xff\"");
  EXPECT_EQ(P("b'\\000'"), "b\"\\x00\"");
  EXPECT_EQ(P("br'\\x00'"), "b\"\\\\x00\"");
  EXPECT_EQ(P("b'''a\nb'''"), "b\"a\\nb\"");
  ParseResult r = Parse("b'\\xff'");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_TRUE(r.expr->constant.IsBytes());
  EXPECT_EQ(r.expr->constant.bytes_value(), "\xff");
}

TEST(ParserTest, LiteralErrors) {
  EXPECT_EQ(P("'\\q'"), "error: 1:2: invalid escape sequence '\\q'");
  EXPECT_EQ(P("b'\\u00e9'"),
            "error: 1:3: \\u escape is not allowed in bytes literals");
  EXPECT_THAT(P("'\\ud800'"),
              HasSubstr("1:2: invalid escape sequence: U+D800"));
  EXPECT_THAT(P("'\\U00110000'"), HasSubstr("not a valid Unicode code point"));
  EXPECT_THAT(P("'\\400'"), HasSubstr("octal escapes"));
  EXPECT_THAT(P("'\\x4g'"), HasSubstr("\\x needs 2 hexadecimal digits"));
  EXPECT_EQ(P("'abc"), "error: 1:1: unterminated string literal");
  EXPECT_EQ(P("x + 'abc\n+ 1"), "error: 1:5: unterminated string literal");
  EXPECT_EQ(P("'''abc"), "error: 1:1: unterminated string literal");
  EXPECT_EQ(P("b\"abc"), "error: 1:1: unterminated bytes literal");
}

TEST(ParserTest, Lists) {
  EXPECT_EQ(P("[]"), "[]");
  EXPECT_EQ(P("[1]"), "[1]");
  EXPECT_EQ(P("[1, 'a', [true]]"), "[1, \"a\", [true]]");
  EXPECT_EQ(P("[1, 2,]"), "[1, 2]");
  EXPECT_EQ(P("[a + b, c ? d : e]"), "[_+_(a, b), _?_:_(c, d, e)]");
  EXPECT_EQ(P("[,]"), "error: 1:2: unexpected token ','");
  EXPECT_EQ(P("[1,,]"), "error: 1:4: unexpected token ','");
  EXPECT_EQ(P("[1 2]"), "error: 1:4: expected ',' or ']', found '2'");
  EXPECT_EQ(P("[1, 2"),
            "error: 1:6: expected ',' or ']', found end of expression");
}

TEST(ParserTest, Maps) {
  EXPECT_EQ(P("{}"), "{}");
  EXPECT_EQ(P("{1: 2}"), "{1: 2}");
  EXPECT_EQ(P("{'a': 1, 'b': [2],}"), "{\"a\": 1, \"b\": [2]}");
  EXPECT_EQ(P("{a: b ? c : d}"), "{a: _?_:_(b, c, d)}");
  EXPECT_EQ(P("{1: 2}[1]"), "_[_]({1: 2}, 1)");
  EXPECT_EQ(P("{1 2}"), "error: 1:4: expected ':', found '2'");
  EXPECT_EQ(P("{1: 2 3}"), "error: 1:7: expected ',' or '}', found '3'");
  EXPECT_EQ(P("{1}"), "error: 1:3: expected ':', found '}'");
}

// ---- Members, calls, identifiers ------------------------------------------

TEST(ParserTest, MembersAndCalls) {
  EXPECT_EQ(P("a.b.c"), "a.b.c");
  EXPECT_EQ(P("a[0][1]"), "_[_](_[_](a, 0), 1)");
  EXPECT_EQ(P("a.b(c).d[0]"), "_[_](a.b(c).d, 0)");
  EXPECT_EQ(P("f()"), "f()");
  EXPECT_EQ(P("f(a, b,)"), "f(a, b)");
  EXPECT_EQ(P("a.f()"), "a.f()");
  EXPECT_EQ(P("a.f(1, 2)"), "a.f(1, 2)");
  EXPECT_EQ(P("'s'.size()"), "\"s\".size()");
  EXPECT_EQ(P("[1].size()"), "[1].size()");
  EXPECT_EQ(P("(a + b).c"), "_+_(a, b).c");
  EXPECT_EQ(P("size(a) > 0"), "_>_(size(a), 0)");
  EXPECT_EQ(P("a.b.c(d.e)"), "a.b.c(d.e)");
  EXPECT_EQ(P("x[a + 1]"), "_[_](x, _+_(a, 1))");
  EXPECT_EQ(P("f(a b)"), "error: 1:5: expected ',' or ')', found 'b'");
  EXPECT_EQ(P("f(,)"), "error: 1:3: unexpected token ','");
  EXPECT_EQ(P("a[0"), "error: 1:4: expected ']', found end of expression");
  EXPECT_EQ(P("a."),
            "error: 1:3: expected a field or function name after "
            "'.', found end of expression");
  EXPECT_EQ(P("a.1"), "error: 1:2: unexpected token '.1'");
}

TEST(ParserTest, LeadingDot) {
  EXPECT_EQ(P(".a"), ".a");
  EXPECT_EQ(P(".a.b"), ".a.b");
  EXPECT_EQ(P(".f(x)"), ".f(x)");
  EXPECT_EQ(P(". a"), ".a");
  EXPECT_EQ(P(".(a)"),
            "error: 1:2: expected an identifier after leading '.', "
            "found '('");
}

TEST(ParserTest, ReservedWords) {
  EXPECT_EQ(P("if"), "error: 1:1: reserved identifier: if");
  EXPECT_EQ(P("while(x)"), "error: 1:1: reserved identifier: while");
  // Several reserved words: every one is reported.
  EXPECT_EQ(P("as + package"),
            "error: 1:1: reserved identifier: as; 1:6: reserved identifier: "
            "package");
  // As field names they are fine (as in cel-go).
  EXPECT_EQ(P("a.if"), "a.if");
  EXPECT_EQ(P("a.return()"), "a.return()");
  // `in`, true, false and null are not identifiers at all.
  EXPECT_EQ(P("in"), "error: 1:1: unexpected token 'in'");
  EXPECT_EQ(P("a.in"),
            "error: 1:3: expected a field or function name after "
            "'.', found 'in'");
  EXPECT_EQ(P("a.true"),
            "error: 1:3: expected a field or function name after "
            "'.', found 'true'");
  EXPECT_EQ(P("iff && whiles"), "_&&_(iff, whiles)");
}

TEST(ParserTest, CommentsAndWhitespace) {
  EXPECT_EQ(P("a // first\n  && b // second"), "_&&_(a, b)");
  EXPECT_EQ(P("\t\r\n\fa\n"), "a");
}

// ---- Macros ---------------------------------------------------------------

TEST(ParserTest, HasMacro) {
  EXPECT_EQ(P("has(a.b)"), "@has(a.b)");
  EXPECT_EQ(P("has(a.b.c)"), "@has(a.b.c)");
  EXPECT_EQ(P("has(a[0].b)"), "@has(_[_](a, 0).b)");
  EXPECT_EQ(P("has(a)"),
            "error: 1:5: invalid argument to has() macro: expected a field "
            "selection such as has(m.f)");
  EXPECT_THAT(P("has(a[0])"), HasSubstr("invalid argument to has() macro"));
  EXPECT_THAT(P("has(f(x))"), HasSubstr("invalid argument to has() macro"));
  EXPECT_THAT(P("has(has(a.b))"), HasSubstr("invalid argument to has() macro"));
  // Other arities and receiver style are ordinary calls.
  EXPECT_EQ(P("has(a.b, c)"), "has(a.b, c)");
  EXPECT_EQ(P("has()"), "has()");
  EXPECT_EQ(P("x.has(a.b)"), "x.has(a.b)");
  EXPECT_EQ(NoMacros("has(a.b)"), "has(a.b)");
  EXPECT_EQ(NoMacros("has(a)"), "has(a)");

  ParseResult r = Parse("has(m.f)");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->kind, ExprKind::kSelect);
  EXPECT_TRUE(r.expr->test_only);
  EXPECT_EQ(r.expr->name, "f");
}

TEST(ParserTest, AllMacro) {
  EXPECT_EQ(P("[1, 2].all(x, x > 0)"),
            "comprehension(x, [1, 2], __result__, true, "
            "@not_strictly_false(__result__), _&&_(__result__, _>_(x, 0)), "
            "__result__)");
}

TEST(ParserTest, ExistsMacro) {
  EXPECT_EQ(P("l.exists(x, x == 1)"),
            "comprehension(x, l, __result__, false, "
            "@not_strictly_false(!_(__result__)), "
            "_||_(__result__, _==_(x, 1)), __result__)");
}

TEST(ParserTest, ExistsOneMacro) {
  EXPECT_EQ(P("l.exists_one(x, x)"),
            "comprehension(x, l, __result__, 0, true, "
            "_?_:_(x, _+_(__result__, 1), __result__), _==_(__result__, 1))");
}

TEST(ParserTest, MapMacro) {
  EXPECT_EQ(P("l.map(x, x * 2)"),
            "comprehension(x, l, __result__, [], true, "
            "_+_(__result__, [_*_(x, 2)]), __result__)");
  EXPECT_EQ(P("l.map(x, x > 1, x * 2)"),
            "comprehension(x, l, __result__, [], true, "
            "_?_:_(_>_(x, 1), _+_(__result__, [_*_(x, 2)]), __result__), "
            "__result__)");
}

TEST(ParserTest, FilterMacro) {
  EXPECT_EQ(P("l.filter(x, x > 1)"),
            "comprehension(x, l, __result__, [], true, "
            "_?_:_(_>_(x, 1), _+_(__result__, [x]), __result__), __result__)");
}

TEST(ParserTest, MacroKindsAreRecorded) {
  struct Case {
    const char* source;
    MacroKind kind;
  };
  for (const Case& c : {Case{"l.all(x, p)", MacroKind::kAll},
                        Case{"l.exists(x, p)", MacroKind::kExists},
                        Case{"l.exists_one(x, p)", MacroKind::kExistsOne},
                        Case{"l.map(x, t)", MacroKind::kMap},
                        Case{"l.map(x, p, t)", MacroKind::kMapFilter},
                        Case{"l.filter(x, p)", MacroKind::kFilter}}) {
    ParseResult r = Parse(c.source);
    ASSERT_NE(r.expr, nullptr) << c.source;
    EXPECT_EQ(r.expr->kind, ExprKind::kComprehension) << c.source;
    EXPECT_EQ(r.expr->macro, c.kind) << c.source;
    EXPECT_EQ(r.expr->iter_var, "x");
    EXPECT_EQ(r.expr->accu_var, kAccumulatorName);
    EXPECT_EQ(r.expr->children.size(), 5u);
  }
}

TEST(ParserTest, NestedMacros) {
  EXPECT_EQ(P("l.all(x, x.exists(y, y))"),
            "comprehension(x, l, __result__, true, "
            "@not_strictly_false(__result__), _&&_(__result__, "
            "comprehension(y, x, __result__, false, "
            "@not_strictly_false(!_(__result__)), _||_(__result__, y), "
            "__result__)), __result__)");
  EXPECT_EQ(P("l.map(x, x).filter(y, y)"),
            "comprehension(y, comprehension(x, l, __result__, [], true, "
            "_+_(__result__, [x]), __result__), __result__, [], true, "
            "_?_:_(y, _+_(__result__, [y]), __result__), __result__)");
}

TEST(ParserTest, MacroMisuse) {
  EXPECT_EQ(P("l.all(x.y, true)"),
            "error: 1:7: all() variable name must be a simple identifier");
  EXPECT_EQ(P("l.exists(1, true)"),
            "error: 1:10: exists() variable name must be a simple identifier");
  EXPECT_THAT(P("l.map(.x, x)"),
              HasSubstr("map() variable name must be a simple identifier"));
  EXPECT_THAT(P("l.filter(f(x), x)"),
              HasSubstr("filter() variable name must be a simple identifier"));
  EXPECT_THAT(P("l.exists_one([x], x)"), HasSubstr("exists_one() variable"));
  EXPECT_THAT(P("l.all(__result__, true)"),
              HasSubstr("reserved for the accumulator"));
  // Several misuses: each is reported.
  EXPECT_EQ(P("l.all(1, x) && has(y)"),
            "error: 1:7: all() variable name must be a simple identifier; "
            "1:20: invalid argument to has() macro: expected a field "
            "selection such as has(m.f)");
}

TEST(ParserTest, MacroArityMismatchIsACall) {
  EXPECT_EQ(P("l.all(x)"), "l.all(x)");
  EXPECT_EQ(P("l.exists(x, y, z)"), "l.exists(x, y, z)");
  EXPECT_EQ(P("l.map(x)"), "l.map(x)");
  EXPECT_EQ(P("l.map(x, y, z, w)"), "l.map(x, y, z, w)");
  EXPECT_EQ(P("l.filter(x, y, z)"), "l.filter(x, y, z)");
  // Global forms are not macros.
  EXPECT_EQ(P("all(l, x)"), "all(l, x)");
  EXPECT_EQ(P("map(l, x, x)"), "map(l, x, x)");
}

TEST(ParserTest, MacrosDisabled) {
  EXPECT_EQ(NoMacros("l.all(x, x > 0)"), "l.all(x, _>_(x, 0))");
  EXPECT_EQ(NoMacros("l.map(x, x)"), "l.map(x, x)");
  EXPECT_EQ(NoMacros("l.all(1, 2)"), "l.all(1, 2)");
}

// ---- Unsupported constructs -------------------------------------------------

TEST(ParserTest, MessageConstructionIsReported) {
  EXPECT_EQ(P("T{a: 1}"),
            "error: 1:1: message construction 'Type{field: value}' is not "
            "supported");
  EXPECT_THAT(P("google.protobuf.Int64Value{value: 1} == x"),
              HasSubstr("1:1: message construction"));
  EXPECT_THAT(P("T{}"), HasSubstr("message construction"));
  EXPECT_THAT(P("T{a: 1, b: 2,}"), HasSubstr("message construction"));
  // Errors after it are still found.
  EXPECT_EQ(P("T{} + if"),
            "error: 1:1: message construction 'Type{field: value}' is not "
            "supported; 1:7: reserved identifier: if");
  EXPECT_THAT(P("T{1: 2}"), HasSubstr("expected a field name, found '1'"));
}

TEST(ParserTest, OptionalSyntaxIsReported) {
  EXPECT_EQ(P("a.?b"),
            "error: 1:2: optional field selection '.?' is not supported");
  EXPECT_EQ(P("a[?0]"), "error: 1:2: optional index '[?' is not supported");
  EXPECT_EQ(P("[?a]"),
            "error: 1:2: optional list element '?e' is not supported");
  EXPECT_EQ(P("{?a: b}"),
            "error: 1:2: optional map entry '?k: v' is not supported");
  EXPECT_EQ(P("T{?a: b}"),
            "error: 1:1: message construction 'Type{field: value}' is not "
            "supported; 1:3: optional field '?f' is not supported");
}

// ---- Syntax errors and positions --------------------------------------------

TEST(ParserTest, SyntaxErrors) {
  EXPECT_EQ(P(""), "error: 1:1: unexpected end of expression");
  EXPECT_EQ(P("   "), "error: 1:4: unexpected end of expression");
  EXPECT_EQ(P("a +"), "error: 1:4: unexpected end of expression");
  EXPECT_EQ(P("(a"), "error: 1:3: expected ')', found end of expression");
  EXPECT_EQ(P("a)"), "error: 1:2: unexpected token ')'");
  EXPECT_EQ(P("a b"), "error: 1:3: unexpected token 'b'");
  EXPECT_EQ(P("a ? b"), "error: 1:6: expected ':', found end of expression");
  EXPECT_EQ(P("+a"), "error: 1:1: unexpected token '+'");
  EXPECT_EQ(P("a && || b"), "error: 1:6: unexpected token '||'");
  EXPECT_EQ(P("a = b"),
            "error: 1:3: unexpected character '='; did you mean '=='?");
  EXPECT_EQ(P("a # b"), "error: 1:3: unexpected character '#'");
  EXPECT_EQ(P("1 + é"), "error: 1:5: unexpected character 'é' (U+00E9)");
  EXPECT_EQ(P("'a very long string literal here' 1"),
            "error: 1:35: unexpected token '1'");
  EXPECT_EQ(P("1 'a very long string literal here'"),
            "error: 1:3: unexpected token ''a very long string lite...'");
}

TEST(ParserTest, PositionsAreLineAndCodePointColumn) {
  EXPECT_EQ(P("a &&\n  b ++ c"), "error: 2:6: unexpected token '+'");
  // 'é' is two bytes but one column.
  EXPECT_EQ(P("'é' + #"), "error: 1:7: unexpected character '#'");
  EXPECT_EQ(P("x\n\n  .if(\n'\\z')"),
            "error: 4:2: invalid escape sequence '\\z'");
}

TEST(ParserTest, MultipleErrorsInSourceOrder) {
  EXPECT_EQ(P("'\\q' + '\\z'"),
            "error: 1:2: invalid escape sequence '\\q'; 1:9: invalid escape "
            "sequence '\\z'");
  // A lexical error followed by a syntax error.
  EXPECT_EQ(P("'\\q' + )"),
            "error: 1:2: invalid escape sequence '\\q'; 1:8: unexpected token "
            "')'");
  // A bad character reported by the lexer is not reported again as an
  // unexpected token.
  EXPECT_EQ(P("a # b"), "error: 1:3: unexpected character '#'");
  EXPECT_EQ(P("# + $"),
            "error: 1:1: unexpected character '#'; 1:5: unexpected character "
            "'$'");
}

TEST(ParserTest, TheFatalErrorIsAlwaysReturned) {
  ParseResult r = Parse(Repeat("if + ", 100) + ")");
  ASSERT_EQ(r.issues.size(), 20u);
  EXPECT_EQ(r.issues[18].message, "reserved identifier: if");
  EXPECT_EQ(r.issues[19].message, "unexpected token ')'");
  EXPECT_EQ(r.issues[19].position.column, 501);
}

TEST(ParserTest, IssuesAreCapped) {
  std::string s;
  for (int i = 0; i < 200; ++i) s += "if + ";
  s += "1";
  ParseResult r = Parse(s);
  EXPECT_EQ(r.expr, nullptr);
  EXPECT_LE(r.issues.size(), 20u);
  EXPECT_GE(r.issues.size(), 1u);
}

// ---- Node ids and offsets
// -----------------------------------------------------

void CollectIds(const Expr& e, std::vector<int64_t>* ids) {
  ids->push_back(e.id);
  for (const auto& c : e.children) CollectIds(*c, ids);
}

TEST(ParserTest, IdsAreUniqueAndPositive) {
  ParseResult r = Parse(
      "a.b.c + f(x)[0] - [1, 2].map(y, y * 2).size() > {'k': v}.k && "
      "has(m.n) ? l.exists_one(z, z) : -1");
  ASSERT_NE(r.expr, nullptr);
  std::vector<int64_t> ids;
  CollectIds(*r.expr, &ids);
  std::set<int64_t> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size());
  EXPECT_GT(*unique.begin(), 0);
}

TEST(ParserTest, OffsetsPointAtTheFirstCharacter) {
  ParseResult r = Parse("x + f(y.z)");
  ASSERT_NE(r.expr, nullptr);
  const Expr& plus = *r.expr;
  EXPECT_EQ(plus.offset, 0);
  EXPECT_EQ(plus.child(0).offset, 0);  // x
  const Expr& call = plus.child(1);
  EXPECT_EQ(call.offset, 4);           // f(...)
  EXPECT_EQ(call.child(0).offset, 6);  // y.z
  EXPECT_EQ(call.child(0).child(0).offset, 6);

  r = Parse("  -a.b  ");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->offset, 2);
  EXPECT_EQ(r.expr->child(0).offset, 3);

  r = Parse("(a) * b");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->offset, 0);

  r = Parse("l.all(x, x)");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->offset, 0);
  r = Parse(" has(a.b)");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->offset, 1);
}

// ---- Limits
// -------------------------------------------------------------------

constexpr char kNesting[] = "expression nesting exceeds the limit of 250";

// Runs `source` and checks that it fails with `message` quickly.
void ExpectFastError(const std::string& source, const std::string& message) {
  const auto start = std::chrono::steady_clock::now();
  ParseResult r = Parse(source);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.expr, nullptr);
  ASSERT_FALSE(r.issues.empty());
  EXPECT_THAT(r.issues[0].message, HasSubstr(message));
  // Generous: the parse is linear and stops at the limit; this only catches
  // a quadratic or runaway parse.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(ParserLimitsTest, DeepParentheses) {
  EXPECT_EQ(P(Repeat("(", 200) + "1" + Repeat(")", 200)), "1");
  ExpectFastError(Repeat("(", 300) + "1" + Repeat(")", 300), kNesting);
  // 100,000 deep is rejected by size; within the size limit it is rejected
  // by depth.
  ExpectFastError(Repeat("(", 100000) + "1" + Repeat(")", 100000),
                  "expression is too long");
  ExpectFastError(Repeat("(", 100000), kNesting);
  ParseResult r = Parse(Repeat("(", 1000));
  ASSERT_FALSE(r.issues.empty());
  EXPECT_EQ(r.issues[0].position.column, 251);
}

TEST(ParserLimitsTest, DeepBracketsBracesAndCalls) {
  ExpectFastError(Repeat("[", 100000), kNesting);
  ExpectFastError(Repeat("{", 100000), kNesting);
  ExpectFastError(Repeat("{1:", 30000), kNesting);
  ExpectFastError(Repeat("f(", 50000), kNesting);
  ExpectFastError(Repeat("a[", 50000), kNesting);
  ExpectFastError(Repeat("a ? b : ", 12000) + "c", kNesting);
  ExpectFastError(Repeat("l.all(x, ", 10000) + "x", kNesting);
  EXPECT_THAT(P(Repeat("[", 100) + Repeat("]", 100)), StartsWith("[[[[[["));
  // No follow-on errors from the placeholders left by the fatal error.
  EXPECT_EQ(P(Repeat("has(", 300) + "a.b" + Repeat(")", 300)),
            absl::StrCat("error: 1:1001: ", kNesting));
  EXPECT_EQ(P(Repeat("l.all(x, ", 300)),
            absl::StrCat("error: 1:2248: ", kNesting));
}

TEST(ParserLimitsTest, UnaryChains) {
  ExpectFastError(Repeat("!", 100000) + "a", kNesting);
  ExpectFastError(Repeat("-", 100000) + "1", kNesting);
  ExpectFastError(Repeat("-!", 40000) + "1", kNesting);
  EXPECT_THAT(P(Repeat("!", 100) + "a"), StartsWith("!_(!_("));
}

TEST(ParserLimitsTest, OperatorAndMemberChains) {
  // Left-leaning chains are as deep as they are long: limited.
  ExpectFastError("1" + Repeat(" + 1", 20000), kNesting);
  ExpectFastError("a" + Repeat(".b", 40000), kNesting);
  ExpectFastError("a" + Repeat("[0]", 30000), kNesting);
  ExpectFastError("a" + Repeat(".f()", 20000), kNesting);
  ExpectFastError("1" + Repeat(" * 1", 20000), kNesting);
  ExpectFastError("1" + Repeat(" < 1", 20000), kNesting);
  EXPECT_THAT(P("1" + Repeat(" + 1", 200)), StartsWith("_+_(_+_("));
  // || and && chains are balanced, so long ones are fine.
  ParseResult r = Parse("a" + Repeat(" || a", 15000));
  EXPECT_NE(r.expr, nullptr);
  r = Parse("a" + Repeat(" && a", 15000));
  EXPECT_NE(r.expr, nullptr);
  // So are wide lists and maps.
  r = Parse("[" + Repeat("1,", 40000) + "]");
  ASSERT_NE(r.expr, nullptr);
  EXPECT_EQ(r.expr->children.size(), 40000u);
}

// The deepest accepted nesting and the rejection of deeper input fit in a
// modest thread stack (a 1 MiB stack; ~200 KiB are needed at -O2).
TEST(ParserLimitsTest, FitsInASmallThreadStack) {
  struct Job {
    std::string source;
    bool failed_as_expected = false;
  };
  auto run = [](void* arg) -> void* {
    auto* job = static_cast<Job*>(arg);
    ParseResult r = Parse(job->source);
    bool nesting = false;
    for (const Issue& issue : r.issues) {
      nesting |= issue.message.find("nesting") != std::string::npos;
    }
    job->failed_as_expected = r.expr == nullptr && nesting;
    return nullptr;
  };
  for (const char* unit : {"[", "f(", "l.all(x, ", "{1: ", "(", "-(", "a[",
                           "T{a: ", "a ? b : ", "x.f(", "has(", "![", "{"}) {
    Job job{Repeat(unit, 2000) + "1"};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    pthread_t thread;
    ASSERT_EQ(pthread_create(&thread, &attr, run, &job), 0);
    pthread_join(thread, nullptr);
    pthread_attr_destroy(&attr);
    EXPECT_TRUE(job.failed_as_expected) << unit;
  }
}

TEST(ParserLimitsTest, SourceSize) {
  const std::string big(1 << 20, 'a');
  ExpectFastError(big,
                  "expression is too long: 1048576 bytes exceeds the "
                  "limit of 102400 bytes");
  ParseResult r = Parse(std::string(kMaxSourceBytes + 1, ' '));
  ASSERT_EQ(r.issues.size(), 1u);
  EXPECT_EQ(r.issues[0].position.line, 1);
  EXPECT_EQ(r.issues[0].position.column, 1);
  // Exactly at the limit is accepted.
  std::string at_limit = "a" + std::string(kMaxSourceBytes - 1, ' ');
  EXPECT_EQ(P(at_limit), "a");
}

TEST(ParserLimitsTest, InvalidUtf8) {
  EXPECT_EQ(P("a + '\xff'"), "error: 1:6: invalid UTF-8 in source");
  EXPECT_EQ(P("'é'\n  + \xc0\x80"), "error: 2:5: invalid UTF-8 in source");
  EXPECT_EQ(P("'\xed\xa0\x80'"), "error: 1:2: invalid UTF-8 in source");
  EXPECT_EQ(P("x // comment \xe2\x82"), "error: 1:14: invalid UTF-8 in source");
  std::string big = std::string(90000, ' ') + "\xff";
  ExpectFastError(big, "invalid UTF-8 in source");
}

TEST(ParserLimitsTest, ManyErrorsStayFast) {
  ExpectFastError(Repeat("#", 100000), "unexpected character '#'");
  ExpectFastError("'" + Repeat("\\q", 50000) + "'", "invalid escape sequence");
  ExpectFastError(Repeat("if ", 30000), "reserved identifier");
  ExpectFastError(Repeat("a", 100000) + " b", "unexpected token");
}

TEST(ParserTest, DebugStringOfDoublesAndEscapes) {
  EXPECT_EQ(P("0.1"), "0.1");
  EXPECT_EQ(P("100.0"), "100.0");
  EXPECT_EQ(P("1e-7"), "1e-07");
  EXPECT_EQ(P("'\\x00'"), "\"\\x00\"");
  EXPECT_EQ(P("'\\u007f'"), "\"\\x7f\"");
}

}  // namespace
}  // namespace tappa::cel
