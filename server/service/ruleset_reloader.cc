#include "server/service/ruleset_reloader.h"

#include <iostream>

#include "absl/strings/str_join.h"
#include "rules/ruleset/loader.h"

namespace tappa::server {

absl::StatusOr<bool> RulesetReloader::Reload() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::shared_ptr<const ruleset::Ruleset>> loaded =
      ruleset::LoadRulesetFile(path_);
  if (!loaded.ok()) {
    metrics_->RecordReload(ReloadResult::kFailed);
    std::string errors =
        absl::StrJoin(ruleset::ErrorLines(loaded.status()), "\n");
    std::cerr << "tappa-server: reload refused, still serving the previous "
                 "ruleset:\n"
              << errors << std::endl;
    return absl::FailedPreconditionError(absl::StrCat(
        "the ruleset is invalid; still serving version ",
        holder_->Get() ? holder_->Get()->ruleset->version : "", ":\n", errors));
  }
  std::shared_ptr<const ServingRuleset> current = holder_->Get();
  if (current != nullptr && current->ruleset->version == (*loaded)->version) {
    metrics_->RecordReload(ReloadResult::kUnchanged);
    return false;
  }
  absl::StatusOr<std::shared_ptr<const ServingRuleset>> serving =
      ServingRuleset::Create(*loaded);
  if (!serving.ok()) {
    metrics_->RecordReload(ReloadResult::kFailed);
    return absl::InternalError(serving.status().message());
  }
  metrics_->InstallRuleset(**loaded);
  holder_->Set(*serving);
  metrics_->RecordReload(ReloadResult::kReloaded);
  std::cerr << "tappa-server: reloaded " << path_ << " (version "
            << (*loaded)->version.substr(0, 12) << ")" << std::endl;
  return true;
}

}  // namespace tappa::server
