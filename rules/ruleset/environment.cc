#include "rules/ruleset/environment.h"

#include <cassert>

#include "absl/container/flat_hash_set.h"

namespace tappa::ruleset {

bool IsReservedName(absl::string_view name) {
  // CEL's literals and reserved words (cel-spec langdef.md), its type names,
  // and the context variables: a constant with one of these names would be
  // unusable or would shadow something every rule author relies on.
  static const auto* const kReserved = new absl::flat_hash_set<std::string>{
      "false",    "in",        "null",     "true",       "as",
      "break",    "const",     "continue", "else",       "for",
      "function", "if",        "import",   "let",        "loop",
      "package",  "namespace", "return",   "var",        "void",
      "while",    "int",       "uint",     "double",     "bool",
      "string",   "bytes",     "list",     "map",        "null_type",
      "type",     "dyn",       "google",   "event",      "contact",
      "context",  "now",       "action",   "propensity", "context_weight",
  };
  return kReserved->contains(std::string(name));
}

cel::Type CountsType(absl::Span<const std::string> counter_ids) {
  std::vector<std::pair<std::string, cel::Type>> fields;
  fields.reserve(counter_ids.size());
  for (const std::string& id : counter_ids) {
    fields.emplace_back(id, cel::Type::Int());
  }
  return cel::Type::Object("counts", std::move(fields));
}

cel::Type CxType() {
  return cel::Type::Object("cx", {
                                     {"nps", cel::Type::Int()},
                                     {"csat", cel::Type::Int()},
                                     {"ces", cel::Type::Int()},
                                     {"nps_at", cel::Type::Timestamp()},
                                     {"csat_at", cel::Type::Timestamp()},
                                     {"ces_at", cel::Type::Timestamp()},
                                 });
}

cel::Type ContactType(absl::Span<const std::string> counter_ids) {
  return cel::Type::Object(
      "contact",
      {
          {"id", cel::Type::String()},
          {"phase", cel::Type::String()},
          {"phase_since", cel::Type::Timestamp()},
          {"first_seen", cel::Type::Timestamp()},
          {"last_seen", cel::Type::Timestamp()},
          {"last_seen_by_channel",
           cel::Type::Map(cel::Type::String(), cel::Type::Timestamp())},
          {"counts", CountsType(counter_ids)},
          {"attrs", cel::Type::Map(cel::Type::String(), cel::Type::Dyn())},
          {"consents", cel::Type::Map(cel::Type::String(), cel::Type::Bool())},
          {"cx", CxType()},
      });
}

cel::Type EventType() {
  return cel::Type::Object(
      "event",
      {
          {"id", cel::Type::String()},
          {"type", cel::Type::String()},
          {"channel", cel::Type::String()},
          {"placement", cel::Type::String()},
          {"properties", cel::Type::Map(cel::Type::String(), cel::Type::Dyn())},
          {"time", cel::Type::Timestamp()},
      });
}

cel::Type ContextType() {
  return cel::Type::Map(cel::Type::String(), cel::Type::Dyn());
}

cel::Type ActionType() {
  return cel::Type::Object("action", {
                                         {"id", cel::Type::String()},
                                         {"kind", cel::Type::String()},
                                         {"group", cel::Type::String()},
                                         {"priority", cel::Type::Int()},
                                         {"value", cel::Type::Double()},
                                         {"lever", cel::Type::Double()},
                                     });
}

std::shared_ptr<const Environments> Environments::Build(
    absl::Span<const std::string> counter_ids,
    absl::Span<const std::pair<std::string, cel::Value>> constants) {
  std::shared_ptr<Environments> envs(new Environments());
  envs->contact_type_ = ContactType(counter_ids);
  const cel::Type& contact = envs->contact_type_;

  // Declaration order defines the slots; the asserts keep the constants in
  // the header honest.
  cel::Environment& ev = envs->event_;
  [[maybe_unused]] int slot = ev.DeclareVariable(kEventVar, EventType());
  assert(slot == kEventSlots.event);
  slot = ev.DeclareVariable(kContactVar, contact);
  assert(slot == kEventSlots.contact);
  slot = ev.DeclareVariable(kNowVar, cel::Type::Timestamp());
  assert(slot == kEventSlots.now);

  cel::Environment& cond = envs->condition_;
  slot = cond.DeclareVariable(kContactVar, contact);
  assert(slot == kConditionSlots.contact);
  slot = cond.DeclareVariable(kContextVar, ContextType());
  assert(slot == kConditionSlots.context);
  slot = cond.DeclareVariable(kNowVar, cel::Type::Timestamp());
  assert(slot == kConditionSlots.now);

  cel::Environment& rank = envs->ranking_;
  slot = rank.DeclareVariable(kContactVar, contact);
  assert(slot == kRankingSlots.contact);
  slot = rank.DeclareVariable(kContextVar, ContextType());
  assert(slot == kRankingSlots.context);
  slot = rank.DeclareVariable(kNowVar, cel::Type::Timestamp());
  assert(slot == kRankingSlots.now);
  slot = rank.DeclareVariable(kActionVar, ActionType());
  assert(slot == kRankingSlots.action);
  slot = rank.DeclareVariable(kPropensityVar, cel::Type::Double());
  assert(slot == kRankingSlots.propensity);
  slot = rank.DeclareVariable(kContextWeightVar, cel::Type::Double());
  assert(slot == kRankingSlots.context_weight);

  for (const auto& [name, value] : constants) {
    ev.DeclareConstant(name, value);
    cond.DeclareConstant(name, value);
    rank.DeclareConstant(name, value);
  }
  return envs;
}

}  // namespace tappa::ruleset
