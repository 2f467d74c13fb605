// libFuzzer target for the ruleset loader: any bytes must give either a
// valid ruleset or InvalidArgument with "file:line:col: message" lines, never
// a crash, a hang, a leak, an exception or a stack overflow (deep nesting,
// alias bombs and recursive aliases included). A loaded ruleset must keep the
// model's invariants: every reference resolved, every expression compiled,
// and conditions evaluable (with null bindings) without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "rules/cel/program.h"
#include "rules/cel/value.h"
#include "rules/ruleset/environment.h"
#include "rules/ruleset/loader.h"
#include "rules/ruleset/ruleset.h"

namespace {

using tappa::ruleset::Expression;
using tappa::ruleset::Ruleset;

// Aborts (a finding for libFuzzer) naming the invariant that broke.
#define Check(condition)                                                \
  do {                                                                  \
    if (!(condition)) {                                                 \
      std::fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__, \
                   __LINE__, #condition);                               \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

bool InRange(int index, size_t size) {
  return index >= 0 && static_cast<size_t>(index) < size;
}

void Evaluate(const Expression& e, int variables) {
  Check(e.program != nullptr);
  std::vector<tappa::cel::Value> vars(static_cast<size_t>(variables));
  tappa::cel::EvalOptions options;
  options.cost_limit = 10'000;  // keep each input fast
  tappa::cel::Value v = e.program->Evaluate(vars, options);
  (void)v;
}

void CheckRuleset(const Ruleset& r) {
  using namespace tappa::ruleset;
  Check(r.version.size() == 64);
  Check(!r.phases.empty() && !r.channels.empty());
  Check(InRange(r.initial_phase, r.phases.size()));
  Check(r.environments != nullptr);
  Check(r.policies.channels.size() == r.channels.size());
  for (const Placement& p : r.placements) {
    Check(InRange(p.channel, r.channels.size()));
    Check(p.fallback_action == -1 ||
          InRange(p.fallback_action, r.actions.size()));
    if (p.ranking) Evaluate(*p.ranking, kRankingVariableCount);
  }
  for (const Counter& c : r.counters) {
    Evaluate(c.on, kEventVariableCount);
    if (c.window)
      Check(c.bucket > absl::ZeroDuration() && c.bucket <= *c.window);
  }
  for (const Transition& t : r.transitions) {
    Check(InRange(t.to, r.phases.size()));
    for (int p : t.from) Check(InRange(p, r.phases.size()));
    Evaluate(t.when, kEventVariableCount);
  }
  for (const Action& a : r.actions) {
    Check(!a.placements.empty());
    for (int p : a.placements) Check(InRange(p, r.placements.size()));
    for (int p : a.phases) Check(InRange(p, r.phases.size()));
    Check(a.priority >= kMinPriority && a.priority <= kMaxPriority);
    Check(a.content.is_object());
    if (a.when) Evaluate(*a.when, kConditionVariableCount);
  }
  for (const ContextWeight& w : r.context_weights) {
    Check(w.weight > 0);
    Evaluate(w.when, kConditionVariableCount);
  }
  for (const Experiment& x : r.experiments) {
    Check((x.placement >= 0) != !x.group.empty());
    Check(x.holdout >= 0 && x.holdout <= 1);
    double total = 0;
    for (const auto& v : x.variants) {
      total += v.weight;
      for (int a : v.actions) Check(InRange(a, r.actions.size()));
    }
    Check(total > 0);
  }
  for (const FollowUp& f : r.follow_ups) {
    Check(InRange(f.channel, r.channels.size()));
    Check((f.action >= 0) != (f.placement >= 0));
    Check(f.after > absl::ZeroDuration());
    Evaluate(f.on, kEventVariableCount);
    if (f.cancel_on) Evaluate(*f.cancel_on, kEventVariableCount);
    if (f.dedupe_key) Evaluate(*f.dedupe_key, kEventVariableCount);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = tappa::ruleset::LoadRulesetFromString(text, "fuzz.yaml");
  if (result.ok()) {
    CheckRuleset(**result);
    return 0;
  }
  Check(result.status().code() == absl::StatusCode::kInvalidArgument);
  for (const std::string& line : tappa::ruleset::ErrorLines(result.status())) {
    Check(absl::StartsWith(line, "fuzz.yaml:"));
    for (char c : line) Check(static_cast<unsigned char>(c) >= 0x20);
  }
  return 0;
}
