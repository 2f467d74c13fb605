// libFuzzer target for what clients send as a contact in
// DecisionService.Simulate: JSON parsed by ContactFromJson and applied as
// overrides by ApplyContactOverrides, then decided on with every policy and
// the explanation on. Also splits the input into conjuncts (conjuncts.h),
// whose parts must be pieces of the input. Any bytes: an error or a result,
// never a crash, a hang or a leak.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "rules/cel/lexer.h"
#include "rules/ruleset/conjuncts.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/decision.h"
#include "rules/ruleset/loader.h"
#include "rules/ruleset/policy.h"

namespace {

using namespace tappa::ruleset;

const std::shared_ptr<const Ruleset>& Retail() {
  static const auto* rs = [] {
    auto loaded = LoadRulesetFile(std::string(TAPPA_SOURCE_DIR) +
                                  "/rules/examples/retail.yaml");
    if (!loaded.ok()) std::abort();
    return new std::shared_ptr<const Ruleset>(*loaded);
  }();
  return *rs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (tappa::cel::FindInvalidUtf8(text) < 0) {
    for (const std::string& part : SplitConjuncts(text)) {
      if (part.empty() || text.find(part) == std::string::npos) std::abort();
    }
  }
  nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
  if (json.is_discarded()) return 0;
  const Ruleset& rs = *Retail();
  absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  absl::StatusOr<ContactSnapshot> contact = ContactFromJson(rs, json, now);
  ContactSnapshot base;
  base.phase = rs.initial_phase;
  base.counts.assign(rs.counters.size(), 0);
  base.rolling.assign(rs.counters.size(), {});
  absl::Status applied = ApplyContactOverrides(rs, json, now, &base);
  if (contact.ok() != applied.ok()) std::abort();
  if (!contact.ok()) return 0;
  static const auto* decider =
      new std::shared_ptr<const Decider>(Decider::Create(Retail()));
  ContactRestraint restraint;
  for (int p = 0; p < static_cast<int>(rs.placements.size()); ++p) {
    int channel = rs.placements[p].channel;
    ContactBinding binding(rs, *contact);
    ContextBinding context(rs.channels[channel].id, rs.placements[p].id, {});
    PolicyCheck policies(rs, channel, *contact, restraint, now);
    DecisionOptions options;
    options.explain = true;
    options.contact_id = contact->id;
    options.policies = &policies;
    (*decider)->Decide(contact->phase, p, binding.value(), context.value(), now,
                       options);
  }
  return 0;
}
