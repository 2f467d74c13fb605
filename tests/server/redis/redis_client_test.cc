// The async Redis client against a real redis-server: replies, pipelines,
// deadlines, fail-fast while down, reconnection, authentication errors.
#include "server/redis/redis_client.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"

namespace tappa::server {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<RedisClient> StartClient(int port,
                                         const std::string& password = "",
                                         const std::string& user = "",
                                         int loops = 1) {
  RedisClient::Options options;
  options.loops = loops;
  options.connections = 2 * loops;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = port;
  options.endpoint.user = user;
  options.endpoint.password = password;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(100);
  auto client = RedisClient::Start(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

absl::StatusOr<std::vector<RedisReply>> PipelineSync(
    RedisClient& client, std::vector<std::vector<std::string>> cmds,
    absl::Duration timeout) {
  absl::Notification done;
  absl::StatusOr<std::vector<RedisReply>> result;
  client.Pipeline(std::move(cmds), absl::Now() + timeout,
                  [&](absl::StatusOr<std::vector<RedisReply>> r) {
                    result = std::move(r);
                    done.Notify();
                  });
  done.WaitForNotification();
  return result;
}

TEST(RedisClientTest, CommandsAndPipelinesGetTheirReplies) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto client = StartClient((*redis)->port());
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5))) << client->last_error();

  auto set = RedisCommandSync(*client, {"SET", "k", std::string("v\0w", 3)});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->type, RedisReply::Type::kStatus);
  auto replies = PipelineSync(*client,
                              {{"GET", "k"},
                               {"INCR", "n"},
                               {"HGETALL", "none"},
                               {"GET", "none"},
                               {"LPUSH", "k", "x"}},
                              absl::Seconds(5));
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), 5u);
  EXPECT_EQ((*replies)[0].str, std::string("v\0w", 3));
  EXPECT_EQ((*replies)[1].integer, 1);
  EXPECT_EQ((*replies)[2].type, RedisReply::Type::kArray);
  EXPECT_TRUE((*replies)[3].is_nil());
  EXPECT_TRUE((*replies)[4].is_error());  // WRONGTYPE is a reply, not a Status
  EXPECT_THAT((*replies)[4].str, HasSubstr("WRONGTYPE"));
}

// Several loop threads: commands from many threads all get their own
// replies, pipelines stay in order, and a restart of Redis reconnects every
// loop.
TEST(RedisClientTest, SeveralLoopsServeCommandsFromManyThreads) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto client = StartClient((*redis)->port(), "", "", /*loops=*/3);
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5))) << client->last_error();

  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string key = absl::StrCat("k", t, ":", i);
        // Each pipeline reads back what it wrote, whichever loop took it.
        auto replies = PipelineSync(
            *client, {{"SET", key, key}, {"INCR", "n"}, {"GET", key}},
            absl::Seconds(5));
        if (!replies.ok() || (*replies)[2].str != key) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  auto n = RedisCommandSync(*client, {"GET", "n"});
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->str, absl::StrCat(kThreads * kPerThread));

  EXPECT_EQ(client->connections_up(), 6);  // two per loop
  (*redis)->Kill();
  for (int i = 0; i < 200 && client->connections_up() > 0; ++i) {
    RedisCommandSync(*client, {"PING"}, absl::Milliseconds(50)).IgnoreError();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(client->connections_up(), 0);
  ASSERT_TRUE((*redis)->Restart().ok());
  // Every connection of every loop comes back by itself.
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (client->connections_up() < 6 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(client->connections_up(), 6) << client->last_error();
  for (int i = 0; i < 6; ++i) {
    auto ping = RedisCommandSync(*client, {"PING"});
    EXPECT_TRUE(ping.ok()) << ping.status();
  }
}

// Commands with one affinity reach Redis in the order they were sent, over
// several loops and connections (others spread over all of them).
TEST(RedisClientTest, CommandsWithOneAffinityKeepTheirOrder) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto client = StartClient((*redis)->port(), "", "", /*loops=*/3);
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5))) << client->last_error();
  while (client->connections_up() < 6) absl::SleepFor(absl::Milliseconds(5));

  constexpr int kLists = 8;
  constexpr int kPerList = 300;
  absl::Mutex mu;
  int left = kLists * kPerList;
  std::vector<std::vector<int64_t>> lengths(kLists);
  for (int i = 0; i < kPerList; ++i) {
    for (int a = 0; a < kLists; ++a) {
      client->CommandInOrder(
          a, {"RPUSH", absl::StrCat("list", a), absl::StrCat(i)},
          absl::Now() + absl::Seconds(10),
          [&, a](absl::StatusOr<RedisReply> r) {
            absl::MutexLock lock(&mu);
            EXPECT_TRUE(r.ok()) << r.status();
            if (r.ok()) lengths[a].push_back(r->integer);
            --left;
          });
    }
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* left) { return *left == 0; }, &left));
  }
  for (int a = 0; a < kLists; ++a) {
    auto list = RedisCommandSync(
        *client, {"LRANGE", absl::StrCat("list", a), "0", "-1"});
    ASSERT_TRUE(list.ok()) << list.status();
    ASSERT_EQ(list->elements.size(), static_cast<size_t>(kPerList));
    for (int i = 0; i < kPerList; ++i) {
      ASSERT_EQ(list->elements[i].str, absl::StrCat(i)) << "list " << a;
      // And the replies came back in that order too.
      ASSERT_EQ(lengths[a][i], i + 1) << "list " << a;
    }
  }
}

