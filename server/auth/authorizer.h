// Who may call which method: every RPC handler asks the Authorizer first,
// with the scope its method requires (api_keys.h lists them).
//
// Without a keys file the server is open: every call is allowed, as caller
// "anonymous" (main.cc allows that only on loopback, or with
// --insecure_allow_unauthenticated). With one, a call must carry
// "authorization: Bearer <key>": no or an unknown key is UNAUTHENTICATED, a
// key without the scope PERMISSION_DENIED, a key over its request rate
// RESOURCE_EXHAUSTED with a retry delay. Keys are never logged; metrics and
// audit lines name keys by their `name`.
//
// Thread safety: thread-safe. Reload() swaps the table atomically; calls
// being authorized finish with the table they started with.
#ifndef TAPPA_SERVER_AUTH_AUTHORIZER_H_
#define TAPPA_SERVER_AUTH_AUTHORIZER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/auth/api_keys.h"
#include "server/auth/token_bucket.h"
#include "server/metrics/metrics.h"

namespace tappa::server {

inline constexpr absl::string_view kAnonymousCaller = "anonymous";

class Authorizer {
 public:
  // An open authorizer (no keys). `metrics` may be null.
  explicit Authorizer(Metrics* metrics);
  // Keys from `path` (errors as ApiKeyTable::Load).
  static absl::StatusOr<std::unique_ptr<Authorizer>> FromFile(
      const std::string& path, Metrics* metrics);

  bool requires_keys() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // Re-reads the keys file: on success the new keys apply to the next call
  // (a key that keeps its name keeps its rate-limit state); on error the old
  // keys stay and the error is returned. OK and a no-op when open.
  absl::Status Reload();

  // The name of the caller's key, or the refusal (see the file comment).
  // `client_metadata` is the call's (ServerContextBase::client_metadata()).
  absl::StatusOr<std::string> Authorize(
      const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata,
      Scope scope) const;

  // The same, for a call's context.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContextBase& context,
                                        Scope scope) const {
    return Authorize(context.client_metadata(), scope);
  }

 private:
  // One key's request rate state, kept across reloads by name.
  struct Limiter {
    explicit Limiter(TokenBucket b) : bucket(b) {}
    const TokenBucket bucket;
    absl::Mutex mu;
    BucketState state ABSL_GUARDED_BY(mu);
  };
  struct Keys {
    ApiKeyTable table;
    std::vector<std::shared_ptr<Limiter>> limiters;  // by key
  };

  Authorizer(std::string path, Metrics* metrics);
  std::shared_ptr<const Keys> Build(ApiKeyTable table) const;

  const std::string path_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Keys> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_AUTH_AUTHORIZER_H_
