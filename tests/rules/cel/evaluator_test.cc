// Evaluation semantics, end to end (parse, check, plan, evaluate).
//
// Expected values are written from the CEL specification (langdef.md:
// "Arithmetic", "Equality", "Ordering", "Logical operators", "Macros",
// "Standard definitions") and the conformance suite's simple tests
// (basic, integer_math, fp_math, comparisons, logic, lists, maps, macros,
// string, timestamps, conversions), not from what this code returns.
//
// Each case is an expression and its expectation:
//   "<CEL literal>"  the value, compared by rendering both (so 1 and 1.0
//                    differ, as do 1 and 1u);
//   "error:<msg>"    an evaluation error with exactly this message;
//   "error~<part>"   an evaluation error whose message contains <part>;
//   "issue~<part>"   a compile (check) issue whose message contains <part>.
// Unless noted, cases are evaluated against the bindings of CelTest, whose
// variables keep sub-expressions from being folded at compile time, so both
// the folding and the run-time paths are exercised.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "rules/cel/checker.h"
#include "rules/cel/containers.h"
#include "rules/cel/parser.h"
#include "rules/cel/plan.h"
#include "rules/cel/program.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

struct Case {
  const char* expr;
  const char* expected;
};

Value List(std::vector<Value> elements) {
  return Value::OwnedList(new VectorList(std::move(elements)));
}

Value Map(std::vector<std::pair<Value, Value>> entries) {
  auto* map = new VectorMap();
  for (auto& [k, v] : entries) {
    EXPECT_TRUE(map->Insert(std::move(k), std::move(v)).ok());
  }
  return Value::OwnedMap(map);
}

class CelTest : public ::testing::Test {
 protected:
  CelTest() {
    Bind("zero", Value::Int(0));
    Bind("one", Value::Int(1));
    Bind("t", Value::Bool(true));
    Bind("f", Value::Bool(false));
    Bind("s", Value::String("abc"));
    Bind("bad", Value::String("["));
    Bind("xs", List({Value::Int(1), Value::Int(2), Value::Int(3)}));
    Bind("m", Map({{Value::String("a"), Value::Int(1)},
                   {Value::String("b"),
                    Map({{Value::String("c"), Value::Int(2)}})}}));
    Bind("ts", Value::FromTimestamp({1234567890, 0}));  // 2009-02-13T23:31:30Z
  }

  void Bind(absl::string_view name, Value value, Type type = Type::Dyn()) {
    const int index = env_.DeclareVariable(name, std::move(type));
    if (index >= static_cast<int>(values_.size())) values_.resize(index + 1);
    values_[index] = std::move(value);
  }

  // Compiles and evaluates `expr`; on compile issues returns false and their
  // messages in *issues.
  bool Run(absl::string_view expr, Value* result, std::string* issues,
           const EvalOptions& options = {}) {
    CompileResult r = Compile(expr, env_);
    if (!r.ok()) {
      std::vector<std::string> messages;
      for (const Issue& i : r.issues) messages.push_back(i.message);
      *issues = absl::StrJoin(messages, "; ");
      return false;
    }
    *result = r.program->Evaluate(values_, options).Own();
    return true;
  }

  Value Eval(absl::string_view expr, const EvalOptions& options = {}) {
    Value v;
    std::string issues;
    if (!Run(expr, &v, &issues, options)) {
      ADD_FAILURE() << "compiling " << expr << ": " << issues;
    }
    return v;
  }

  ::testing::AssertionResult Matches(const Case& c) {
    Value v;
    std::string issues;
    const bool compiled = Run(c.expr, &v, &issues);
    const absl::string_view expected = c.expected;
    if (absl::StartsWith(expected, "issue~")) {
      if (!compiled && absl::StrContains(issues, expected.substr(6))) {
        return ::testing::AssertionSuccess();
      }
      return ::testing::AssertionFailure()
             << c.expr << ": expected issue " << expected << ", got "
             << (compiled ? v.DebugString() : issues);
    }
    if (!compiled) {
      return ::testing::AssertionFailure() << c.expr << ": issues " << issues;
    }
    if (absl::StartsWith(expected, "error:") ||
        absl::StartsWith(expected, "error~")) {
      const absl::string_view message = expected.substr(6);
      const bool exact = expected[5] == ':';
      if (v.IsError() &&
          (exact ? v.error_message() == message
                 : absl::StrContains(v.error_message(), message))) {
        return ::testing::AssertionSuccess();
      }
      return ::testing::AssertionFailure()
             << c.expr << ": expected " << expected << ", got "
             << v.DebugString();
    }
    Value want;
    if (!Run(c.expected, &want, &issues)) {
      return ::testing::AssertionFailure()
             << "bad expectation " << c.expected << ": " << issues;
    }
    if (v.DebugString() == want.DebugString()) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << c.expr << ": expected " << want.DebugString() << ", got "
           << v.DebugString();
  }

