#include "server/service/identity_resolver.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/service/validation.h"

namespace tappa::server {
namespace {

constexpr absl::string_view kHashedNamespaces[] = {"email_sha256",
                                                   "phone_sha256"};

}  // namespace

absl::string_view AliasNamespace(absl::string_view id,
                                 const ruleset::Ruleset* ruleset) {
  size_t colon = id.find(':');
  if (colon == absl::string_view::npos) return "";
  absl::string_view ns = id.substr(0, colon);
  if (ruleset != nullptr) {
    return ruleset->identity.IsNamespace(ns) ? ns : "";
  }
  for (const char* known : ruleset::kBuiltInNamespaces) {
    if (ns == known) return ns;
  }
  return "";
}

absl::Status ValidateAlias(absl::string_view field, absl::string_view alias,
                           const ruleset::Ruleset* ruleset) {
  if (absl::Status s = ValidateId(field, alias); !s.ok()) return s;
  absl::string_view ns = AliasNamespace(alias, ruleset);
  if (ns.empty()) {
    std::string known = absl::StrJoin(ruleset::kBuiltInNamespaces, ", ");
    if (ruleset != nullptr) {
      for (const std::string& n : ruleset->identity.namespaces) {
        absl::StrAppend(&known, ", ", n);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must be <namespace>:<value> with a namespace of ", known));
  }
  absl::string_view value = alias.substr(ns.size() + 1);
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": the value after \"", ns, ":\" is empty"));
  }
  if (std::find(std::begin(kHashedNamespaces), std::end(kHashedNamespaces),
                ns) != std::end(kHashedNamespaces)) {
    bool hex = value.size() == 64 &&
               std::all_of(value.begin(), value.end(), [](char c) {
                 return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
               });
    if (!hex) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", ns,
          " values are 64 lowercase hex digits (the SHA-256 of the "
          "normalized value), never the value itself"));
    }
  }
  return absl::OkStatus();
}

IdentityResolver::IdentityResolver(IdentityStore* store,
                                   absl::Duration cache_ttl,
                                   size_t cache_capacity)
    : store_(store), ttl_(cache_ttl), capacity_(cache_capacity) {}

void IdentityResolver::Resolve(
    absl::string_view id, absl::Time deadline,
    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  // `done` runs without the lock: it may call back into the resolver.
  if (std::optional<std::string> cached = Cached(id)) {
    return done(*std::move(cached));
  }
  store_->Lookup(id, deadline,
                 [this, alias = std::string(id), done = std::move(done)](
                     absl::StatusOr<std::optional<std::string>> owner) mutable {
                   if (!owner.ok()) return done(owner.status());
                   if (!owner->has_value()) return done(std::move(alias));
                   Remember(alias, **owner);
                   done(**std::move(owner));
                 });
}

std::optional<std::string> IdentityResolver::Cached(absl::string_view alias) {
  if (ttl_ <= absl::ZeroDuration()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = cache_.find(alias);
  if (it == cache_.end()) return std::nullopt;
  if (it->second.expires <= absl::Now()) {
    cache_.erase(it);
    return std::nullopt;
  }
  return it->second.contact;
}

void IdentityResolver::Forget(absl::string_view alias) {
  absl::MutexLock lock(&mu_);
  cache_.erase(alias);
}

void IdentityResolver::Remember(absl::string_view alias,
                                absl::string_view contact) {
  if (ttl_ <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  // A full cache starts over: simpler than LRU bookkeeping on every hit,
  // and at 100,000 entries it happens rarely.
  if (cache_.size() >= capacity_) cache_.clear();
  cache_[alias] = Entry{std::string(contact), absl::Now() + ttl_};
}

}  // namespace tappa::server
