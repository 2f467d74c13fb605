// In-process benchmarks of the rule engine (issue: foundation, item 7):
//  * one typical condition, evaluated against a bound contact: time and heap
//    allocations per evaluation (target: < 150 ns, 0 allocations);
//  * the ranked eligible set for one request over a generated ruleset of
//    1,000 actions on 5 phases and 20 placements (target: < 5 µs);
//  * full arbitration with contact policies, experiments and adaptive
//    propensities on the retail example (issue: decisioning).
// Run: build/benchmarks/decision_benchmark --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <string>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "rules/cel/program.h"
#include "rules/ruleset/adaptive.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/environment.h"
#include "rules/ruleset/loader.h"

// Counts heap allocations so the benchmark can report them per iteration.
// (GCC mistakes the malloc/free pairing below for a mismatch.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<int64_t> g_allocations{0};
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace tappa::ruleset {
namespace {

constexpr char kTypicalCondition[] =
    "contact.phase == \"consideration\" && context.channel in "
    "[\"web\",\"app\"] && "
    "contact.counts.product_view_7d >= 3 && (contact.attrs.country == \"IT\" "
    "|| "
    "contact.attrs.tier == \"gold\")";

const Ruleset& GeneratedRuleset() {
  static const std::shared_ptr<const Ruleset>* rs = [] {
    auto loaded = LoadRulesetFile(std::string(TAPPA_SOURCE_DIR) +
                                  "/rules/examples/generated_1000.yaml");
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n",
                   std::string(loaded.status().message()).c_str());
      std::abort();
    }
    return new std::shared_ptr<const Ruleset>(*loaded);
  }();
  return **rs;
}

ContactSnapshot TypicalContact(const Ruleset& rs) {
  ContactSnapshot c;
  c.id = "ada";
  c.phase = rs.FindPhase("consideration");
  c.counts.assign(rs.counters.size(), 0);
  c.rolling.assign(rs.counters.size(), {});
  for (size_t i = 0; i < rs.counters.size(); ++i)
    c.counts[i] = static_cast<int64_t>(i) + 3;
  c.attrs = {{"country", cel::Value::String("FR")},
             {"tier", cel::Value::String("gold")},
             {"language", cel::Value::String("fr")},
             {"age", cel::Value::Int(34)}};
  c.consents = {{"email", true}};
  return c;
}

