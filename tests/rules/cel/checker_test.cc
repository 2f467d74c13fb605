// Compile-time checking: name resolution, static types and the issues a
// ruleset author sees, with their positions. Messages follow cel-go's
// checker ("undeclared reference to 'x'", "undefined field ...", "found no
// matching overload for ...").
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rules/cel/containers.h"
#include "rules/cel/program.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

class CheckerTest : public ::testing::Test {
 protected:
  CheckerTest() {
    env_.DeclareVariable(
        "contact",
        Type::Object("contact",
                     {{"phase", Type::String()},
                      {"counts", Type::Map(Type::String(), Type::Int())},
                      {"attrs", Type::Map(Type::String(), Type::String())},
                      {"tags", Type::List(Type::String())},
                      {"last_seen", Type::Timestamp()}}));
    env_.DeclareVariable(
        "context", Type::Object("context", {{"channel", Type::String()}}));
    env_.DeclareVariable("now", Type::Timestamp());
    env_.DeclareVariable("event", Type::Dyn());
  }

  // "line:column: message" of every issue, or "ok: <result type>".
  std::string Check(absl::string_view expr) {
    CompileResult r = Compile(expr, env_);
    if (r.ok())
      return absl::StrCat("ok: ", r.program->result_type().DebugString());
    std::string out;
    for (const Issue& issue : r.issues) {
      if (!out.empty()) out += "\n";
      absl::StrAppend(&out, issue.position.line, ":", issue.position.column,
                      ": ", issue.message);
    }
    return out;
  }

  Environment env_;
};

TEST_F(CheckerTest, WellTypedConditions) {
  EXPECT_EQ(Check("contact.phase == 'consideration'"), "ok: bool");
  EXPECT_EQ(Check("contact.counts.product_view_7d >= 3"), "ok: bool");
  EXPECT_EQ(Check("contact.counts.product_view_7d"), "ok: int");
  EXPECT_EQ(Check("contact.counts['x'] + 1"), "ok: int");
  EXPECT_EQ(Check("contact.counts.x == 1.0"), "ok: bool");  // numeric mix
  EXPECT_EQ(Check("contact.counts.x < 2u"), "ok: bool");
  EXPECT_EQ(Check("!('first_order' in contact.attrs)"), "ok: bool");
  EXPECT_EQ(Check("'vip' in contact.tags"), "ok: bool");
  EXPECT_EQ(Check("contact.tags[0]"), "ok: string");
  EXPECT_EQ(Check("contact.tags.map(t, t.size())"), "ok: list(int)");
  EXPECT_EQ(Check("contact.tags.filter(t, t.startsWith('a'))"),
            "ok: list(string)");
  EXPECT_EQ(Check("contact.counts.all(k, k.size() > 0)"), "ok: bool");
  EXPECT_EQ(Check("now - contact.last_seen > duration('2160h')"), "ok: bool");
  EXPECT_EQ(Check("contact.last_seen + duration('1h')"),
            "ok: google.protobuf.Timestamp");
  EXPECT_EQ(Check("now.getHours('Europe/Rome')"), "ok: int");
  EXPECT_EQ(Check("has(contact.phase)"), "ok: bool");
  EXPECT_EQ(Check("has(contact.attrs.tier)"), "ok: bool");
  EXPECT_EQ(Check("event.type in ['purchase']"), "ok: bool");
  EXPECT_EQ(Check("event.anything.goes"), "ok: dyn");
  EXPECT_EQ(Check("event.x ? 1 : 'a'"), "ok: dyn");
  EXPECT_EQ(Check("true ? 1 : 'a'"), "ok: int");  // folded to the branch
  EXPECT_EQ(Check("event.x ? 1 : 2"), "ok: int");
  EXPECT_EQ(Check("[1, 2]"), "ok: list(int)");
  EXPECT_EQ(Check("{'a': 1}"), "ok: map(string, int)");
  EXPECT_EQ(Check("type(1)"), "ok: type");
  EXPECT_EQ(Check("dyn(contact.phase) == 3"), "ok: bool");
  EXPECT_EQ(Check("contact.phase.matches('^con')"), "ok: bool");
}