  void ExpectAll(std::initializer_list<Case> cases) {
    for (const Case& c : cases) EXPECT_TRUE(Matches(c));
  }

  Environment env_;
  std::vector<Value> values_;
};

constexpr char kOverflow[] = "error:return error for overflow";
constexpr char kDivZero[] = "error:division by zero";
constexpr char kModZero[] = "error:modulus by zero";

TEST_F(CelTest, IntegerArithmetic) {
  ExpectAll({
      {"1 + 2", "3"},
      {"2 - 5", "-3"},
      {"3 * 4", "12"},
      {"7 / 2", "3"},
      {"-7 / 2", "-3"},  // truncates toward zero
      {"7 % 3", "1"},
      {"-7 % 3", "-1"},  // sign of the dividend
      {"7 % -3", "1"},
      {"one + one", "2"},
      {"-one", "-1"},
      {"one - 2 * one", "-1"},
      {"9223372036854775807 + 1", kOverflow},
      {"-9223372036854775808 - 1", kOverflow},
      {"9223372036854775807 * 2", kOverflow},
      {"-9223372036854775808 * -1", kOverflow},
      {"-(-9223372036854775808)", kOverflow},
      {"-9223372036854775808 / -1", kOverflow},
      {"-9223372036854775808 % -1", kOverflow},
      {"9223372036854775807 + one", kOverflow},
      {"-9223372036854775807 - one - one", kOverflow},
      {"-9223372036854775807 - one", "-9223372036854775808"},
      {"1 / 0", kDivZero},
      {"1 % 0", kModZero},
      {"one / zero", kDivZero},
      {"one % zero", kModZero},
  });
}

TEST_F(CelTest, UnsignedArithmetic) {
  ExpectAll({
      {"2u * 3u", "6u"},
      {"7u / 2u", "3u"},
      {"7u % 2u", "1u"},
      {"3u - 1u", "2u"},
      {"1u - 2u", kOverflow},
      {"18446744073709551615u + 1u", kOverflow},
      {"9223372036854775808u * 2u", kOverflow},
      {"1u / 0u", kDivZero},
      {"1u % 0u", kModZero},
      {"-1u", "issue~found no matching overload for '-_' applied to '(uint)'"},
      {"-dyn(1u)", "error:no matching overload for '-_'"},
  });
}

TEST_F(CelTest, DoubleArithmetic) {
  ExpectAll({
      {"2.5 * 2.0", "5.0"},
      {"0.1 + 0.2", "0.30000000000000004"},
      {"1.5 - 0.5", "1.0"},
      {"-(1.5)", "-1.5"},
      {"7.0 / 2.0", "3.5"},
      {"1.0 / 0.0", "double('Infinity')"},
      {"-1.0 / 0.0", "double('-Infinity')"},
      {"(0.0 / 0.0) != (0.0 / 0.0)", "true"},
      {"dyn(1.5) % dyn(1.0)", "error:no matching overload for '_%_'"},
      {"1.5 % 1.0", "issue~found no matching overload for '_%_'"},
  });
}

TEST_F(CelTest, NoImplicitNumericConversion) {
  ExpectAll({
      {"1 + 1.0",
       "issue~found no matching overload for '_+_' applied to '(int, double)'"},
      {"1u + 1",
       "issue~found no matching overload for '_+_' applied to '(uint, int)'"},
      {"dyn(1) + 1.0", "error:no matching overload for '_+_'"},
      {"dyn(1u) + 1", "error:no matching overload for '_+_'"},
      {"dyn(1.0) * 2", "error:no matching overload for '_*_'"},
      {"one + 1.0", "error:no matching overload for '_+_'"},  // one is dyn
  });
}

TEST_F(CelTest, Concatenation) {
  ExpectAll({
      {"'a' + 'b'", "'ab'"},
      {"s + 'd'", "'abcd'"},
      {"'' + s", "'abc'"},
      {"b'a' + b'b'", "b'ab'"},
      {"[1, 2] + [3]", "[1, 2, 3]"},
      {"[] + []", "[]"},
      {"xs + [4]", "[1, 2, 3, 4]"},
      {"xs + []", "[1, 2, 3]"},
      {"[1] + ['a']", "[1, 'a']"},
      {"'a' + 1",
       "issue~found no matching overload for '_+_' applied to "
       "'(string, int)'"},
      {"dyn('a') + b'a'", "error:no matching overload for '_+_'"},
  });
}

