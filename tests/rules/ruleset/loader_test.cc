// Tests of the ruleset loader: the example ruleset loads into the model it
// describes, every broken ruleset in testdata/broken/ gets exactly the error
// lines its "# expect:" comments list, and hostile inputs fail cleanly.
#include "rules/ruleset/loader.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/cel/containers.h"
#include "rules/ruleset/scalar_positions.h"

namespace tappa::ruleset {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string SourceDir() {
  const char* env = std::getenv("TAPPA_SOURCE_DIR");
  return env != nullptr ? env : TAPPA_SOURCE_DIR;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loads `text` and returns its error lines (empty when it loaded).
std::vector<std::string> Errors(const std::string& text,
                                const std::string& name = "t.yaml") {
  auto result = LoadRulesetFromString(text, name);
  if (result.ok()) return {};
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  return ErrorLines(result.status());
}

// A minimal valid ruleset that tests extend.
constexpr char kBase[] = R"(phases: [awareness, consideration]
channels: [web, email]
counters:
  - {id: views, on: 'event.type == "view"', window: 7d}
placements:
  - {id: web.hero, channel: web}
)";

std::shared_ptr<const Ruleset> MustLoad(const std::string& text) {
  auto result = LoadRulesetFromString(text, "t.yaml");
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : nullptr;
}

// ---- The example ruleset ---------------------------------------------------

TEST(RetailExample, Loads) {
  std::string path = SourceDir() + "/rules/examples/retail.yaml";
  auto result = LoadRulesetFile(path);
  ASSERT_TRUE(result.ok()) << result.status();
  const Ruleset& r = **result;
  EXPECT_EQ(r.name, "retail");
  EXPECT_EQ(r.version, Sha256Hex(ReadFile(path)));
  EXPECT_EQ(r.version.size(), 64u);
  ASSERT_EQ(r.phases.size(), 5u);
  EXPECT_EQ(r.phases[0].id, "awareness");
  EXPECT_EQ(r.phases[4].id, "advocacy");
  EXPECT_EQ(r.initial_phase, 0);
  EXPECT_EQ(r.channels.size(), 7u);

  // Every phase has at least one action, every channel a placement.
  for (size_t p = 0; p < r.phases.size(); ++p) {
    bool any =
        std::any_of(r.actions.begin(), r.actions.end(), [&](const Action& a) {
          return std::find(a.phases.begin(), a.phases.end(),
                           static_cast<int>(p)) != a.phases.end();
        });
    EXPECT_TRUE(any) << "no action in phase " << r.phases[p].id;
  }
  for (size_t c = 0; c < r.channels.size(); ++c) {
    bool any = std::any_of(
        r.placements.begin(), r.placements.end(),
        [&](const Placement& p) { return p.channel == static_cast<int>(c); });
    EXPECT_TRUE(any) << "no placement on channel " << r.channels[c].id;
  }

  // Lookups and resolved references.
  int hero = r.FindPlacement("web.home_hero");
  ASSERT_GE(hero, 0);
  EXPECT_EQ(r.placements[hero].channel, r.FindChannel("web"));
  EXPECT_EQ(r.placements[hero].fallback_action, r.FindAction("brand-story"));
  int offer = r.FindAction("first-order-10");
  ASSERT_GE(offer, 0);
  const Action& a = r.actions[offer];
  EXPECT_EQ(a.kind, ActionKind::kOffer);
  EXPECT_EQ(a.priority, 50);
  EXPECT_EQ(a.value, 10.0);
  EXPECT_EQ(a.group, "first-order");
  EXPECT_THAT(a.phases, ElementsAre(r.FindPhase("consideration")));
  ASSERT_TRUE(a.when.has_value());
  EXPECT_NE(a.when->program, nullptr);
  ASSERT_EQ(a.caps.size(), 2u);
  EXPECT_EQ(a.caps[0].max, 1);
  EXPECT_EQ(*a.caps[0].per, absl::Hours(24));
  EXPECT_EQ(a.caps[1].count_on, Limit::CountOn::kImpression);
  EXPECT_EQ(a.content["code"], "WELCOME10");
  EXPECT_EQ(a.content["discount_percent"], 10);
  EXPECT_THAT(a.content_json, HasSubstr("\"code\":\"WELCOME10\""));

  int detractor = r.FindAction("detractor-care");
  ASSERT_GE(detractor, 0);
  EXPECT_TRUE(r.actions[detractor].all_phases);
  EXPECT_EQ(r.actions[detractor].phases.size(), 5u);

  // Counters: windows and default buckets.
  int views = r.FindCounter("product_view_7d");
  ASSERT_GE(views, 0);
  EXPECT_EQ(*r.counters[views].window, absl::Hours(24 * 7));
  EXPECT_EQ(r.counters[views].bucket, absl::Hours(24));
  int carts = r.FindCounter("cart_add_7d");  // no `bucket:`: the default
  ASSERT_GE(carts, 0);
  EXPECT_EQ(r.counters[carts].bucket, absl::Hours(1));
  int purchases = r.FindCounter("purchases");
  EXPECT_FALSE(r.counters[purchases].window.has_value());

  // Transitions keep file order; the first is the lapse rule.
  ASSERT_FALSE(r.transitions.empty());
  EXPECT_EQ(r.transitions[0].to, r.FindPhase("consideration"));
  EXPECT_EQ(r.transitions[0].from.size(), 3u);

  // Policies.
  const ChannelPolicy& email = r.policies.channels[r.FindChannel("email")];
  EXPECT_TRUE(email.consent_required);
  ASSERT_EQ(email.caps.size(), 1u);
  EXPECT_EQ(email.caps[0].max, 2);
  EXPECT_EQ(*email.dismiss_cooldown, absl::Hours(72));
  const ChannelPolicy& sms = r.policies.channels[r.FindChannel("sms")];
  ASSERT_TRUE(sms.quiet_hours.has_value());
  EXPECT_EQ(sms.quiet_hours->start_minute, 21 * 60);
  EXPECT_EQ(sms.quiet_hours->end_minute, 9 * 60);
  EXPECT_EQ(r.policies.default_timezone, "Europe/Rome");
  const ChannelPolicy& store = r.policies.channels[r.FindChannel("store")];
  EXPECT_EQ(store.channel, r.FindChannel("store"));
  EXPECT_FALSE(store.consent_required);

  // Experiment and follow-ups.
  ASSERT_EQ(r.experiments.size(), 1u);
  EXPECT_EQ(r.experiments[0].group, "first-order");
  EXPECT_DOUBLE_EQ(r.experiments[0].holdout, 0.1);
  ASSERT_EQ(r.experiments[0].variants.size(), 2u);
  EXPECT_THAT(r.experiments[0].variants[1].actions,
              ElementsAre(r.FindAction("first-order-15")));
  int cart = r.FindFollowUp("cart-reminder");
  ASSERT_GE(cart, 0);
  const FollowUp& f = r.follow_ups[cart];
  EXPECT_EQ(f.after, absl::Hours(24));
  EXPECT_TRUE(f.cancel_on.has_value());
  EXPECT_EQ(f.channel, r.FindChannel("email"));
  EXPECT_EQ(f.action, r.FindAction("cart-reminder-email"));
  EXPECT_TRUE(f.rearm);
  EXPECT_EQ(f.limit->max, 3);

  // Constants are kept and folded.
  ASSERT_FALSE(r.constants.empty());
  EXPECT_EQ(r.constants[0].first, "paid_social");
  EXPECT_TRUE(r.constants[0].second.IsList());
  ASSERT_NE(r.environments, nullptr);
}

TEST(RetailExample, ConditionsEvaluate) {
  auto result = LoadRulesetFile(SourceDir() + "/rules/examples/retail.yaml");
  ASSERT_TRUE(result.ok()) << result.status();
  const Ruleset& r = **result;
  // The influencer lookbook wants a paid-social referrer in the context.
  const Action& a = r.actions[r.FindAction("influencer-lookbook")];
  ASSERT_TRUE(a.when.has_value());
  cel::VectorMap context;
  ASSERT_TRUE(context
                  .Insert(cel::Value::String("referrer"),
                          cel::Value::String("instagram"))
                  .ok());
  cel::Value vars[kConditionVariableCount];
  vars[kConditionSlots.context] = cel::Value::BorrowedMap(&context);
  vars[kConditionSlots.now] = cel::Value::FromTimestamp({1700000000, 0});
  cel::Value v = a.when->program->Evaluate(vars);
  ASSERT_TRUE(v.IsBool()) << v.DebugString();
  EXPECT_TRUE(v.bool_value());
}

// The complete example in rules/README.md (its first yaml block) loads.
TEST(ReadmeExample, Loads) {
  std::string readme = ReadFile(SourceDir() + "/rules/README.md");
  size_t start = readme.find("```yaml\n");
  ASSERT_NE(start, std::string::npos);
  start += 8;
  size_t end = readme.find("```", start);
  ASSERT_NE(end, std::string::npos);
  auto result =
      LoadRulesetFromString(readme.substr(start, end - start), "README.md");
  ASSERT_TRUE(result.ok()) << result.status();
  const Ruleset& r = **result;
  EXPECT_EQ(r.name, "shop");
  EXPECT_EQ(r.actions.size(), 5u);
  EXPECT_EQ(r.follow_ups.size(), 1u);
  EXPECT_EQ(r.experiments.size(), 1u);
  EXPECT_TRUE(r.actions[r.FindAction("referral")].adaptive.has_value());
  EXPECT_EQ(r.placements[r.FindPlacement("app.home_feed")].max_results, 3);
}

// ---- The broken corpus
// -------------------------------------------------------

// Each file in testdata/broken/ lists the exact error lines it must produce in
// comments of the form "# expect: <file>:<line>:<col>: <message>".
TEST(BrokenCorpus, EveryFileGetsExactlyItsErrors) {
  std::string dir = SourceDir() + "/tests/rules/ruleset/testdata/broken";
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 25u);
  for (const auto& file : files) {
    std::string text = ReadFile(file.string());
    std::vector<std::string> expected;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      constexpr absl::string_view kPrefix = "# expect: ";
      if (absl::StartsWith(line, kPrefix)) {
        expected.emplace_back(line.substr(kPrefix.size()));
      }
    }
    EXPECT_FALSE(expected.empty()) << file << " has no '# expect:' line";
    std::string name = file.filename().string();
    auto result = LoadRulesetFromString(text, name);
    ASSERT_FALSE(result.ok()) << name << " loaded but should not";
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    std::vector<std::string> actual = ErrorLines(result.status());
    EXPECT_EQ(absl::StrJoin(actual, "\n"), absl::StrJoin(expected, "\n"))
        << "in " << name;
  }
}

