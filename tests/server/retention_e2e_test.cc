// End-to-end test of data retention through the real binary: the ruleset's
// `retention` (shorter than --retention, so in force) erases a contact that
// only got reads, keeps one that keeps sending events, and the erasures are
// counted by reason. The server runs a fast test clock (--test_clock_scale):
// the 168-hour retention passes in about 6 real seconds.
#include <atomic>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

// An RPC's status, for ASSERT_TRUE(Ok(...)).
::testing::AssertionResult Ok(const grpc::Status& status) {
  if (status.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << Describe(status);
}

// One real second is 100,000 server seconds (27.8 hours).
constexpr double kClockScale = 100'000;

TEST(RetentionE2eTest, IdleContactsAreErasedActiveOnesKept) {
  absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  ServerProcess::Options options;
  options.rules_path =
      absl::StrCat(TAPPA_SOURCE_DIR, "/tests/server/testdata/retention.yaml");
  options.redis_url = (*redis)->url();
  options.extra_flags = {"--shards=4",
                         absl::StrCat("--test_clock_scale=", kClockScale),
                         "--retention_sweep_every=20ms"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(PollUntil(
      [&] { return absl::StrContains((*server)->Log(), "retention 168h"); },
      absl::Seconds(10)))
      << (*server)->Log();
  TappaClient client((*server)->channel());

  int next = 0;
  auto track = [&](const std::string& contact, const std::string& type) {
    return client.Track(
        MakeEvent(contact, absl::StrCat("ev-", next++), type, "web"));
  };
  ASSERT_TRUE(Ok(track("idle", "cart_add")));  // a follow-up pending too
  ASSERT_TRUE(Ok(track("busy", "view")));

  // "busy" sends an event every 100 ms (2.8 server hours); "idle" is only
  // read, which is not activity. Wait for the sweep to erase "idle".
  bool erased = false;
  absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (!erased && absl::Now() < give_up) {
    ASSERT_TRUE(Ok(track("busy", "view")));
    grpc::Status read = client.Get("idle");
    erased = read.error_code() == grpc::StatusCode::NOT_FOUND;
    if (!erased) {
      ASSERT_TRUE(Ok(read));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(erased) << (*server)->Log();
  ASSERT_TRUE(Ok(client.Get("busy")));

  // Nothing of "idle" is left, its follow-up included.
  absl::StatusOr<SyncRedisReply> keys = (*redis)->Command({"KEYS", "*idle*"});
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->elements.empty());
  int64_t pending = 0;
  for (int s = 0; s < 4; ++s) {
    absl::StatusOr<SyncRedisReply> n =
        (*redis)->Command({"ZCARD", absl::StrCat("tp:{s:000", s, "}:fd")});
    ASSERT_TRUE(n.ok());
    pending += n->integer;
  }
  EXPECT_EQ(pending, 0);

  tappa::v1::DeleteContactResponse deleted;
  ASSERT_TRUE(Ok(client.Delete("busy", &deleted)));
  EXPECT_TRUE(deleted.existed());
  absl::StatusOr<std::string> metrics = (*server)->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(*metrics,
              ::testing::HasSubstr(
                  "tappa_contacts_erased_total{reason=\"retention\"} 1"));
  EXPECT_THAT(*metrics,
              ::testing::HasSubstr(
                  "tappa_contacts_erased_total{reason=\"request\"} 1"));
}

}  // namespace
}  // namespace tappa::testing