TEST_F(CelTest, HeterogeneousEquality) {
  ExpectAll({
      {"1 == 1u", "true"},
      {"1 == 1.0", "true"},
      {"1u == 1.0", "true"},
      {"one == 1u", "true"},
      {"2 == 2.5", "false"},
      {"-1 == 18446744073709551615u", "false"},
      {"9007199254740993 == 9007199254740992.0", "false"},
      {"[1] == [1.0]", "true"},
      {"[[1], [2]] == [[1], [2.0]]", "true"},
      {"{1: 'a'} == {1u: 'a'}", "true"},
      {"{'a': 1, 'b': 2} == {'b': 2, 'a': 1}", "true"},
      {"{'a': 1} == {'a': 2}", "false"},
      {"{'a': 1} == {'b': 1}", "false"},
      {"[1, 2] == [1, 2, 3]", "false"},
      {"[1, 'a'] == [1, 'a']", "true"},
      {"[dyn(1)] == ['1']", "false"},
      {"dyn(1) == 'a'", "false"},
      {"dyn('a') != 1", "true"},
      {"dyn(null) == 1", "false"},
      {"null == null", "true"},
      {"(0.0 / 0.0) == (0.0 / 0.0)", "false"},
      {"[0.0 / 0.0] == [0.0 / 0.0]", "false"},
      {"b'abc' == b'abc'", "true"},
      {"'abc' == 'abd'", "false"},
      {"'abc' == s", "true"},
      {"true != false", "true"},
      {"type(1) == int", "true"},
      {"int != uint", "true"},
      {"timestamp(1) == timestamp(1)", "true"},
      {"duration('1s') == duration('1000ms')", "true"},
      {"xs == [1, 2, 3]", "true"},
      {"xs == [1.0, 2u, 3]", "true"},
      {"xs != [1, 2]", "true"},
      {"m.b == {'c': 2}", "true"},
      {"m == m", "true"},
      {"'a' == 1",
       "issue~found no matching overload for '_==_' applied to "
       "'(string, int)'"},
      {"1 / 0 == 1", kDivZero},
      {"1 == 1 / 0", kDivZero},
      {"1 / zero == 1 % zero", kDivZero},
      {"1 % zero != 1 / zero", kModZero},
  });
}

TEST_F(CelTest, Ordering) {
  ExpectAll({
      {"1 < 2", "true"},
      {"2 <= 2", "true"},
      {"3 > 2", "true"},
      {"2 >= 3", "false"},
      {"1 < 1.5", "true"},
      {"2u > 1", "true"},
      {"-1 < 0u", "true"},
      {"18446744073709551615u > 9223372036854775807", "true"},
      {"9007199254740993 > 9007199254740992.0", "true"},
      {"9223372036854775807 < 9223372036854775808.0", "true"},
      {"-9223372036854775808 <= -9223372036854775808.0", "true"},
      {"18446744073709551615u < 18446744073709551616.0", "true"},
      {"1.0 <= 1u", "true"},
      {"-0.5 < 0u", "true"},
      {"1.5 > one", "true"},
      {"1 < double('NaN')", "false"},
      {"1 >= double('NaN')", "false"},
      {"double('NaN') > 1u", "false"},
      {"double('NaN') <= double('NaN')", "false"},
      {"'a' < 'b'", "true"},
      {"'abc' < 'abd'", "true"},
      {"'a' < 'aa'", "true"},
      {"'Z' < 'a'", "true"},
      {"'\u00e9' > 'z'", "true"},
      {"s >= 'abc'", "true"},
      {"b'a' < b'b'", "true"},
      {"b'\\xff' > b'a'", "true"},
      {"false < true", "true"},
      {"true <= true", "true"},
      {"timestamp('2020-01-01T00:00:00Z') < timestamp('2021-01-01T00:00:00Z')",
       "true"},
      {"ts > timestamp('2009-02-13T23:31:29.999Z')", "true"},
      {"duration('1h') > duration('59m')", "true"},
      {"duration('-1s') < duration('1ns')", "true"},
      {"duration('-1.5s') < duration('-1s')", "true"},
      {"dyn(1) < 'a'", "error:no matching overload for '_<_'"},
      {"dyn([1]) < dyn([2])", "error:no matching overload for '_<_'"},
      {"dyn(null) >= dyn(null)", "error:no matching overload for '_>=_'"},
      {"'a' < 1", "issue~found no matching overload for '_<_'"},
      {"one < 1 / zero", kDivZero},
  });
}