// ---- Focused cases
// -----------------------------------------------------------

TEST(Loader, MinimalRulesetLoads) {
  auto r = MustLoad(kBase);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->phases.size(), 2u);
  EXPECT_EQ(r->counters[0].bucket, absl::Hours(1));
}

// `retention` is optional; when set it is a duration of at least a day
// (more cases in testdata/broken/retention_*.yaml).
TEST(Loader, Retention) {
  auto unset = MustLoad(kBase);
  ASSERT_NE(unset, nullptr);
  EXPECT_FALSE(unset->retention.has_value());

  auto set = MustLoad(absl::StrCat(kBase, "retention: 400d\n"));
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->retention, absl::Hours(24 * 400));

  EXPECT_THAT(Errors(absl::StrCat(kBase, "retention: 400\n")),
              ElementsAre("t.yaml:7:12: retention: invalid duration '400' "
                          "(missing unit: ms, s, m, h, d or w)"));
  EXPECT_THAT(Errors(absl::StrCat(kBase, "retention: [400d]\n")),
              ElementsAre("t.yaml:7:12: retention: expected a duration such "
                          "as 24h"));
  EXPECT_THAT(Errors(absl::StrCat(kBase, "retention: 12h\n")),
              ElementsAre("t.yaml:7:12: retention: must be at least 24h "
                          "(found '12h')"));
}

