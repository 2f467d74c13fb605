// `tappactl rules check` and `tappactl rules eval`.
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "rules/cel/stdlib.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"
#include "tools/tappactl/commands.h"

namespace tappa::tappactl {
namespace {

using nlohmann::json;

struct EvalFlags {
  std::string ruleset_path;
  std::string placement;
  absl::Time now = absl::Now();
  int limit = 0;
  bool explain = false;
};

// Parses `RULESET --placement P [--now T] [--limit N] [--explain]`; returns
// an error message or "".
std::string ParseEvalFlags(const std::vector<std::string>& args,
                           EvalFlags* flags) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    std::string v;
    if (arg == "--placement") {
      if (!value(&flags->placement)) return "--placement needs a value";
    } else if (arg == "--now") {
      if (!value(&v)) return "--now needs a value";
      absl::StatusOr<cel::Timestamp> t = cel::ParseTimestamp(v);
      if (!t.ok()) return absl::StrCat("--now: ", t.status().message());
      flags->now = ruleset::FromCelTimestamp(*t);
    } else if (arg == "--limit") {
      if (!value(&v) || !absl::SimpleAtoi(v, &flags->limit) ||
          flags->limit < 0) {
        return "--limit needs a non-negative integer";
      }
    } else if (arg == "--explain") {
      flags->explain = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return absl::StrCat("unknown flag ", arg);
    } else if (flags->ruleset_path.empty()) {
      flags->ruleset_path = arg;
    } else {
      return absl::StrCat("unexpected argument ", arg);
    }
  }
  if (flags->ruleset_path.empty()) return "missing RULESET";
  if (flags->placement.empty()) return "missing --placement";
  return "";
}

// One input line of `rules eval`:
//   {"contact": {...snapshot...}, "context": {"referrer": "instagram"},
//    "channel": "web", "placement": "web.home_hero", "now": RFC3339}
// All keys optional; placement and now default to the flags, channel to the
// placement's channel.
json EvalLine(const ruleset::Decider& decider, const EvalFlags& flags,
              const std::string& line) {
  const ruleset::Ruleset& rs = decider.ruleset();
  json input = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded() || !input.is_object()) {
    return {{"error", "malformed input line: expected a JSON object"}};
  }
  absl::Time now = flags.now;
  std::string placement_id = flags.placement;
  std::string channel;
  std::vector<std::pair<std::string, cel::Value>> context;
  json contact_json = json::object();
  for (const auto& [key, value] : input.items()) {
    if (key == "contact") {
      contact_json = value;
    } else if (key == "context") {
      if (!value.is_object()) return {{"error", "context: expected an object"}};
      for (const auto& [name, entry] : value.items()) {
        context.emplace_back(name, ruleset::PlainJsonToValue(entry));
      }
    } else if (key == "placement" || key == "channel" || key == "now") {
      if (!value.is_string()) return {{"error", key + ": expected a string"}};
      if (key == "placement") placement_id = value.get<std::string>();
      if (key == "channel") channel = value.get<std::string>();
      if (key == "now") {
        absl::StatusOr<cel::Timestamp> t =
            cel::ParseTimestamp(value.get<std::string>());
        if (!t.ok())
          return {{"error", absl::StrCat("now: ", t.status().message())}};
        now = ruleset::FromCelTimestamp(*t);
      }
    } else {
      return {{"error", absl::StrCat(key, ": unknown field")}};
    }
  }
  int placement = rs.FindPlacement(placement_id);
  if (placement < 0) {
    return {{"error", absl::StrCat("placement: unknown placement '",
                                   placement_id, "'")}};
  }
  if (channel.empty()) {
    channel = rs.channels[rs.placements[placement].channel].id;
  } else if (rs.FindChannel(channel) < 0) {
    return {
        {"error", absl::StrCat("channel: unknown channel '", channel, "'")}};
  }
  absl::StatusOr<ruleset::ContactSnapshot> snapshot =
      ruleset::ContactFromJson(rs, contact_json, now);
  if (!snapshot.ok())
    return {{"error", std::string(snapshot.status().message())}};

  ruleset::ContactBinding contact(rs, *snapshot);
  ruleset::ContextBinding context_binding(channel, placement_id, context);
  ruleset::DecisionOptions options;
  options.limit = flags.limit > 0 ? flags.limit : 1000;
  options.explain = flags.explain;
  options.contact_id = snapshot->id;
  ruleset::DecisionResult result =
      decider.Decide(snapshot->phase, placement, contact.value(),
                     context_binding.value(), now, options);

  json out = json::object();
  out["phase"] = rs.phases[snapshot->phase].id;
  json eligible = json::array();
  json ranked = json::array();
  for (const ruleset::RankedAction& r : result.ranked) {
    eligible.push_back(rs.actions[r.action].id);
    ranked.push_back({{"id", rs.actions[r.action].id},
                      {"priority", r.priority},
                      {"score", r.score}});
  }
  out["eligible"] = std::move(eligible);
  out["ranked"] = std::move(ranked);
  if (flags.explain) {
    json candidates = json::array();
    for (const ruleset::Candidate& c : result.candidates) {
      json entry = {{"id", rs.actions[c.action].id},
                    {"verdict", ruleset::VerdictName(c.verdict)}};
      if (!c.detail.empty()) entry["detail"] = c.detail;
      if (!c.rule.empty()) entry["rule"] = c.rule;
      if (!c.false_condition.empty())
        entry["false_condition"] = c.false_condition;
      if (c.verdict == ruleset::Verdict::kChosen ||
          c.verdict == ruleset::Verdict::kBelowLimit ||
          c.verdict == ruleset::Verdict::kGroupAlreadyServed) {
        entry["score"] = c.score;
        entry["factors"] = {{"propensity", c.factors.propensity},
                            {"context_weight", c.factors.context_weight},
                            {"value", c.factors.value},
                            {"lever", c.factors.lever}};
      }
      candidates.push_back(std::move(entry));
    }
    out["candidates"] = std::move(candidates);
  }
  return out;
}

}  // namespace