TEST_F(CheckerTest, UndeclaredReferences) {
  EXPECT_EQ(Check("contct.phase == 'x'"),
            "1:1: undeclared reference to 'contct'");
  EXPECT_EQ(
      Check("a + b"),
      "1:1: undeclared reference to 'a'\n1:5: undeclared reference to 'b'");
  EXPECT_EQ(Check("foo(1)"), "1:1: undeclared reference to 'foo'");
  EXPECT_EQ(Check("contact.phase.foo()"), "1:1: undeclared reference to 'foo'");
  EXPECT_EQ(Check("[1].map(x, y)"), "1:12: undeclared reference to 'y'");
  // Comprehension variables are not visible outside their macro.
  EXPECT_EQ(Check("[1].map(x, x) == x"), "1:18: undeclared reference to 'x'");
  // has() needs the macro; without it, it is an ordinary (unknown) function.
  CompileOptions no_macros;
  no_macros.parse.enable_macros = false;
  CompileResult r = Compile("has(contact.phase)", env_, no_macros);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.issues[0].message, "undeclared reference to 'has'");
}

TEST_F(CheckerTest, UndefinedFields) {
  EXPECT_EQ(Check("contact.phse == 'x'"),
            "1:1: undefined field 'phse' on type 'contact'");
  EXPECT_EQ(Check("1 == 1 && context.chanel == 'web'"),
            "1:11: undefined field 'chanel' on type 'context'");
  EXPECT_EQ(Check("has(contact.phse)"),
            "1:1: undefined field 'phse' on type 'contact'");
  EXPECT_EQ(Check("contact.phase.length"),
            "1:1: type 'string' does not support field selection");
  EXPECT_EQ(Check("contact.counts.x.y"),
            "1:1: type 'int' does not support field selection");
}

TEST_F(CheckerTest, NoMatchingOverload) {
  EXPECT_EQ(Check("contact.phase == 3"),
            "1:1: found no matching overload for '_==_' applied to "
            "'(string, int)'");
  EXPECT_EQ(Check("\"a\" + 1"),
            "1:1: found no matching overload for '_+_' applied to "
            "'(string, int)'");
  EXPECT_EQ(Check("contact.counts.x + 1.5"),
            "1:1: found no matching overload for '_+_' applied to "
            "'(int, double)'");
  EXPECT_EQ(Check("size(1, 2)"),
            "1:1: found no matching overload for 'size' applied to "
            "'(int, int)'");
  EXPECT_EQ(Check("contact.phase.startsWith(1)"),
            "1:1: found no matching overload for 'startsWith' applied to "
            "'string.(int)'");
  EXPECT_EQ(Check("contact.phase && true"),
            "1:1: found no matching overload for '_&&_' applied to "
            "'(string, bool)'");
  EXPECT_EQ(Check("!contact.phase"),
            "1:1: found no matching overload for '!_' applied to '(string)'");
  EXPECT_EQ(Check("now < 1"),
            "1:1: found no matching overload for '_<_' applied to "
            "'(google.protobuf.Timestamp, int)'");
  EXPECT_EQ(Check("contact.tags[\"x\"]"),
            "1:1: found no matching overload for '_[_]' applied to "
            "'(list(string), string)'");
  EXPECT_EQ(Check("1 in contact.tags"),
            "1:1: found no matching overload for '@in' applied to "
            "'(int, list(string))'");
  EXPECT_EQ(Check("contact.phase.all(x, true)"),
            "1:1: expression of type 'string' cannot be the range of a "
            "comprehension (must be list, map, or dynamic)");
  EXPECT_EQ(Check("int(contact.tags)"),
            "1:1: found no matching overload for 'int' applied to "
            "'(list(string))'");
}

TEST_F(CheckerTest, InvalidConstantRegexIsAnIssue) {
  const std::string result = Check("contact.phase.matches('a(')");
  EXPECT_EQ(result.substr(0, 6), "1:23: ") << result;
  // A pattern known only at run time fails at run time instead.
  EXPECT_EQ(Check("contact.phase.matches(contact.attrs.re)"), "ok: bool");
}

