// Resolves the contact a request names: its canonical id, or an alias
// "<namespace>:<value>" of it (identity_store.h).
//
// An id is an alias when the text before its first ':' is an identity
// namespace: the built-in ones (cookie, device, email_sha256, phone_sha256,
// crm, social) or one the ruleset declares (`identity.namespaces`).
// Anything else is a canonical id and costs nothing to resolve.
//
// Two ways to resolve. Resolve() reads the alias record (one GET), for
// calls that need the canonical id before writing (DeleteContact,
// LinkIdentities, Simulate). Readers (decisions, events, GetContact,
// ExportContact) spend nothing:
// runtime.h ContactToRead() takes a fresh cache entry, else the alias
// itself, whose hash redirects to the contact it names when linked
// (identity_store.h); the reader follows the redirect and Remember()s it.
// The cache (--alias_cache_ttl, default 5 s) is the staleness bound after
// a link made through another replica. An alias without a record names a
// contact of its own whose canonical id is the alias itself.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_IDENTITY_RESOLVER_H_
#define TAPPA_SERVER_SERVICE_IDENTITY_RESOLVER_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rules/ruleset/ruleset.h"
#include "server/store/identity_store.h"

namespace tappa::server {

// The namespace of `id` when it is an alias under `ruleset` (null: the
// built-in namespaces only), else "".
absl::string_view AliasNamespace(absl::string_view id,
                                 const ruleset::Ruleset* ruleset);

// INVALID_ARGUMENT naming `field` when `alias` breaks its namespace's rule:
// hashed namespaces (email_sha256, phone_sha256) take 64 lowercase hex
// digits, so a raw address is refused rather than stored; every value is
// 1-128 bytes after the namespace.
absl::Status ValidateAlias(absl::string_view field, absl::string_view alias,
                           const ruleset::Ruleset* ruleset);

class IdentityResolver {
 public:
  // `store` must outlive the resolver. `cache_ttl` zero: no cache.
  IdentityResolver(IdentityStore* store, absl::Duration cache_ttl,
                   size_t cache_capacity = 100'000);

  // The contact the alias `id` names (see the file comment); the caller
  // has checked that `id` is an alias. Runs `done` at once when cached,
  // else on a Redis loop thread.
  void Resolve(absl::string_view id, absl::Time deadline,
               absl::AnyInvocable<void(absl::StatusOr<std::string>)> done);

  // What this server remembers about `alias`, if it is fresh.
  std::optional<std::string> Cached(absl::string_view alias);

  // Drops what this server remembers about `alias` (it was just linked or
  // erased here).
  void Forget(absl::string_view alias);

  // Remembers that `alias` names `contact` (it was just linked here).
  void Remember(absl::string_view alias, absl::string_view contact);

 private:
  struct Entry {
    std::string contact;
    absl::Time expires;
  };

  IdentityStore* store_;
  const absl::Duration ttl_;
  const size_t capacity_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_IDENTITY_RESOLVER_H_