TEST_F(CelTest, In) {
  ExpectAll({
      {"1 in [1, 2]", "true"},
      {"3 in [1, 2]", "false"},
      {"1.0 in [1]", "true"},
      {"1u in [1.0]", "true"},
      {"one in [1.0, 2.0]", "true"},
      {"'a' in {'a': 1}", "true"},
      {"'b' in {'a': 1}", "false"},
      {"1.0 in {1: 2}", "true"},
      {"2u in {2: 1}", "true"},
      {"1.5 in {1: 2}", "false"},
      {"'web' in ['web', 'app']", "true"},
      {"s in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'abc']", "true"},
      {"s in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']", "false"},
      {"one in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']", "false"},
      {"s in ['x', 'abc']", "true"},
      {"2 in xs", "true"},
      {"dyn(2.0) in xs", "true"},
      {"4 in xs", "false"},
      {"'a' in m", "true"},
      {"'z' in m", "false"},
      {"[1] in [[1], [2]]", "true"},
      {"dyn([1]) in {'a': 1}", "false"},
      {"1 in 1", "issue~found no matching overload for '@in'"},
      {"'a' in [1, 2]",
       "issue~found no matching overload for '@in' applied "
       "to '(string, list(int))'"},
      {"dyn(1) in dyn(1)", "error:no matching overload for '@in'"},
      {"1 / 0 in [1]", kDivZero},
      {"1 / zero in [1]", kDivZero},
      {"1 in [1, 1 / zero]", kDivZero},
  });
}

TEST_F(CelTest, Index) {
  ExpectAll({
      {"[1, 2, 3][0]", "1"},
      {"[1, 2][2]", "error:index out of range"},
      {"[1, 2][-1]", "error:index out of range"},
      {"[1, 2][1u]", "2"},
      {"[1, 2][1.0]", "2"},
      {"[1, 2][1.5]", "error:unsupported index value"},
      {"xs[zero]", "1"},
      {"xs[3]", "error:index out of range"},
      {"xs[one + one]", "3"},
      {"{'a': 1}['a']", "1"},
      {"{'a': 1}['b']", "error:no such key: b"},
      {"{1: 'x'}[1u]", "'x'"},
      {"{1: 'x'}[1.0]", "'x'"},
      {"{1: 'x'}[2]", "error:no such key: 2"},
      {"{true: 1}[true]", "1"},
      {"m['b']['c']", "2"},
      {"m[s]", "error:no such key: abc"},
      {"m['a']", "1"},
      {"m['zz']", "error:no such key: zz"},
      {"xs['a']", "error:no matching overload for '_[_]'"},
      {"dyn(s)['a']", "error:no matching overload for '_[_]'"},
      {"dyn(1 / zero)['a']", kDivZero},
      {"'abc'[0]", "issue~found no matching overload for '_[_]'"},
      {"dyn('abc')[0]", "error:no matching overload for '_[_]'"},
      {"xs[1 / zero]", kDivZero},
  });
}

TEST_F(CelTest, FieldSelectionAndHas) {
  ExpectAll({
      {"m.a", "1"},
      {"m.b.c", "2"},
      {"m.z", "error:no such key: z"},
      {"m.z.c", "error:no such key: z"},
      {"{'a': {'b': 1}}.a.b", "1"},
      {"[m][0].a", "1"},
      {"has(m.a)", "true"},
      {"has(m.z)", "false"},
      {"has(m.b.c)", "true"},
      {"has(m.z.c)", "error:no such key: z"},
      {"has({'a': 1}.a)", "true"},
      {"dyn(1).f", "error:invalid type for field selection"},
      {"has(dyn(1).f)", "error:invalid type for field selection"},
      {"(1).f", "issue~type 'int' does not support field selection"},
  });
}

TEST_F(CelTest, LogicalOperatorsAbsorbErrors) {
  ExpectAll({
      {"t && t", "true"},
      {"t && f", "false"},
      {"f || f", "false"},
      {"t || f", "true"},
      // && : false wins over errors on either side; otherwise the (first)
      // error.
      {"f && (1 / zero == 1)", "false"},
      {"(1 / zero == 1) && f", "false"},
      {"t && (1 / zero == 1)", kDivZero},
      {"(1 / zero == 1) && t", kDivZero},
      {"(1 / zero == 1) && (1 % zero == 1)", kDivZero},
      {"(1 % zero == 1) && (1 / zero == 1)", kModZero},
      // || : true wins.
      {"t || (1 / zero == 1)", "true"},
      {"(1 / zero == 1) || t", "true"},
      {"f || (1 / zero == 1)", kDivZero},
      {"(1 / zero == 1) || f", kDivZero},
      {"(1 % zero == 1) || (1 / zero == 1)", kModZero},
      // Non-bool operands are errors, absorbed the same way.
      {"dyn(one) && t", "error:no matching overload for '_&&_'"},
      {"t && dyn(one)", "error:no matching overload for '_&&_'"},
      {"dyn(one) && f", "false"},
      {"f && dyn(one)", "false"},
      {"dyn(one) || t", "true"},
      {"dyn(one) || f", "error:no matching overload for '_||_'"},
      {"1 && true",
       "issue~found no matching overload for '_&&_' applied to "
       "'(int, bool)'"},
      // The same with constants (folded at compile time).
      {"false && (1 / 0 == 1)", "false"},
      {"(1 / 0 == 1) && false", "false"},
      {"(1 / 0 == 1) || true", "true"},
      {"true && (1 / 0 == 1)", kDivZero},
      {"false || (1 / 0 == 1)", kDivZero},
      {"true && dyn(1)", "error:no matching overload for '_&&_'"},
      // Negation.
      {"!t", "false"},
      {"!!t", "true"},
      {"!(1 / zero == 1)", kDivZero},
      {"!dyn(one)", "error:no matching overload for '!_'"},
  });
}

