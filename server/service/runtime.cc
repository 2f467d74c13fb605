#include "server/service/runtime.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace tappa::server {

absl::StatusOr<std::shared_ptr<const ServingRuleset>> ServingRuleset::Create(
    std::shared_ptr<const ruleset::Ruleset> ruleset) {
  auto serving = std::make_shared<ServingRuleset>();
  serving->decider = ruleset::Decider::Create(ruleset);
  serving->loaded_at = absl::Now();
  serving->contents.resize(ruleset->actions.size());
  for (size_t i = 0; i < ruleset->actions.size(); ++i) {
    auto status = google::protobuf::util::JsonStringToMessage(
        ruleset->actions[i].content_json, &serving->contents[i]);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "action ", ruleset->actions[i].id, ": content: ", status.ToString()));
    }
  }
  auto served = [](const std::vector<ruleset::Limit>& caps) {
    for (const ruleset::Limit& l : caps) {
      if (l.count_on == ruleset::Limit::CountOn::kServed) return true;
    }
    return false;
  };
  for (const ruleset::Action& a : ruleset->actions) {
    serving->action_counts_served.push_back(served(a.caps));
    if (a.adaptive.has_value()) serving->has_adaptive = true;
  }
  serving->channel_counts_served.assign(ruleset->channels.size(), false);
  for (const ruleset::ChannelPolicy& p : ruleset->policies.channels) {
    if (p.channel >= 0)
      serving->channel_counts_served[p.channel] = served(p.caps);
  }
  serving->global_counts_served = served(ruleset->policies.caps);
  serving->ruleset = std::move(ruleset);
  return std::shared_ptr<const ServingRuleset>(std::move(serving));
}

}  // namespace tappa::server
