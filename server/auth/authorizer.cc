#include "server/auth/authorizer.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tappa::server {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

}  // namespace

Authorizer::Authorizer(Metrics* metrics) : metrics_(metrics) {}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::FromFile(
    const std::string& path, Metrics* metrics) {
  absl::StatusOr<ApiKeyTable> table = ApiKeyTable::Load(path);
  if (!table.ok()) return table.status();
  std::unique_ptr<Authorizer> authorizer(new Authorizer(path, metrics));
  std::shared_ptr<const Keys> keys = authorizer->Build(*std::move(table));
  absl::MutexLock lock(&authorizer->mu_);
  authorizer->keys_ = std::move(keys);
  return authorizer;
}

Authorizer::Authorizer(std::string path, Metrics* metrics)
    : path_(std::move(path)), metrics_(metrics) {}

std::shared_ptr<const Authorizer::Keys> Authorizer::Build(
    ApiKeyTable table) const {
  auto keys = std::make_shared<Keys>();
  std::shared_ptr<const Keys> old;
  {
    absl::MutexLock lock(&mu_);
    old = keys_;
  }
  for (const ApiKey& key : table.keys()) {
    TokenBucket bucket(key.requests_per_second, key.burst);
    std::shared_ptr<Limiter> limiter;
    for (size_t i = 0; old != nullptr && i < old->table.keys().size(); ++i) {
      const TokenBucket& before = old->limiters[i]->bucket;
      if (old->table.keys()[i].name == key.name &&
          before.rate() == bucket.rate() && before.burst() == bucket.burst()) {
        limiter = old->limiters[i];
      }
    }
    if (limiter == nullptr) limiter = std::make_shared<Limiter>(bucket);
    keys->limiters.push_back(std::move(limiter));
  }
  keys->table = std::move(table);
  return keys;
}

absl::Status Authorizer::Reload() {
  if (!requires_keys()) return absl::OkStatus();
  absl::StatusOr<ApiKeyTable> table = ApiKeyTable::Load(path_);
  if (!table.ok()) return table.status();
  std::shared_ptr<const Keys> keys = Build(*std::move(table));
  absl::MutexLock lock(&mu_);
  keys_ = std::move(keys);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Authorizer::Authorize(
    const std::multimap<grpc::string_ref, grpc::string_ref>& client_metadata,
    Scope scope) const {
  if (!requires_keys()) return std::string(kAnonymousCaller);
  auto it = client_metadata.find("authorization");
  absl::string_view header;
  if (it != client_metadata.end()) {
    header = absl::string_view(it->second.data(), it->second.size());
  }
  if (!absl::StartsWith(header, kBearer) || header.size() == kBearer.size()) {
    if (metrics_ != nullptr) {
      metrics_->RecordAuthRejected(AuthRejection::kMissingKey);
    }
    return absl::UnauthenticatedError(
        "this server requires an API key: send gRPC metadata "
        "\"authorization: Bearer <key>\"");
  }
  std::shared_ptr<const Keys> keys;
  {
    absl::MutexLock lock(&mu_);
    keys = keys_;
  }
  const ApiKey* key = keys->table.Find(header.substr(kBearer.size()));
  if (key == nullptr) {
    if (metrics_ != nullptr) {
      metrics_->RecordAuthRejected(AuthRejection::kUnknownKey);
    }
    return absl::UnauthenticatedError("the API key is not valid");
  }
  if (!key->Allows(scope)) {
    if (metrics_ != nullptr)
      metrics_->RecordAuthRejected(AuthRejection::kScope);
    return absl::PermissionDeniedError(
        absl::StrCat("API key `", key->name, "` lacks the scope `",
                     ScopeName(scope), "` this method requires"));
  }
  Limiter& limiter = *keys->limiters[key - keys->table.keys().data()];
  if (!limiter.bucket.unlimited()) {
    absl::Duration retry_after;
    bool allowed;
    {
      absl::MutexLock lock(&limiter.mu);
      allowed = limiter.bucket.Take(absl::Now(), &limiter.state, &retry_after);
    }
    if (!allowed) {
      if (metrics_ != nullptr) metrics_->RecordRateLimited("key", key->name);
      return RateLimitedError(
          absl::StrCat("API key `", key->name, "` is over its rate of ",
                       limiter.bucket.rate(), " requests per second"),
          retry_after);
    }
  }
  return key->name;
}

}  // namespace tappa::server
