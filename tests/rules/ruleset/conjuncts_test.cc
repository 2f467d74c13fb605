// SplitConjuncts: top-level `&&` chains split into trimmed operands; nothing
// else splits. And the loader compiles the conjuncts of action conditions.
#include "rules/ruleset/conjuncts.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/cel/value.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/environment.h"
#include "rules/ruleset/loader.h"

namespace tappa::ruleset {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(SplitConjuncts, ThreeParts) {
  EXPECT_THAT(SplitConjuncts("a && b && c"), ElementsAre("a", "b", "c"));
}

TEST(SplitConjuncts, PartsAreTrimmed) {
  EXPECT_THAT(SplitConjuncts("  a.b >= 3   &&\n\t c == \"x\"  "),
              ElementsAre("a.b >= 3", "c == \"x\""));
  EXPECT_THAT(SplitConjuncts("a&&b"), ElementsAre("a", "b"));
}

TEST(SplitConjuncts, RealCondition) {
  EXPECT_THAT(
      SplitConjuncts("contact.counts.views >= 3 && context.page == \"cart\""),
      ElementsAre("contact.counts.views >= 3", "context.page == \"cart\""));
  EXPECT_THAT(SplitConjuncts("contact.counts.product_view_7d >= 3 &&\n"
                             "!(\"first_order\" in contact.attrs)"),
              ElementsAre("contact.counts.product_view_7d >= 3",
                          "!(\"first_order\" in contact.attrs)"));
}

TEST(SplitConjuncts, SingleExpressionGivesNothing) {
  EXPECT_THAT(SplitConjuncts("a"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("contact.counts.views >= 3"), IsEmpty());
  EXPECT_THAT(SplitConjuncts(""), IsEmpty());
  EXPECT_THAT(SplitConjuncts("   "), IsEmpty());
}

TEST(SplitConjuncts, ParenthesesDoNotSplit) {
  EXPECT_THAT(SplitConjuncts("(a && b)"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("(a && b) && c"), ElementsAre("(a && b)", "c"));
  EXPECT_THAT(SplitConjuncts("!(a && b)"), IsEmpty());
}

TEST(SplitConjuncts, ListsMapsAndCallsDoNotSplit) {
  EXPECT_THAT(SplitConjuncts("x in [a && b, c]"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("{\"k\": a && b}.k"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("f(a && b, c)"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("xs.all(x, x > 0 && x < 5)"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("xs.all(x, x > 0 && x < 5) && y"),
              ElementsAre("xs.all(x, x > 0 && x < 5)", "y"));
  EXPECT_THAT(SplitConjuncts("m[a && b] && c"), ElementsAre("m[a && b]", "c"));
}

TEST(SplitConjuncts, StringsDoNotSplit) {
  EXPECT_THAT(SplitConjuncts("a == \"x && y\""), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a == 'x && y' && b"),
              ElementsAre("a == 'x && y'", "b"));
  EXPECT_THAT(SplitConjuncts("a == r\"&&\" && b == \"\"\"&& ( [\"\"\""),
              ElementsAre("a == r\"&&\"", "b == \"\"\"&& ( [\"\"\""));
  // Brackets inside strings do not change the depth.
  EXPECT_THAT(SplitConjuncts("a == \"(\" && b == \"]\""),
              ElementsAre("a == \"(\"", "b == \"]\""));
}

TEST(SplitConjuncts, TopLevelOrGivesNothing) {
  EXPECT_THAT(SplitConjuncts("a && b || c"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a || b && c"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a || b"), IsEmpty());
  // Inside parentheses it is one operand.
  EXPECT_THAT(SplitConjuncts("(a || b) && c"), ElementsAre("(a || b)", "c"));
}

TEST(SplitConjuncts, TopLevelConditionalGivesNothing) {
  EXPECT_THAT(SplitConjuncts("a && b ? c : d"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a ? b && c : d"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("(a ? b : c) && d"),
              ElementsAre("(a ? b : c)", "d"));
}

TEST(SplitConjuncts, CommentsAndNonAscii) {
  EXPECT_THAT(SplitConjuncts("a // first && not a cut\n && b"),
              ElementsAre("a // first && not a cut", "b"));
  EXPECT_THAT(SplitConjuncts("name == \"Zoë\" && city == \"Łódź\""),
              ElementsAre("name == \"Zoë\"", "city == \"Łódź\""));
}

TEST(SplitConjuncts, MalformedGivesNothing) {
  EXPECT_THAT(SplitConjuncts("a && && b"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a &&"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("&& a"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a && b # c"), IsEmpty());
  EXPECT_THAT(SplitConjuncts("a && \"unterminated"), IsEmpty());
}

// ---- The loader -------------------------------------------------------------

constexpr char kRules[] = R"yaml(
phases: [p]
channels: [web]
constants:
  min_views: 3
  pages: [cart, checkout]
counters:
  - {id: views, on: 'event.type == "view"'}
placements:
  - {id: web.hero, channel: web}
actions:
  - id: multi
    kind: content
    placements: [web.hero]
    when: >-
      contact.counts.views >= 3 &&
      context.page == "cart" &&
      !("vip" in contact.attrs)
  - id: single
    kind: content
    placements: [web.hero]
    when: 'contact.counts.views >= 3'
  - id: either
    kind: content
    placements: [web.hero]
    when: 'contact.counts.views >= 3 && context.page == "cart" || false'
  - id: constants
    kind: content
    placements: [web.hero]
    when: 'contact.counts.views >= min_views && context.page in pages'
  - id: always
    kind: content
    placements: [web.hero]
context_weights:
  - {when: 'context.page == "cart" && true', weight: 2}
)yaml";

TEST(LoaderConjuncts, MultiPartConditionIsSplitAndCompiled) {
  auto loaded = LoadRulesetFromString(kRules, "conjuncts.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Ruleset& rs = **loaded;
  const Action& multi = rs.actions[rs.FindAction("multi")];
  ASSERT_TRUE(multi.when.has_value());
  ASSERT_EQ(multi.when->conjuncts.size(), 3u);
  EXPECT_EQ(multi.when->conjuncts[0].source, "contact.counts.views >= 3");
  EXPECT_EQ(multi.when->conjuncts[1].source, "context.page == \"cart\"");
  EXPECT_EQ(multi.when->conjuncts[2].source, "!(\"vip\" in contact.attrs)");
  for (const Expression& part : multi.when->conjuncts) {
    EXPECT_NE(part.program, nullptr) << part.source;
    EXPECT_TRUE(part.conjuncts.empty());
  }

  // Each part evaluates alone in the condition context.
  ContactSnapshot snapshot;
  snapshot.counts = {5};
  ContactBinding contact(rs, snapshot);
  const std::vector<std::pair<std::string, cel::Value>> entries = {
      {"page", cel::Value::String("home")}};
  ContextBinding context("web", "web.hero", entries);
  cel::Value vars[kConditionVariableCount];
  vars[kConditionSlots.contact] = contact.value();
  vars[kConditionSlots.context] = context.value();
  vars[kConditionSlots.now] = cel::Value::FromTimestamp(
      ToCelTimestamp(absl::FromUnixSeconds(1'800'000'000)));
  std::vector<bool> results;
  for (const Expression& part : multi.when->conjuncts) {
    cel::Value v = part.program->Evaluate(vars);
    ASSERT_TRUE(v.IsBool()) << part.source << ": " << v.DebugString();
    results.push_back(v.bool_value());
  }
  EXPECT_THAT(results, ElementsAre(true, false, true));
}

TEST(LoaderConjuncts, ConjunctsSeeTheConstants) {
  auto loaded = LoadRulesetFromString(kRules, "conjuncts.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Ruleset& rs = **loaded;
  const Action& action = rs.actions[rs.FindAction("constants")];
  ASSERT_TRUE(action.when.has_value());
  ASSERT_EQ(action.when->conjuncts.size(), 2u);
  EXPECT_EQ(action.when->conjuncts[0].source,
            "contact.counts.views >= min_views");
  EXPECT_EQ(action.when->conjuncts[1].source, "context.page in pages");

  ContactSnapshot snapshot;
  snapshot.counts = {2};
  ContactBinding contact(rs, snapshot);
  const std::vector<std::pair<std::string, cel::Value>> entries = {
      {"page", cel::Value::String("checkout")}};
  ContextBinding context("web", "web.hero", entries);
  cel::Value vars[kConditionVariableCount];
  vars[kConditionSlots.contact] = contact.value();
  vars[kConditionSlots.context] = context.value();
  vars[kConditionSlots.now] = cel::Value::FromTimestamp(
      ToCelTimestamp(absl::FromUnixSeconds(1'800'000'000)));
  cel::Value first = action.when->conjuncts[0].program->Evaluate(vars);
  cel::Value second = action.when->conjuncts[1].program->Evaluate(vars);
  ASSERT_TRUE(first.IsBool()) << first.DebugString();
  ASSERT_TRUE(second.IsBool()) << second.DebugString();
  EXPECT_FALSE(first.bool_value());
  EXPECT_TRUE(second.bool_value());
}

TEST(LoaderConjuncts, OtherConditionsHaveNone) {
  auto loaded = LoadRulesetFromString(kRules, "conjuncts.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Ruleset& rs = **loaded;
  const Action& single = rs.actions[rs.FindAction("single")];
  ASSERT_TRUE(single.when.has_value());
  EXPECT_TRUE(single.when->conjuncts.empty());
  const Action& either = rs.actions[rs.FindAction("either")];
  ASSERT_TRUE(either.when.has_value());
  EXPECT_TRUE(either.when->conjuncts.empty());
  EXPECT_FALSE(rs.actions[rs.FindAction("always")].when.has_value());
  // Only action conditions are split.
  ASSERT_EQ(rs.context_weights.size(), 1u);
  EXPECT_TRUE(rs.context_weights[0].when.conjuncts.empty());
  EXPECT_TRUE(rs.counters[0].on.conjuncts.empty());
}

}  // namespace
}  // namespace tappa::ruleset