void BM_TypicalCondition(benchmark::State& state) {
  const Ruleset& rs = GeneratedRuleset();
  cel::CompileResult compiled =
      cel::Compile(kTypicalCondition, rs.environments->condition());
  if (!compiled.ok()) {
    state.SkipWithError(
        std::string(cel::IssuesToStatus(compiled.issues).message()).c_str());
    return;
  }
  ContactSnapshot snapshot = TypicalContact(rs);
  ContactBinding contact(rs, snapshot);
  ContextBinding context("web", "web.slot_00", {});
  cel::Value vars[kConditionVariableCount];
  vars[kConditionSlots.contact] = contact.value();
  vars[kConditionSlots.context] = context.value();
  vars[kConditionSlots.now] = cel::Value::FromTimestamp({1'800'000'000, 0});
  int64_t before = g_allocations.load();
  bool result = false;
  for (auto _ : state) {
    cel::Value v = compiled.program->Evaluate(vars);
    result = v.IsBool() && v.bool_value();
    benchmark::DoNotOptimize(result);
  }
  state.counters["allocs_per_eval"] =
      benchmark::Counter(static_cast<double>(g_allocations.load() - before),
                         benchmark::Counter::kAvgIterations);
  if (!result)
    state.SkipWithError("the typical condition should hold for the contact");
}
BENCHMARK(BM_TypicalCondition);

// The ranked eligible set for one request, bindings prepared.
void BM_DecideOneRequest(benchmark::State& state) {
  const Ruleset& rs = GeneratedRuleset();
  static const auto* decider = new std::shared_ptr<const Decider>(
      Decider::Create(*new std::shared_ptr<const Ruleset>(
          std::shared_ptr<const Ruleset>(), &rs)));
  ContactSnapshot snapshot = TypicalContact(rs);
  ContactBinding contact(rs, snapshot);
  int placement = static_cast<int>(state.range(0));
  ContextBinding context(rs.channels[rs.placements[placement].channel].id,
                         rs.placements[placement].id, {});
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  DecisionOptions options;
  options.limit = 3;
  size_t candidates = (*decider)->Candidates(snapshot.phase, placement).size();
  size_t eligible = 0;
  for (auto _ : state) {
    DecisionResult r =
        (*decider)->Decide(snapshot.phase, placement, contact.value(),
                           context.value(), now, options);
    eligible = r.ranked.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["candidates"] = static_cast<double>(candidates);
  state.counters["returned"] = static_cast<double>(eligible);
}
BENCHMARK(BM_DecideOneRequest)->Arg(0)->Arg(5)->Arg(10)->Arg(19);

// Decisions spread as the server sees them: every phase and every placement
// in turn, so each request touches other actions' compiled conditions than
// the last. Arg(1) also walks a 32 MB buffer between requests (what the
// rest of a server's request path does to the caches), so conditions are
// evaluated from memory rather than from the cache, as they are in the
// server (perf there gives cel::Eval several times BM_DecideOneRequest's
// time per request).
void BM_DecideAcrossRuleset(benchmark::State& state) {
  const Ruleset& rs = GeneratedRuleset();
  static const auto* decider = new std::shared_ptr<const Decider>(
      Decider::Create(*new std::shared_ptr<const Ruleset>(
          std::shared_ptr<const Ruleset>(), &rs)));
  const bool scrub = state.range(0) != 0;
  std::vector<char> buffer(scrub ? 32 << 20 : 0, 1);
  ContactSnapshot snapshot = TypicalContact(rs);
  const std::vector<std::pair<std::string, cel::Value>> no_entries;
  std::vector<std::unique_ptr<ContextBinding>> contexts;
  for (const Placement& p : rs.placements) {
    contexts.push_back(std::make_unique<ContextBinding>(
        rs.channels[p.channel].id, p.id, no_entries));
  }
  const int phases = static_cast<int>(rs.phases.size());
  const int placements = static_cast<int>(rs.placements.size());
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  DecisionOptions options;
  options.limit = 3;
  int64_t i = 0, candidates = 0, sum = 0;
  size_t cursor = 0;
  for (auto _ : state) {
    if (scrub) {
      state.PauseTiming();
      for (int k = 0; k < 4096;
           ++k, cursor = (cursor + 4096 + 64) % buffer.size()) {
        sum += buffer[cursor]++;
      }
      state.ResumeTiming();
    }
    int placement = static_cast<int>(i % placements);
    snapshot.phase = static_cast<int>((i / placements) % phases);
    ++i;
    ContactBinding contact(rs, snapshot);
    DecisionResult r =
        (*decider)->Decide(snapshot.phase, placement, contact.value(),
                           contexts[placement]->value(), now, options);
    candidates += static_cast<int64_t>(
        (*decider)->Candidates(snapshot.phase, placement).size());
    benchmark::DoNotOptimize(r);
  }
  benchmark::DoNotOptimize(sum);
  state.counters["candidates"] = benchmark::Counter(
      static_cast<double>(candidates), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_DecideAcrossRuleset)->Arg(0)->Arg(1);

// The same including building the contact and context bindings from a
// snapshot (what the server does per request after decoding Redis' reply).
void BM_DecideWithBindings(benchmark::State& state) {
  const Ruleset& rs = GeneratedRuleset();
  static const auto* decider = new std::shared_ptr<const Decider>(
      Decider::Create(*new std::shared_ptr<const Ruleset>(
          std::shared_ptr<const Ruleset>(), &rs)));
  ContactSnapshot snapshot = TypicalContact(rs);
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  DecisionOptions options;
  options.limit = 3;
  std::vector<std::pair<std::string, cel::Value>> entries = {
      {"referrer", cel::Value::String("instagram")}};
  for (auto _ : state) {
    ContactBinding contact(rs, snapshot);
    ContextBinding context("web", "web.slot_00", entries);
    DecisionResult r = (*decider)->Decide(snapshot.phase, 0, contact.value(),
                                          context.value(), now, options);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_DecideWithBindings);

// Full arbitration as the server runs it, on the retail example: bindings,
// contact policies over a restraint record of 40 touches (caps, consent,
// quiet hours, cooldowns), experiment assignment (one SHA-256) and Thompson
// samples for adaptive actions. Compare with BM_DecideWithBindings.
void BM_DecideWithPolicies(benchmark::State& state) {
  static const std::shared_ptr<const Ruleset>* retail = [] {
    auto loaded = LoadRulesetFile(std::string(TAPPA_SOURCE_DIR) +
                                  "/rules/examples/retail.yaml");
    if (!loaded.ok()) std::abort();
    return new std::shared_ptr<const Ruleset>(*loaded);
  }();
  const Ruleset& rs = **retail;
  static const auto* decider =
      new std::shared_ptr<const Decider>(Decider::Create(*retail));
  ContactSnapshot snapshot;
  snapshot.id = "ada@example.com";
  snapshot.phase = rs.FindPhase("consideration");
  snapshot.counts.assign(rs.counters.size(), 0);
  snapshot.rolling.assign(rs.counters.size(), {});
  snapshot.counts[rs.FindCounter("product_view_7d")] = 4;
  snapshot.attrs = {{"timezone", cel::Value::String("Europe/Paris")},
                    {"country", cel::Value::String("FR")}};
  snapshot.consents = {{"email", true}};
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  ContactRestraint restraint;
  for (int i = 0; i < 40; ++i) {
    restraint.touches.push_back(
        {now - absl::Hours(4 * i + 1),
         i % 3 == 0 ? Limit::CountOn::kImpression : Limit::CountOn::kServed,
         rs.FindChannel(i % 2 == 0 ? "web" : "email"),
         static_cast<int>(i % rs.actions.size())});
  }
  int placement = rs.FindPlacement("web.home_hero");
  int channel = rs.placements[placement].channel;
  PosteriorTable posteriors;
  std::mt19937_64 urbg(1);
  std::vector<std::pair<std::string, cel::Value>> entries = {
      {"referrer", cel::Value::String("instagram")}};
  size_t returned = 0;
  for (auto _ : state) {
    ContactBinding contact(rs, snapshot);
    ContextBinding context("web", "web.home_hero", entries);
    PolicyCheck policies(rs, channel, snapshot, restraint, now);
    ThompsonSampler sampler(rs, posteriors, urbg);
    DecisionOptions options;
    options.limit = 3;
    options.contact_id = snapshot.id;
    options.policies = &policies;
    options.propensities = &sampler;
    DecisionResult r =
        (*decider)->Decide(snapshot.phase, placement, contact.value(),
                           context.value(), now, options);
    returned = r.ranked.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["candidates"] = static_cast<double>(
      (*decider)->Candidates(snapshot.phase, placement).size());
  state.counters["returned"] = static_cast<double>(returned);
}
BENCHMARK(BM_DecideWithPolicies);

}  // namespace
}  // namespace tappa::ruleset

BENCHMARK_MAIN();
