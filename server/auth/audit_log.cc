#include "server/auth/audit_log.h"

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace tappa::server {

std::string AuditLog::Line(absl::Time time, absl::string_view method,
                           absl::string_view key_name, absl::string_view target,
                           const absl::Status& result,
                           absl::string_view detail) {
  // nlohmann::ordered_json keeps the fields in a fixed, readable order.
  nlohmann::ordered_json line;
  line["time"] =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
  line["audit"] = std::string(method);
  line["key"] = std::string(key_name);
  line["target"] = std::string(target);
  line["result"] = absl::StatusCodeToString(result.code());
  if (!result.ok()) line["error"] = std::string(result.message());
  if (!detail.empty()) line["detail"] = std::string(detail);
  // Invalid UTF-8 in a target (a contact id is validated, but a path may
  // be anything) is replaced rather than thrown on.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void AuditLog::Record(absl::Time time, absl::string_view method,
                      absl::string_view key_name, absl::string_view target,
                      const absl::Status& result, absl::string_view detail) {
  if (out_ == nullptr) return;
  std::string line = Line(time, method, key_name, target, result, detail);
  absl::MutexLock lock(&mu_);
  *out_ << line << '\n' << std::flush;
}

}  // namespace tappa::server
