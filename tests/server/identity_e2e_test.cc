// End-to-end tests of identities (issue 7, first part): aliases resolved on
// every request, LinkIdentities, limits, aliases in GetContact, erasure by
// alias. The real tappa-server against a private redis-server.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tappa/v1/journey_service.grpc.pb.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// SHA-256 hex digests (of nothing in particular: the server checks shape).
const std::string kEmail = "email_sha256:" + std::string(64, 'a');
const std::string kOtherEmail = "email_sha256:" + std::string(64, 'b');

class IdentityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ServerProcess::Options options;
    options.redis_url = redis_->url();
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<TappaClient>(server_->channel());
    journey_ = tappa::v1::JourneyService::NewStub(server_->channel());
  }

  tappa::v1::TrackEventResponse Track(const std::string& contact,
                                      const std::string& type = "page_view") {
    tappa::v1::TrackEventResponse response;
    grpc::Status s = client_->Track(
        MakeEvent(contact, absl::StrCat("e", ++seq_), type, "web"), &response);
    EXPECT_TRUE(s.ok()) << contact << ": " << Describe(s);
    return response;
  }

  grpc::Status Link(const std::string& contact,
                    const std::vector<std::string>& identities,
                    tappa::v1::LinkIdentitiesResponse* response = nullptr) {
    tappa::v1::LinkIdentitiesRequest request;
    request.set_contact_id(contact);
    for (const auto& i : identities) request.add_identities(i);
    tappa::v1::LinkIdentitiesResponse ignored;
    grpc::ClientContext context;
    return journey_->LinkIdentities(&context, request,
                                    response ? response : &ignored);
  }

  // Every key in Redis.
  std::vector<std::string> Keys() {
    std::vector<std::string> keys;
    std::string cursor = "0";
    do {
      absl::StatusOr<SyncRedisReply> r =
          redis_->Command({"SCAN", cursor, "COUNT", "1000"});
      EXPECT_TRUE(r.ok());
      if (!r.ok()) break;
      cursor = r->elements[0].str;
      for (const auto& k : r->elements[1].elements) keys.push_back(k.str);
    } while (cursor != "0");
    return keys;
  }

  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
  std::unique_ptr<tappa::v1::JourneyService::Stub> journey_;
  int seq_ = 0;
};

TEST_F(IdentityE2eTest, AnUnknownAliasNamesAContactOfItsOwn) {
  EXPECT_EQ(Track("cookie:3f2a").contact_id(), "cookie:3f2a");
  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("cookie:3f2a", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "cookie:3f2a");
}

TEST_F(IdentityE2eTest, EveryLinkedAliasReachesTheContact) {
  Track("c-anna", "signup");
  tappa::v1::LinkIdentitiesResponse linked;
  grpc::Status s = Link("c-anna", {kEmail, "social:@anna", "crm:991"}, &linked);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(linked.contact_id(), "c-anna");
  EXPECT_THAT(linked.linked(), ElementsAre(kEmail, "social:@anna", "crm:991"));

  // Events by any alias count on the one contact.
  EXPECT_EQ(Track("social:@anna").contact_id(), "c-anna");
  EXPECT_EQ(Track(kEmail).contact_id(), "c-anna");
  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("crm:991", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "c-anna");
  EXPECT_THAT(contact.aliases(),
              ElementsAre("crm:991", kEmail, "social:@anna"));
  // Decisions by alias are made for the contact.
  tappa::v1::NextBestActionResponse decision;
  ASSERT_TRUE(
      client_->Nba(MakeNba("social:@anna", "web", "web.home_hero"), &decision)
          .ok());
  EXPECT_EQ(decision.contact_id(), "c-anna");
  // Linking by an alias of the contact works too, and is idempotent.
  tappa::v1::LinkIdentitiesResponse again;
  ASSERT_TRUE(Link("crm:991", {kEmail, "cookie:77"}, &again).ok());
  EXPECT_EQ(again.contact_id(), "c-anna");
  EXPECT_THAT(again.already_linked(), ElementsAre(kEmail));
  EXPECT_THAT(again.linked(), ElementsAre("cookie:77"));
}