TEST_F(CelTest, Conditional) {
  ExpectAll({
      {"t ? 1 : 2", "1"},
      {"f ? 1 : 2", "2"},
      {"t ? 'a' : 1", "'a'"},
      {"f ? 1 / zero : 2", "2"},
      {"t ? 1 / zero : 2", kDivZero},
      {"(1 / zero == 1) ? 1 : 2", kDivZero},
      {"dyn(one) ? 1 : 2", "error:no matching overload for '_?_:_'"},
      {"false ? 1 / 0 : 3", "3"},
      {"1 ? 2 : 3", "issue~found no matching overload for '_?_:_'"},
  });
}

TEST_F(CelTest, Macros) {
  ExpectAll({
      {"[1, 2, 3].all(x, x > 0)", "true"},
      {"xs.all(x, x > 0)", "true"},
      {"xs.all(x, x > 1)", "false"},
      {"[].all(x, x > 0)", "true"},
      // A false absorbs errors of other iterations, before or after it.
      {"[1, 'a'].all(x, x > 0)", "error:no matching overload for '_>_'"},
      {"[-1, 'a'].all(x, x > 0)", "false"},
      {"['a', -1].all(x, x > 0)", "false"},
      {"[1, 0].all(x, 1 / x > 0)", kDivZero},
      {"[0, 'a'].all(x, 1 / x > 0)", kDivZero},  // the first error
      {"xs.exists(x, x == 2)", "true"},
      {"[].exists(x, true)", "false"},
      {"[1, 'a'].exists(x, x == 1)", "true"},
      {"[1, 'a'].exists(x, x > 1)", "error:no matching overload for '_>_'"},
      {"['a', 2].exists(x, x > 1)", "true"},
      {"xs.exists(x, dyn(x))", "error:no matching overload for '_||_'"},
      {"xs.exists_one(x, x > 2)", "true"},
      {"xs.exists_one(x, x > 1)", "false"},
      {"[].exists_one(x, true)", "false"},
      {"[1, 'a'].exists_one(x, x > 0)", "error:no matching overload for '_>_'"},
      {"xs.map(x, x * 2)", "[2, 4, 6]"},
      {"[1, 2, 3].map(x, x * 2)", "[2, 4, 6]"},
      {"xs.map(x, x > 1, x * 10)", "[20, 30]"},
      {"xs.filter(x, x % 2 == 1)", "[1, 3]"},
      {"[].map(x, x)", "[]"},
      {"{'a': 1, 'b': 2}.map(k, k)", "['a', 'b']"},
      {"m.filter(k, k == 'b')", "['b']"},
      {"m.all(k, k in ['a', 'b'])", "true"},
      {"[1, 0].map(x, 1 / x)", kDivZero},
      {"xs.map(x, x / (x - 2) > 0, x)", kDivZero},
      {"[dyn(1), 2].filter(x, x)", "error:no matching overload for '_?_:_'"},
      {"xs.map(x, xs.map(y, x * y))", "[[1, 2, 3], [2, 4, 6], [3, 6, 9]]"},
      {"xs.map(x, x).filter(y, y > 1).size()", "2"},
      {"xs.all(x, x > 0) && xs.exists(x, x == 3)", "true"},
      {"xs.map(x, xs.filter(y, y < x).size())", "[0, 1, 2]"},
      {"dyn(1).all(x, true)",
       "error:comprehension range must be a list or a map"},
      {"(1).all(x, true)",
       "issue~expression of type 'int' cannot be the range of a comprehension"},
      {"[1].all(x, x)",
       "issue~found no matching overload for '_&&_' applied "
       "to '(bool, int)'"},
  });
}

TEST_F(CelTest, ComprehensionScoping) {
  ExpectAll({
      // The inner x shadows the outer one.
      {"[1, 2].all(x, [3].all(x, x == 3))", "true"},
      {"[1].map(x, [2].map(x, x))", "[[2]]"},
      {"[1].map(x, [2].map(y, x + y))", "[[3]]"},
      // A comprehension variable shadows a declared variable...
      {"[10].map(one, one)", "[10]"},
      {"[{'a': 5}].map(m, m.a)", "[5]"},
      // ... but not outside its macro, nor with a leading dot.
      {"[10].map(one, one)[0] + one", "11"},
      {"[10].map(one, .one)", "[1]"},
      {"[10].map(x, .m.a)", "[1]"},
  });
}

