// Hot ruleset reload (SIGHUP and AdminService.ReloadRuleset): the file is
// read and validated whole; a valid one replaces the served ruleset
// atomically (RulesetHolder: calls in flight keep the version they started
// with), an invalid one changes nothing and its errors are returned.
//
// Stored data written under an older ruleset keeps working (contact_codec.h
// is lenient): counters, channels and actions it no longer has are ignored,
// contacts in a phase it no longer has read as its initial phase, pending
// follow-ups of a removed rule are dropped at fire time (counted:
// tappa_followups_total{outcome="dropped_rule_removed"}).
//
// Thread safety: thread-safe; reloads are serialized.
#ifndef TAPPA_SERVER_SERVICE_RULESET_RELOADER_H_
#define TAPPA_SERVER_SERVICE_RULESET_RELOADER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/metrics/metrics.h"
#include "server/service/runtime.h"

namespace tappa::server {

class RulesetReloader {
 public:
  // All must outlive the reloader.
  RulesetReloader(std::string path, RulesetHolder* holder, Metrics* metrics)
      : path_(std::move(path)), holder_(holder), metrics_(metrics) {}

  // Reloads the file. Yields whether the served version changed.
  // FailedPrecondition when the file is invalid (every error, one per line,
  // as file:line:col: message), Internal if its content cannot be served.
  absl::StatusOr<bool> Reload();

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  RulesetHolder* holder_;
  Metrics* metrics_;
  absl::Mutex mu_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_RULESET_RELOADER_H_