TEST_F(CheckerTest, ErrorsOfConstantExpressionsAreRuntimeValues) {
  // CEL: 1/0 is an evaluation error, not a check error.
  CompileResult r = Compile("1 / 0 == 1 || contact.phase == 'x'", env_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Check("{'a': 1, 'a': 2}"), "ok: map(string, int)");
}

TEST_F(CheckerTest, TypeIdentifiers) {
  EXPECT_EQ(Check("type(now) == google.protobuf.Timestamp"), "ok: bool");
  EXPECT_EQ(Check("type(contact.phase) == string"), "ok: bool");
  EXPECT_EQ(Check("google.protobuf.Duration"), "ok: type");
  EXPECT_EQ(Check("null_type"), "ok: type");
}

TEST_F(CheckerTest, ReportsEveryIssue) {
  EXPECT_EQ(Check("contct.phase == 'x' && context.chanel == 'y' &&\n"
                  "  contact.phase == 3"),
            "1:1: undeclared reference to 'contct'\n"
            "1:24: undefined field 'chanel' on type 'context'\n"
            "2:3: found no matching overload for '_==_' applied to "
            "'(string, int)'");
}

TEST_F(CheckerTest, RedeclaringAVariableKeepsItsIndex) {
  const int index = env_.DeclareVariable("now", Type::Dyn());
  EXPECT_EQ(index, 2);
  EXPECT_EQ(env_.variable_count(), 4);
  EXPECT_EQ(Check("now.anything"), "ok: dyn");
}

TEST_F(CheckerTest, VeryDeepExpressionsAreRejectedNotCrashed) {
  std::string expr;
  for (int i = 0; i < 100000; ++i) expr += "(";
  expr += "1";
  for (int i = 0; i < 100000; ++i) expr += ")";
  CompileResult r = Compile(expr, env_);
  EXPECT_FALSE(r.ok());
  std::string chain = "1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  r = Compile(chain, env_);  // rejected by the parser's nesting limit, or fine
  if (r.ok()) {
    EXPECT_EQ(r.program->Evaluate({}).int_value(), 5001);
  }
}

}  // namespace
}  // namespace tappa::cel

namespace tappa::cel {
namespace {

// Paths as "variable.field.field" strings, sorted.
std::vector<std::string> PathsOf(const Program& program,
                                 const Environment& env) {
  std::vector<std::string> out;
  for (const VariablePath& p : program.VariablePaths()) {
    std::string s = env.variables()[p.variable].name;
    for (const std::string& f : p.fields) absl::StrAppend(&s, ".", f);
    out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(CheckerTest, VariablePathsAreEveryReadOfAVariable) {
  auto paths = [this](absl::string_view expr) {
    CompileResult r = Compile(expr, env_);
    EXPECT_TRUE(r.ok()) << expr;
    return r.ok() ? PathsOf(*r.program, env_) : std::vector<std::string>();
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(paths("contact.phase == \"a\" && context.channel in [\"web\"]"),
            (V{"contact.phase", "context.channel"}));
  // Each path once; a has() test reads the map it tests.
  EXPECT_EQ(paths("contact.counts.x >= 1 && contact.counts.x < 9 && "
                  "has(contact.attrs.tier)"),
            (V{"contact.attrs", "contact.counts.x"}));
  // Whole variables: `now`, and a map indexed with a computed key.
  EXPECT_EQ(paths("now > contact.last_seen"), (V{"contact.last_seen", "now"}));
  EXPECT_EQ(paths("event[\"ty\" + \"pe\"] == \"view\""), (V{"event"}));
  // Comprehension variables are not variables; their range is read.
  EXPECT_EQ(paths("contact.tags.exists(t, t == context.channel)"),
            (V{"contact.tags", "context.channel"}));
  // Constants read nothing.
  EXPECT_EQ(paths("1 + 2 == 3"), V{});
}

}  // namespace
}  // namespace tappa::cel