TEST_F(CelTest, ListAndMapLiterals) {
  ExpectAll({
      {"[one, s]", "[1, 'abc']"},
      {"[1, 1 / zero]", kDivZero},
      {"{s: 1}", "{'abc': 1}"},
      {"{'a': 1}.a", "1"},
      {"{'a': 1, 'a': 2}", "error:Failed with repeated key"},
      {"{1: 1, 1u: 2}", "error:Failed with repeated key"},
      {"{one: 1, 1: 2}", "error:Failed with repeated key"},
      {"{1.5: 1}", "error:unsupported key type"},
      {"{'a': 1 / zero}", kDivZero},
      {"{1 / zero: 1}", kDivZero},
  });
}

TEST_F(CelTest, SizeAndStringFunctions) {
  ExpectAll({
      {"size('h\u00e9llo')", "5"},   // code points
      {"size(b'h\u00e9llo')", "6"},  // bytes
      {"'abc'.size()", "3"},
      {"s.size()", "3"},
      {"size([1, 2])", "2"},
      {"size({'a': 1})", "1"},
      {"size(m)", "2"},
      {"m.size()", "2"},
      {"xs.size()", "3"},
      {"size(1)",
       "issue~found no matching overload for 'size' applied to "
       "'(int)'"},
      {"size(dyn(1))", "error:no matching overload for 'size'"},
      {"'hello'.contains('ell')", "true"},
      {"'hello'.contains('x')", "false"},
      {"'hello'.startsWith('he')", "true"},
      {"'hello'.endsWith('lo')", "true"},
      {"s.startsWith('b')", "false"},
      {"s.contains('')", "true"},
      {"'x'.contains(1)",
       "issue~found no matching overload for 'contains' "
       "applied to 'string.(int)'"},
      {"dyn(1).contains('a')", "error:no matching overload for 'contains'"},
      {"'hello'.matches('^h.*o$')", "true"},
      {"matches('abc', 'b')", "true"},  // unanchored
      {"s.matches('c$')", "true"},
      {"s.matches('^b')", "false"},
      {"s.matches(s)", "true"},
      {"s.matches(bad)", "error~["},
      {"'a'.matches('[')", "issue~["},
  });
}

TEST_F(CelTest, Conversions) {
  ExpectAll({
      {"int('12')", "12"},
      {"int('-12')", "-12"},
      {"int(1.9)", "1"},
      {"int(-1.9)", "-1"},
      {"int(1u)", "1"},
      {"int(18446744073709551615u)", "error~range"},
      {"int('abc')", "error~"},
      {"int(timestamp('1970-01-01T00:01:00Z'))", "60"},
      {"int(dyn([]))", "error~no matching overload"},
      {"uint(1)", "1u"},
      {"uint(-1)", "error~range"},
      {"double(1)", "1.0"},
      {"double('1.5')", "1.5"},
      {"double(2u)", "2.0"},
      {"string(1)", "'1'"},
      {"string(-1)", "'-1'"},
      {"string(1u)", "'1'"},
      {"string(1.5)", "'1.5'"},
      {"string(true)", "'true'"},
      {"string(b'abc')", "'abc'"},
      {"string(s)", "'abc'"},
      {"string(duration('1.5s'))", "'1.5s'"},
      {"bytes('abc')", "b'abc'"},
      {"bool('true')", "true"},
      {"bool('false')", "false"},
      {"bool('maybe')", "error~"},
      {"timestamp('2009-02-13T23:31:30Z') == timestamp(1234567890)", "true"},
      {"timestamp('2009-02-13T23:31:30Z') == ts", "true"},
      {"timestamp('not a time')", "error~"},
      {"duration('1h') == duration('60m')", "true"},
      {"duration('1h30m') == duration('5400s')", "true"},
      {"duration('forever')", "error~"},
      {"dyn(1)", "1"},
      {"dyn(xs)", "[1, 2, 3]"},
  });
}

TEST_F(CelTest, TypeValues) {
  ExpectAll({
      {"type(1) == int", "true"},
      {"type(1u) == uint", "true"},
      {"type(1.0) == double", "true"},
      {"type('') == string", "true"},
      {"type(b'') == bytes", "true"},
      {"type(true) == bool", "true"},
      {"type(null) == null_type", "true"},
      {"type([]) == list", "true"},
      {"type({}) == map", "true"},
      {"type(m) == map", "true"},
      {"type(ts) == google.protobuf.Timestamp", "true"},
      {"type(duration('1s')) == google.protobuf.Duration", "true"},
      {"type(int) == type", "true"},
      {"type(type(1)) == type", "true"},
      {"type(one) == type(1u)", "false"},
      {"int", "int"},
  });
}

