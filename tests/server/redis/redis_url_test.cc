#include "server/redis/redis_url.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(RedisUrlTest, HostPortAndDatabase) {
  auto ep = ParseRedisUrl("redis://cache.local:6380/3");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_EQ(ep->host, "cache.local");
  EXPECT_EQ(ep->port, 6380);
  EXPECT_EQ(ep->db, 3);
  EXPECT_FALSE(ep->is_unix());
  EXPECT_EQ(ParseRedisUrl("redis://127.0.0.1")->port, 6379);
  EXPECT_EQ(ParseRedisUrl("redis://[::1]:7000")->host, "::1");
}

TEST(RedisUrlTest, CredentialsAreParsedAndNeverPrinted) {
  auto ep = ParseRedisUrl("redis://tappa:s3cr%40t@10.0.0.5:6379");
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->user, "tappa");
  EXPECT_EQ(ep->password, "s3cr@t");
  EXPECT_THAT(ep->Redacted(), Not(HasSubstr("s3cr")));
  EXPECT_EQ(ep->Redacted(), "redis://tappa:***@10.0.0.5:6379");

  auto legacy = ParseRedisUrl("redis://:onlypass@localhost:6379");
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->user, "");
  EXPECT_EQ(legacy->password, "onlypass");
}

TEST(RedisUrlTest, UnixSockets) {
  auto ep = ParseRedisUrl("unix:///run/redis/redis.sock?db=2");
  ASSERT_TRUE(ep.ok()) << ep.status();
  EXPECT_TRUE(ep->is_unix());
  EXPECT_EQ(ep->unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(ep->db, 2);
}

TEST(RedisUrlTest, ErrorsNameThePartAndHideThePassword) {
  for (const char* bad :
       {"http://x", "redis://", "redis://h:0", "redis://h:70000", "redis://h:p",
        "redis://h/x", "unix://relative", "redis://[::1"}) {
    auto ep = ParseRedisUrl(bad);
    EXPECT_FALSE(ep.ok()) << bad;
    EXPECT_THAT(std::string(ep.status().message()), HasSubstr("redis_url:"))
        << bad;
  }
  auto ep = ParseRedisUrl("redis://u:topsecret@h:99999");
  EXPECT_THAT(std::string(ep.status().message()), Not(HasSubstr("topsecret")));
}

}  // namespace
}  // namespace tappa::server