int RunRulesCheck(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err) {
  if (args.empty()) {
    err << "usage: tappactl rules check FILE...\n";
    return 2;
  }
  int failures = 0;
  for (const std::string& path : args) {
    absl::StatusOr<std::shared_ptr<const ruleset::Ruleset>> rs =
        ruleset::LoadRulesetFile(path);
    if (!rs.ok()) {
      ++failures;
      for (const std::string& line : ruleset::ErrorLines(rs.status())) {
        err << line << '\n';
      }
      continue;
    }
    const ruleset::Ruleset& r = **rs;
    out << path << ": ok (version " << r.version.substr(0, 12) << ", "
        << r.phases.size() << " phases, " << r.placements.size()
        << " placements, " << r.actions.size() << " actions, "
        << r.transitions.size() << " transitions, " << r.follow_ups.size()
        << " follow-ups)\n";
  }
  return failures == 0 ? 0 : 1;
}

int RunRulesEval(const std::vector<std::string>& args, std::istream& in,
                 std::ostream& out, std::ostream& err) {
  EvalFlags flags;
  if (std::string problem = ParseEvalFlags(args, &flags); !problem.empty()) {
    err << "tappactl rules eval: " << problem
        << "\nusage: tappactl rules eval RULESET --placement P [--now RFC3339] "
           "[--limit N] [--explain]\n";
    return 2;
  }
  absl::StatusOr<std::shared_ptr<const ruleset::Ruleset>> rs =
      ruleset::LoadRulesetFile(flags.ruleset_path);
  if (!rs.ok()) {
    for (const std::string& line : ruleset::ErrorLines(rs.status()))
      err << line << '\n';
    return 1;
  }
  if ((*rs)->FindPlacement(flags.placement) < 0) {
    err << "tappactl rules eval: --placement: unknown placement '"
        << flags.placement << "'\n";
    return 2;
  }
  std::shared_ptr<const ruleset::Decider> decider =
      ruleset::Decider::Create(*rs);
  std::string line;
  while (std::getline(in, line)) {
    out << EvalLine(*decider, flags, line)
               .dump(-1, ' ', false, json::error_handler_t::replace)
        << '\n';
    out.flush();
  }
  return 0;
}

}  // namespace tappa::tappactl
