// The audit trail: one JSON line per security-relevant act (erasures,
// exports, identity links and merges, ruleset reloads, admin calls), with
// the time, the API key's name, the method, the target and the result:
//
//   {"time":"2026-11-30T06:12:01.532Z","audit":"DeleteContact",
//    "key":"crm-sync","target":"c-42","result":"OK"}
//
// Never the data itself (no attributes, no keys, no tokens). The target is
// what the act was about: a contact id, a ruleset path. Lines go to the
// stream given (stderr, or the file of --audit_log), flushed per line so a
// crash loses none that were written.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_AUTH_AUDIT_LOG_H_
#define TAPPA_SERVER_AUTH_AUDIT_LOG_H_

#include <ostream>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tappa::server {

class AuditLog {
 public:
  // Writes to `out`, which must outlive the log. Null: records nothing.
  explicit AuditLog(std::ostream* out) : out_(out) {}

  // One line. `detail` (optional) adds a short factual note, e.g. a count.
  void Record(absl::Time time, absl::string_view method,
              absl::string_view key_name, absl::string_view target,
              const absl::Status& result, absl::string_view detail = "");

  // The line Record writes (without the newline).
  static std::string Line(absl::Time time, absl::string_view method,
                          absl::string_view key_name, absl::string_view target,
                          const absl::Status& result, absl::string_view detail);

 private:
  absl::Mutex mu_;
  std::ostream* const out_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_AUTH_AUDIT_LOG_H_
