// What the in-process tests of the request handlers' cores share: a clock
// the test sets, a Redis client connected to a test's own redis-server, and
// a ruleset ready to serve from YAML.
#ifndef TAPPA_TESTS_SERVER_SERVICE_SERVICE_FIXTURE_H_
#define TAPPA_TESTS_SERVER_SERVICE_SERVICE_FIXTURE_H_

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rules/ruleset/loader.h"
#include "server/redis/redis_client.h"
#include "server/service/runtime.h"
#include "tests/server/process_fixture.h"

namespace tappa::testing {

class FakeClock final : public server::Clock {
 public:
  explicit FakeClock(absl::Time now) : now_(now) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Set(absl::Time now) {
    absl::MutexLock lock(&mu_);
    now_ = now;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

// A client of `redis`, connected (or the reason it is not within 5 s).
inline absl::StatusOr<std::unique_ptr<server::RedisClient>> ConnectClient(
    const RedisProcess& redis) {
  server::RedisClient::Options options;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = redis.port();
  absl::StatusOr<std::unique_ptr<server::RedisClient>> client =
      server::RedisClient::Start(std::move(options));
  if (client.ok() && !(*client)->WaitConnected(absl::Seconds(5))) {
    return absl::UnavailableError("the Redis client did not connect in 5 s");
  }
  return client;
}

// `yaml` loaded (as `name`, for errors) and made ready to serve.
inline absl::StatusOr<std::shared_ptr<const server::ServingRuleset>>
ServingFromYaml(absl::string_view yaml, absl::string_view name) {
  auto loaded = ruleset::LoadRulesetFromString(yaml, name);
  if (!loaded.ok()) return loaded.status();
  return server::ServingRuleset::Create(*std::move(loaded));
}

}  // namespace tappa::testing

#endif  // TAPPA_TESTS_SERVER_SERVICE_SERVICE_FIXTURE_H_
