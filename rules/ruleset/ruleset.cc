#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {
namespace {

struct KindName {
  ActionKind kind;
  absl::string_view name;
};
constexpr KindName kKindNames[] = {
    {ActionKind::kMessage, "message"},
    {ActionKind::kEmail, "email"},
    {ActionKind::kOffer, "offer"},
    {ActionKind::kPush, "push"},
    {ActionKind::kSms, "sms"},
    {ActionKind::kContent, "content"},
    {ActionKind::kSurvey, "survey"},
    {ActionKind::kReferral, "referral"},
    {ActionKind::kRecommendation, "recommendation"},
};

template <typename T>
void Index(const std::vector<T>& items,
           absl::flat_hash_map<std::string, int>* index) {
  index->clear();
  index->reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    index->emplace(items[i].id, static_cast<int>(i));
  }
}

int Lookup(const absl::flat_hash_map<std::string, int>& index,
           absl::string_view id) {
  auto it = index.find(std::string(id));
  return it == index.end() ? -1 : it->second;
}

}  // namespace

absl::string_view ActionKindName(ActionKind kind) {
  for (const KindName& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

bool ParseActionKind(absl::string_view name, ActionKind* kind) {
  for (const KindName& k : kKindNames) {
    if (k.name == name) {
      *kind = k.kind;
      return true;
    }
  }
  return false;
}

void Ruleset::BuildIndexes() {
  Index(phases, &phase_index_);
  Index(channels, &channel_index_);
  Index(placements, &placement_index_);
  Index(actions, &action_index_);
  Index(counters, &counter_index_);
  Index(experiments, &experiment_index_);
  Index(follow_ups, &follow_up_index_);
}

int Ruleset::FindPhase(absl::string_view id) const {
  return Lookup(phase_index_, id);
}
int Ruleset::FindChannel(absl::string_view id) const {
  return Lookup(channel_index_, id);
}
int Ruleset::FindPlacement(absl::string_view id) const {
  return Lookup(placement_index_, id);
}
int Ruleset::FindAction(absl::string_view id) const {
  return Lookup(action_index_, id);
}
int Ruleset::FindCounter(absl::string_view id) const {
  return Lookup(counter_index_, id);
}
int Ruleset::FindExperiment(absl::string_view id) const {
  return Lookup(experiment_index_, id);
}
int Ruleset::FindFollowUp(absl::string_view id) const {
  return Lookup(follow_up_index_, id);
}

int Ruleset::ResolveStoredPhase(absl::string_view id) const {
  int phase = FindPhase(id);
  if (phase >= 0) return phase;
  for (const auto& [old_id, to] : renamed_phases) {
    if (old_id == id) return to;
  }
  return -1;
}

bool IdentitySettings::IsNamespace(absl::string_view ns) const {
  for (const char* known : kBuiltInNamespaces) {
    if (ns == known) return true;
  }
  for (const std::string& declared : namespaces) {
    if (ns == declared) return true;
  }
  return false;
}

bool IdentitySettings::AutoLinks(absl::string_view ns) const {
  for (const std::string& n : auto_link) {
    if (ns == n) return true;
  }
  return false;
}

}  // namespace tappa::ruleset