TEST_F(CelTest, Timestamps) {
  ExpectAll({
      {"ts.getFullYear()", "2009"},
      {"ts.getMonth()", "1"},        // 0-based: February
      {"ts.getDate()", "13"},        // 1-based
      {"ts.getDayOfMonth()", "12"},  // 0-based
      {"ts.getDayOfWeek()", "5"},    // Friday
      {"ts.getDayOfYear()", "43"},   // 0-based
      {"ts.getHours()", "23"},
      {"ts.getMinutes()", "31"},
      {"ts.getSeconds()", "30"},
      {"ts.getMilliseconds()", "0"},
      {"ts.getHours('Europe/Rome')", "0"},  // UTC+1 in February
      {"ts.getDate('+01:00')", "14"},
      {"ts.getHours('-05:30')", "18"},
      {"ts.getHours('Mars/Olympus_Mons')", "error~"},
      {"ts.getHours(dyn(1))", "error:no matching overload for 'getHours'"},
      {"duration('3h30m').getHours()", "3"},
      {"duration('3h30m').getMinutes()", "210"},
      {"duration('1.5s').getSeconds()", "1"},
      {"duration('1.5s').getMilliseconds()", "500"},
      {"duration('1h').getFullYear()",
       "issue~found no matching overload for "
       "'getFullYear'"},
      {"ts + duration('1h') == timestamp('2009-02-14T00:31:30Z')", "true"},
      {"duration('1h') + ts == timestamp('2009-02-14T00:31:30Z')", "true"},
      {"timestamp('2009-02-14T00:31:30Z') - ts == duration('1h')", "true"},
      {"ts - duration('30s') == timestamp('2009-02-13T23:31:00Z')", "true"},
      {"ts - ts == duration('0s')", "true"},
      {"duration('1h') + duration('1m') == duration('61m')", "true"},
      {"duration('1h') - duration('1m') == duration('59m')", "true"},
      {"timestamp('9999-12-31T23:59:59Z') + duration('1s')", "error~range"},
      {"timestamp(0) + 1",
       "issue~found no matching overload for '_+_' applied to "
       "'(google.protobuf.Timestamp, int)'"},
  });
}

// ---- Things the tables cannot express ----------------------------------

TEST_F(CelTest, UndeclaredReferencesWhenAllowed) {
  env_.set_allow_undeclared(true);
  ExpectAll({
      {"nope", "error:undeclared reference to 'nope'"},
      {"nope.field", "error:undeclared reference to 'nope'"},
      {"nope || true", "true"},
      {"false && nope", "false"},
      {"nope == 1", "error:undeclared reference to 'nope'"},
  });
}

TEST_F(CelTest, QualifiedNames) {
  Bind("a.b", Map({{Value::String("c"), Value::Int(1)}}));
  Bind("a",
       Map({{Value::String("b"), Map({{Value::String("c"), Value::Int(2)},
                                      {Value::String("d"), Value::Int(3)}})}}));
  ExpectAll({
      {"a.b.c", "1"},  // the longest declared prefix wins
      {".a.b.c", "1"},
      {"a.b.d", "error:no such key: d"},  // resolved as "a.b" then .d
      {"a['b'].d", "3"},  // indexing is not part of a qualified name
      {"[0].map(a, a)", "[0]"},
  });
  Bind("a.b.c", Value::Int(4));
  EXPECT_TRUE(Matches({"a.b.c", "4"}));
}

TEST_F(CelTest, DeclaredConstantsAreFolded) {
  env_.DeclareConstant("channels",
                       List({Value::String("web"), Value::String("app")}));
  env_.DeclareConstant("limit", Value::Int(3));
  ExpectAll({
      {"'web' in channels", "true"},
      {"s in channels", "false"},
      {"limit * 2", "6"},
      {"channels.size() + limit", "5"},
  });
}

// Compiles with the fixture's environment and returns the plan.
std::unique_ptr<Node> PlanOf(absl::string_view source, const Environment& env) {
  ParseResult parsed = Parse(source);
  EXPECT_NE(parsed.expr, nullptr) << source;
  if (parsed.expr == nullptr) return nullptr;
  CheckResult checked = Check(*parsed.expr, source, env);
  EXPECT_TRUE(checked.issues.empty()) << source;
  return std::move(checked.plan);
}