TEST_F(IdentityE2eTest, AnotherContactsAliasOrProfileIsRefused) {
  ASSERT_TRUE(Link("c-anna", {kEmail}).ok());
  grpc::Status taken = Link("c-bruno", {kEmail});
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(taken.error_message(), HasSubstr("identities[0]"));
  EXPECT_THAT(taken.error_message(), HasSubstr("c-anna"));
  // A cookie with a profile of its own is a merge, not a link.
  Track("cookie:visitor");
  grpc::Status own = Link("c-anna", {"cookie:visitor"});
  EXPECT_EQ(own.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("c-bruno", &contact).error_code() ==
              grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(client_->Get("c-anna", &contact).error_code() ==
              grpc::StatusCode::NOT_FOUND);  // linked, but no event yet
}

TEST_F(IdentityE2eTest, AliasLimitsPerNamespaceAndPerContact) {
  std::vector<std::string> cookies;
  for (int i = 0; i < 10; ++i) cookies.push_back(absl::StrCat("cookie:", i));
  ASSERT_TRUE(Link("c-shared", cookies).ok());
  grpc::Status over = Link("c-shared", {"cookie:10"});
  EXPECT_EQ(over.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(over.error_message(), HasSubstr("cookie"));
  // Other namespaces still have room, up to 50 aliases in all.
  for (int i = 0; i < 40; ++i) {
    std::string ns = i < 10   ? "device"
                     : i < 20 ? "crm"
                     : i < 30 ? "social"
                              : "phone_sha256";
    std::string value = ns == "phone_sha256"
                            ? std::string(63, 'c') + absl::StrCat(i % 10)
                            : absl::StrCat(i);
    ASSERT_TRUE(Link("c-shared", {absl::StrCat(ns, ":", value)}).ok()) << i;
  }
  grpc::Status full = Link("c-shared", {kEmail});
  EXPECT_EQ(full.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(full.error_message(), HasSubstr("(50)"));
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr("tappa_identity_links_total{result=\"over_namespace_"
                        "limit\"} 1"));
  EXPECT_THAT(*metrics,
              HasSubstr("tappa_identity_links_total{result=\"over_contact_"
                        "limit\"} 1"));
}

TEST_F(IdentityE2eTest, MalformedAliasesAreInvalidArgumentNamingTheField) {
  grpc::Status raw = Link("c-anna", {"crm:1", "email_sha256:anna@example.com"});
  EXPECT_EQ(raw.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(raw.error_message(), HasSubstr("identities[1]"));
  EXPECT_THAT(raw.error_message(), HasSubstr("never the value itself"));
  EXPECT_EQ(Link("c-anna", {"shoe:42"}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Link("c-anna", {"cookie:"}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Link("c-anna", {}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  tappa::v1::TrackEventResponse response;
  grpc::Status event = client_->Track(
      MakeEvent("phone_sha256:+39 333 1234567", "e-x", "page_view", "web"),
      &response);
  EXPECT_EQ(event.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(event.error_message(), HasSubstr("contact_id"));
  // Nothing was linked by the refused calls.
  EXPECT_EQ(Track("crm:1").contact_id(), "crm:1");
}

TEST_F(IdentityE2eTest, ErasureByAliasLeavesNoKeyOfTheContactOrItsAliases) {
  Track("c-anna", "signup");
  ASSERT_TRUE(Link("c-anna", {kEmail, "social:@anna", "cookie:1"}).ok());
  Track("social:@anna");
  Track("c-other");  // stays
  tappa::v1::DeleteContactResponse erased;
  grpc::Status deleted = client_->Delete("social:@anna", &erased);
  ASSERT_TRUE(deleted.ok()) << Describe(deleted) << server_->Log();
  EXPECT_TRUE(erased.existed());
  for (const std::string& key : Keys()) {
    EXPECT_FALSE(absl::StrContains(key, "c-anna")) << key;
    EXPECT_FALSE(absl::StrContains(key, "@anna")) << key;
    EXPECT_FALSE(absl::StrContains(key, kEmail)) << key;
    EXPECT_FALSE(absl::StrContains(key, "cookie:1")) << key;
  }
  EXPECT_EQ(client_->Get(kEmail).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(client_->Get("c-other").ok());
  // The aliases are free again.
  ASSERT_TRUE(Link("c-bruno", {kEmail}).ok());
}

TEST_F(IdentityE2eTest,
       ALinkInterruptedBeforeItsRecordIsRepairedByLinkingAgain) {
  ASSERT_TRUE(Link("c-anna", {kOtherEmail}).ok());
  // Simulate a crash between the two writes of a link: the alias is in the
  // contact's set, its record is gone.
  std::string record;
  for (const std::string& key : Keys()) {
    if (absl::StrContains(key, ":a:" + kOtherEmail)) record = key;
  }
  ASSERT_FALSE(record.empty());
  ASSERT_TRUE(redis_->Command({"DEL", record}).ok());
  tappa::v1::LinkIdentitiesResponse again;
  ASSERT_TRUE(Link("c-anna", {kOtherEmail}, &again).ok());
  EXPECT_THAT(again.already_linked(), ElementsAre(kOtherEmail));
  absl::StatusOr<SyncRedisReply> owner = redis_->Command({"GET", record});
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(owner->str, "c-anna");
}

}  // namespace
}  // namespace tappa::testing