TEST(Loader, ReportsEveryErrorNotJustTheFirst) {
  std::string text = absl::StrCat(kBase, R"(actions:
  - {id: a, kind: offer, placements: [web.hero], priorty: 1}
  - {id: b, kind: ofer, placements: [web.hero]}
  - {id: c, kind: offer, placements: [web.nope]}
)");
  EXPECT_THAT(Errors(text),
              ElementsAre("t.yaml:8:50: unknown key 'priorty' in action (did "
                          "you mean 'priority'?)",
                          "t.yaml:9:19: kind: unknown action kind 'ofer' (did "
                          "you mean 'offer'?); expected one of message, email, "
                          "offer, push, sms, content, survey, referral, "
                          "recommendation",
                          "t.yaml:10:39: unknown placement 'web.nope'"));
}

TEST(Loader, ExpressionErrorColumnsInsideQuotedAndBlockScalars) {
  // Single-quoted: column of the quote + 1 + offset in the expression.
  EXPECT_THAT(Errors(absl::StrCat(
                  kBase,
                  "transitions:\n"
                  "  - {to: consideration, when: 'contct.phase == \"x\"'}\n")),
              ElementsAre("t.yaml:8:32: when: undeclared reference to 'contct' "
                          "(did you mean 'contact'?)"));
  // Double-quoted with escapes before the error.
  EXPECT_THAT(Errors(absl::StrCat(kBase,
                                  "transitions:\n"
                                  "  - {to: consideration, when: \"event.type "
                                  "== \\\"a\\\" && nope\"}\n")),
              ElementsAre("t.yaml:8:55: when: undeclared reference to 'nope'"));
  // Literal block scalar: line and column of the token in the block.
  EXPECT_THAT(Errors(absl::StrCat(kBase,
                                  "transitions:\n"
                                  "  - to: consideration\n"
                                  "    when: |\n"
                                  "      event.type == \"a\" &&\n"
                                  "        nope\n")),
              ElementsAre("t.yaml:11:9: when: undeclared reference to 'nope'"));
  // Folded plain scalar over two lines.
  EXPECT_THAT(Errors(absl::StrCat(kBase,
                                  "transitions:\n"
                                  "  - to: consideration\n"
                                  "    when: event.type == \"a\" &&\n"
                                  "      nope\n")),
              ElementsAre("t.yaml:10:7: when: undeclared reference to 'nope'"));
}