TEST_F(CelTest, ConstantFolding) {
  for (const char* expr :
       {"duration('24h')", "timestamp('2020-01-01T00:00:00Z')",
        "['web', 'app']", "{'a': [1, 2]}", "1 + 2 * 3", "1 / 0",
        "[1, 2, 3].map(x, x * 2)", "'abc'.matches('b')", "int",
        "false && one == 1", "one == 1 || true", "true ? 1 : one", "{'a': 1}.a",
        "size('abc')"}) {
    std::unique_ptr<Node> plan = PlanOf(expr, env_);
    ASSERT_NE(plan, nullptr);
    EXPECT_EQ(plan->op, Op::kConstant) << expr;
  }
  // Partially constant: the constant parts are folded and specialized.
  std::unique_ptr<Node> plan = PlanOf("s in ['web', 'app']", env_);
  ASSERT_NE(plan, nullptr);
  EXPECT_EQ(plan->op, Op::kInConstantList);
  plan = PlanOf("s.matches('^a')", env_);
  EXPECT_EQ(plan->op, Op::kMatchesCompiled);
  plan = PlanOf("true && t", env_);  // t is dyn: && must still check it
  EXPECT_EQ(plan->op, Op::kAnd);
  plan = PlanOf("xs.map(x, x + 1)", env_);
  EXPECT_EQ(plan->op, Op::kMapMacro);
  plan = PlanOf("xs.map(x, [1, 2].map(y, y + 1))", env_);
  ASSERT_EQ(plan->op, Op::kMapMacro);
  EXPECT_EQ(plan->children[1]->op, Op::kConstant);  // no free variable
}

TEST_F(CelTest, CostLimitStopsRunawayComprehensions) {
  // 100^4 = 10^8 steps: far beyond the default budget; too costly to fold,
  // so the default budget stops it at run time.
  std::string hundred = "[";
  for (int i = 0; i < 100; ++i) absl::StrAppend(&hundred, i == 0 ? "" : ",", i);
  hundred += "]";
  const std::string expr =
      absl::StrCat(hundred, ".map(a, ", hundred, ".map(b, ", hundred,
                   ".map(c, ", hundred, ".map(d, a + b + c + d))))");
  EXPECT_TRUE(Matches({expr.c_str(), "error:evaluation cost limit exceeded"}));

  EvalOptions small;
  small.cost_limit = 10;
  EXPECT_EQ(Eval("xs.map(x, xs.map(y, x * y))", small).error_message(),
            "evaluation cost limit exceeded");
  EXPECT_TRUE(Eval("xs.map(x, x)", small).IsList());
  // The limit is not absorbed by || (a truncated evaluation decides
  // nothing).
  EXPECT_EQ(Eval("xs.map(x, xs.map(y, x * y)).size() > 0 || t", small)
                .error_message(),
            "evaluation cost limit exceeded");
  // String bytes count.
  small.cost_limit = 5;
  EXPECT_EQ(Eval("s + s", small).error_message(),
            "evaluation cost limit exceeded");
  EXPECT_TRUE(Eval("s + 'd'", small).IsString());
  // List elements built count.
  small.cost_limit = 2;
  EXPECT_EQ(Eval("[one, one, one]", small).error_message(),
            "evaluation cost limit exceeded");
}

TEST_F(CelTest, ConcatenationIsBounded) {
  // Even with no practical budget, no concatenation builds more than
  // kMaxConcatBytes / kMaxConcatElements.
  Bind("big", Value::String(std::string(9 << 20, 'a')));
  std::vector<Value> elements(600 * 1024, Value::Int(1));
  Bind("many", List(std::move(elements)));
  EvalOptions unlimited;
  unlimited.cost_limit = INT64_MAX;
  EXPECT_EQ(Eval("big + big", unlimited).error_message(),
            "result size limit exceeded");
  EXPECT_EQ(Eval("many + many", unlimited).error_message(),
            "result size limit exceeded");
  EXPECT_EQ(Eval("size(big + 'a')", unlimited).int_value(), (9 << 20) + 1);
  // With the default budget, the bytes produced are what runs out first.
  EXPECT_EQ(Eval("size(big + 'a')").error_message(),
            "evaluation cost limit exceeded");
}

TEST_F(CelTest, ComprehensionNestingLimit) {
  auto nested = [](int depth) {
    std::string expr = "true";
    for (int i = depth - 1; i >= 0; --i) {
      expr = absl::StrCat("[one].all(x", i, ", ", expr, ")");
    }
    return expr;
  };
  EXPECT_TRUE(Matches({nested(16).c_str(), "true"}));
  EXPECT_TRUE(Matches(
      {nested(17).c_str(), "issue~comprehensions nested more than 16 deep"}));
}

TEST_F(CelTest, ResultBorrowsNothingAfterOwn) {
  CompileResult r = Compile("[s, 'x', m.b]", env_);
  ASSERT_TRUE(r.ok());
  Value v = r.program->Evaluate(values_).Own();
  r.program.reset();
  values_.clear();
  EXPECT_EQ(v.DebugString(), "[\"abc\", \"x\", {\"c\": 2}]");
}

}  // namespace
}  // namespace tappa::cel