TEST(RedisClientTest, DeadlinesFireWhileRedisIsPaused) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto client = StartClient((*redis)->port());
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5)));
  ASSERT_TRUE((*redis)->Command({"CLIENT", "PAUSE", "400", "ALL"}).ok());
  absl::Time start = absl::Now();
  auto reply = RedisCommandSync(*client, {"GET", "k"}, absl::Milliseconds(30));
  absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded);
  // A correctness bound, not a benchmark: far less than the 400 ms pause.
  EXPECT_LT(waited, absl::Milliseconds(300));
  // After the pause the connection still works (the late reply was dropped).
  absl::SleepFor(absl::Milliseconds(450));
  auto after = RedisCommandSync(*client, {"PING"});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->str, "PONG");
}

TEST(RedisClientTest, FailsFastWhileDownAndReconnectsByItself) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto client = StartClient((*redis)->port());
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5)));
  (*redis)->Kill();
  // The loss is noticed on the next command or when the socket closes.
  for (int i = 0; i < 100 && client->connected(); ++i) {
    RedisCommandSync(*client, {"PING"}, absl::Milliseconds(50)).IgnoreError();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(client->connected());
  absl::Time start = absl::Now();
  auto down = RedisCommandSync(*client, {"PING"}, absl::Seconds(5));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start,
            absl::Seconds(1));  // fail fast, not at the deadline

  ASSERT_TRUE((*redis)->Restart().ok());
  ASSERT_TRUE(client->WaitConnected(absl::Seconds(5))) << client->last_error();
  auto up = RedisCommandSync(*client, {"PING"});
  ASSERT_TRUE(up.ok()) << up.status();
}

TEST(RedisClientTest, RefusedAuthenticationIsAClearErrorWithoutThePassword) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  // Set after start: the fixture's own connection stays authenticated.
  ASSERT_TRUE((*redis)
                  ->Command({"CONFIG", "SET", "requirepass", "right-password"})
                  .ok());
  auto wrong = StartClient((*redis)->port(), "wrong-password");
  EXPECT_FALSE(wrong->WaitConnected(absl::Milliseconds(500)));
  EXPECT_THAT(std::string(wrong->last_error().message()),
              HasSubstr("Redis refused authentication"));
  EXPECT_THAT(std::string(wrong->last_error().message()),
              ::testing::Not(HasSubstr("wrong-password")));
  auto right = StartClient((*redis)->port(), "right-password");
  EXPECT_TRUE(right->WaitConnected(absl::Seconds(5))) << right->last_error();
}

// Redis 6+ ACL users: a user of its own with a password, limited to Tappa's
// keys and commands, is how a production deployment should connect.
TEST(RedisClientTest, AclUserAuthenticates) {
  auto redis = testing::RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  ASSERT_TRUE((*redis)
                  ->Command({"ACL", "SETUSER", "tappa", "on", ">user-secret",
                             "~tp:*", "+@all"})
                  .ok());
  auto user = StartClient((*redis)->port(), "user-secret", "tappa");
  ASSERT_TRUE(user->WaitConnected(absl::Seconds(5))) << user->last_error();
  auto set = RedisCommandSync(*user, {"SET", "tp:k", "v"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_FALSE(set->is_error()) << set->str;
  // The ACL holds: keys outside tp:* are refused, as Redis says.
  auto other = RedisCommandSync(*user, {"SET", "elsewhere", "v"});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(other->is_error());
  // A wrong password for the user is refused clearly, without the password.
  auto wrong = StartClient((*redis)->port(), "not-it", "tappa");
  EXPECT_FALSE(wrong->WaitConnected(absl::Milliseconds(500)));
  EXPECT_THAT(std::string(wrong->last_error().message()),
              HasSubstr("Redis refused authentication"));
  EXPECT_THAT(std::string(wrong->last_error().message()),
              ::testing::Not(HasSubstr("not-it")));
}

}  // namespace
}  // namespace tappa::server