TEST(Loader, NeverReturnsPartialRuleset) {
  auto result = LoadRulesetFromString(
      absl::StrCat(kBase, "actions: [{id: a, kind: offer, placements: [x]}]\n"),
      "t.yaml");
  EXPECT_FALSE(result.ok());
}

TEST(Loader, VersionIsSha256OfTheBytes) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto r = MustLoad(kBase);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->version, Sha256Hex(kBase));
}

TEST(Loader, CrlfLineEndingsAndByteOrderMark) {
  std::string retail = ReadFile(SourceDir() + "/rules/examples/retail.yaml");
  std::string crlf;
  for (char c : retail) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  auto result = LoadRulesetFromString("\xEF\xBB\xBF" + crlf, "crlf.yaml");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ((*result)->actions.size(), MustLoad(retail) == nullptr
                                           ? 0u
                                           : MustLoad(retail)->actions.size());
  EXPECT_EQ((*result)->version, Sha256Hex("\xEF\xBB\xBF" + crlf));
  // Positions are the same as with LF endings.
  EXPECT_THAT(Errors("\xEF\xBB\xBFphases: [a]\r\nchannels: [web]\r\n"
                     "transitions:\r\n  - {to: a, when: 'nope'}\r\n"),
              ElementsAre("t.yaml:4:20: when: undeclared reference to 'nope'"));
}

TEST(Loader, MissingFile) {
  auto result = LoadRulesetFile("/nonexistent/ruleset.yaml");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
}

// ---- Hostile input
// -------------------------------------------------------------

TEST(Hostile, DeepFlowNesting) {
  std::string text = "phases: " + std::string(100000, '[');
  // The 64th '[' would be the 65th collection (the top-level mapping is one).
  std::string closed = "phases: " + std::string(64, '[') + std::string(64, ']');
  EXPECT_THAT(Errors(closed),
              ElementsAre("t.yaml:1:72: nesting deeper than 64 levels"));
  // Unclosed, yaml-cpp's marks are approximate; the error is the same.
  EXPECT_THAT(Errors(text), ElementsAre(testing::AllOf(
                                HasSubstr("t.yaml:1:"),
                                HasSubstr(": nesting deeper than 64 levels"))));
}

TEST(Hostile, DeepBlockNesting) {
  std::string text = "phases:\n";
  for (int i = 0; i < 200; ++i) {
    text += std::string(2 * i + 2, ' ') + "- \n";
  }
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("nesting deeper than 64 levels"));
}

TEST(Hostile, DashChains) {
  std::string text = "phases:\n  ";
  for (int i = 0; i < 10000; ++i) text += "- ";
  text += "x\n";
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("nesting deeper than 64 levels"));
}

TEST(Hostile, BillionLaughs) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    text += absl::StrCat("a", i, ": &a", i, " [");
    for (int j = 0; j < 10; ++j)
      text += absl::StrCat(j ? ", " : "", "*a", i - 1);
    text += "]\n";
  }
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0],
              HasSubstr(absl::StrCat("document too large: more than ",
                                     kMaxYamlNodes, " nodes")));
}

TEST(Hostile, RecursiveAlias) {
  EXPECT_THAT(Errors("phases: &a [*a]\nchannels: [web]\n"),
              ElementsAre("t.yaml:1:13: recursive alias: an alias inside its "
                          "own anchor"));
  EXPECT_THAT(Errors("phases: *nope\n"),
              ElementsAre(HasSubstr("t.yaml:1:9: ")));
}

TEST(Hostile, AliasedExpressionsAreBudgeted) {
  // 1,000 aliases of one 10 KB expression: 10 MB to compile from a small file.
  std::string expr = "contact.id == \"" + std::string(10000, 'x') + "\"";
  std::string text = absl::StrCat(
      kBase,
      "actions:\n  - {id: a, kind: offer, placements: [web.hero], when: &e '",
      expr, "'}\n");
  for (int i = 0; i < 1000; ++i) {
    text += absl::StrCat("  - {id: a", i,
                         ", kind: offer, placements: [web.hero], when: *e}\n");
  }
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], HasSubstr("expressions total more than"));
}

TEST(Hostile, AliasesNestDeeperThanTheText) {
  // Each level is shallow in the text; following the aliases is not.
  std::string text = "a0: &a0 [x]\n";
  for (int i = 1; i < 70; ++i) {
    text += absl::StrCat("a", i, ": &a", i, " [*a", i - 1, "]\n");
  }
  auto errors = Errors(text);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0],
              HasSubstr("nesting deeper than 64 levels (through aliases)"));
}

TEST(Hostile, YamlCppLoadAllLoop) {
  // yaml-cpp 0.7's LoadAll loops forever on this (upstream PR #1319).
  EXPECT_THAT(Errors("# comment\n,actions:\n  - id: x\n"),
              ElementsAre("t.yaml:2:1: YAML syntax error: unexpected ','"));
  EXPECT_THAT(Errors(","), ElementsAre(HasSubstr("t.yaml:1:1: ")));
}

TEST(Hostile, MessagesAreOneLineOfValidUtf8) {
  // yaml-cpp's message ends with the offending character, here a control
  // character.
  EXPECT_THAT(Errors("phases: [\"a\\\x01\"]\n"),
              ElementsAre("t.yaml:1:14: YAML syntax error: unknown escape "
                          "character: \\x01"));
  // Invalid UTF-8 from the file is escaped.
  EXPECT_THAT(Errors("phases: [a]\nchannels: [w]\nk\xff\xfe: 1\n"),
              ElementsAre("t.yaml:3:1: unknown key 'k\\xff\\xfe' in ruleset"));
}

TEST(Hostile, TooLarge) {
  std::string text(kMaxRulesetBytes + 1, '#');
  EXPECT_THAT(Errors(text), ElementsAre(HasSubstr("file too large")));
}

TEST(Hostile, SyntaxErrorsAndGarbage) {
  EXPECT_THAT(Errors("phases: [a, b\n"),
              ElementsAre(HasSubstr("YAML syntax error")));
  EXPECT_THAT(Errors(""), ElementsAre("t.yaml:1:1: the ruleset is empty"));
  EXPECT_THAT(Errors("\xff\xfe\x00garbage"), testing::Not(testing::IsEmpty()));
  EXPECT_THAT(Errors("- a\n- b\n"),
              ElementsAre("t.yaml:1:1: ruleset: expected a mapping"));
}

// ---- Scalar positions
// ----------------------------------------------------------

TEST(ScalarPositions, Styles) {
  std::string text = "k: 'it''s x'\n";
  auto map = AlignScalar(text, 3, "it's x");
  ASSERT_EQ(map.size(), 6u);
  EXPECT_EQ(map[0], 4u);
  EXPECT_EQ(map[3], 8u);  // the "s" after the doubled quote
  EXPECT_EQ(map[5], 10u);

  text = "k: \"a\\tb\\u00e9c\"\n";
  map = AlignScalar(text, 3,
                    "a\tb\xc3\xa9"
                    "c");
  ASSERT_EQ(map.size(), 6u);
  EXPECT_EQ(map[2], 7u);   // b
  EXPECT_EQ(map[5], 14u);  // c

  text = "k: |\n  ab\n    cd\n";
  map = AlignScalar(text, 3, "ab\n  cd\n");
  ASSERT_EQ(map.size(), 8u);
  EXPECT_EQ(map[0], 7u);
  EXPECT_EQ(map[5], 14u);  // c

  EXPECT_TRUE(AlignScalar("k: 'abc'", 3, "xyz").empty());
  EXPECT_TRUE(AlignScalar("k: 'ab", 3, "abc").empty());
}

TEST(ScalarPositions, OffsetOfPosition) {
  EXPECT_EQ(OffsetOfPosition("abc\ndef", 2, 2), 5u);
  EXPECT_EQ(OffsetOfPosition("\xc3\xa9x", 1, 2), 2u);
  EXPECT_EQ(OffsetOfPosition("ab", 1, 10), 2u);
  EXPECT_EQ(OffsetOfPosition("ab", 5, 1), 2u);
}

}  // namespace
}  // namespace tappa::ruleset
