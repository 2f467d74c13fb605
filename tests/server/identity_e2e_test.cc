// End-to-end tests of identities (issue 7, first part): aliases resolved on
// every request, LinkIdentities, limits, aliases in GetContact, erasure by
// alias. The real tappa-server against a private redis-server.
#include <fstream>
#include <sstream>
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

  tappa::v1::TrackEventResponse TrackProps(const std::string& contact,
                                           const std::string& type,
                                           const std::string& channel,
                                           const Properties& properties) {
    tappa::v1::TrackEventResponse response;
    grpc::Status s =
        client_->Track(MakeEvent(contact, absl::StrCat("e", ++seq_), type,
                                 channel, "", properties),
                       &response);
    EXPECT_TRUE(s.ok()) << contact << ": " << Describe(s);
    return response;
  }

  int64_t Counter(const tappa::v1::Contact& c, const std::string& id) {
    auto it = c.counters().find(id);
    return it == c.counters().end() ? 0 : it->second;
  }

  bool Consent(const tappa::v1::Contact& c, const std::string& channel,
               bool* given) {
    for (const auto& k : c.consents()) {
      if (k.channel() == channel) {
        *given = k.state() == tappa::v1::CONSENT_STATE_GRANTED;
        return true;
      }
    }
    return false;
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

TEST_F(IdentityE2eTest, AMergeOverTheAliasLimitIsRefusedAndChangesNothing) {
  std::vector<std::string> a, b;
  for (int i = 0; i < 10; ++i) {
    a.push_back(absl::StrCat("crm:a", i));
    a.push_back(absl::StrCat("device:a", i));
    a.push_back(absl::StrCat("social:a", i));
    b.push_back(absl::StrCat("cookie:b", i));
    b.push_back(absl::StrCat("phone_sha256:", std::string(63, 'f'), i));
  }
  ASSERT_TRUE(Link("c-a", {a.begin(), a.begin() + 15}).ok());
  ASSERT_TRUE(Link("c-a", {a.begin() + 15, a.end()}).ok());
  ASSERT_TRUE(Link("c-b", b).ok());
  Track("c-b");
  grpc::Status refused = Link("c-a", {"cookie:b0"});
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("identities[0]"));
  EXPECT_THAT(refused.error_message(), HasSubstr("(50)"));
  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("cookie:b0", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "c-b");
  EXPECT_EQ(contact.aliases_size(), 20);
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

TEST_F(IdentityE2eTest, TheWorkedJourneyEndsAsOneContactInAdvocacy) {
  const std::string kAnnaEmail = "email_sha256:" + std::string(64, 'e');
  // The reel on Instagram: a stranger known by her handle.
  TrackProps("social:@anna", "reel_view", "social", {});
  // The website: an anonymous cookie reads reviews, adds to cart, buys.
  TrackProps("cookie:abc", "review_read", "web", {});
  TrackProps("cookie:abc", "cart_add", "web", {});
  TrackProps("cookie:abc", "purchase", "web", {});
  // Checkout gives her email: linked to the cookie's contact.
  tappa::v1::LinkIdentitiesResponse at_checkout;
  ASSERT_TRUE(Link("cookie:abc", {kAnnaEmail}, &at_checkout).ok());
  EXPECT_TRUE(at_checkout.merged_contacts().empty());
  TrackProps(kAnnaEmail, "newsletter_subscribe", "email", {});
  // She logs into the app with Instagram: the handle's profile is hers.
  tappa::v1::LinkIdentitiesResponse login;
  grpc::Status s = Link(kAnnaEmail, {"social:@anna"}, &login);
  ASSERT_TRUE(s.ok()) << Describe(s) << server_->Log();
  EXPECT_EQ(login.contact_id(), "cookie:abc");
  EXPECT_THAT(login.merged_contacts(), ElementsAre("social:@anna"));
  EXPECT_THAT(login.linked(), ElementsAre("social:@anna"));
  // She shares a tagged photo: advocacy, on the one contact.
  tappa::v1::TrackEventResponse share = TrackProps(
      "social:@anna", "ugc_share", "social", {{"brand_tagged", true}});
  EXPECT_EQ(share.contact_id(), "cookie:abc");
  EXPECT_EQ(share.phase(), "advocacy");

  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("social:@anna", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "cookie:abc");
  EXPECT_EQ(contact.phase(), "advocacy");
  EXPECT_THAT(contact.aliases(), ElementsAre(kAnnaEmail, "social:@anna"));
  EXPECT_EQ(Counter(contact, "social_views_30d"), 1);
  EXPECT_EQ(Counter(contact, "purchases"), 1);
  EXPECT_EQ(Counter(contact, "tagged_shares"), 1);
  // The whole history, newest first, in order of time.
  std::vector<std::string> phases;
  for (int i = 0; i < contact.phase_history_size(); ++i) {
    phases.push_back(contact.phase_history(i).phase());
    if (i > 0) {
      EXPECT_LE(
          contact.phase_history(i).change_time().seconds() * 1000 +
              contact.phase_history(i).change_time().nanos() / 1000000,
          contact.phase_history(i - 1).change_time().seconds() * 1000 +
              contact.phase_history(i - 1).change_time().nanos() / 1000000);
    }
  }
  // The cookie's first event (a review read) created it straight into
  // consideration; the awareness entry is the handle's, from the reel.
  EXPECT_THAT(phases, ElementsAre("advocacy", "retention", "conversion",
                                  "consideration", "awareness"));
  EXPECT_EQ(contact.phase_history(4).event_type(), "reel_view");
  EXPECT_EQ(contact.phase_history(4).channel(), "social");
  // Nothing of the handle's own profile is left but its tombstone.
  for (const std::string& key : Keys()) {
    if (absl::StrContains(key, ":c:social:@anna")) {
      absl::StatusOr<SyncRedisReply> fields = redis_->Command({"HKEYS", key});
      ASSERT_TRUE(fields.ok());
      EXPECT_EQ(fields->elements.size(), 2u) << key;
    } else {
      EXPECT_FALSE(absl::StrContains(key, ":h:social:@anna")) << key;
      EXPECT_FALSE(absl::StrContains(key, ":m:")) << key;
    }
  }
}

TEST_F(IdentityE2eTest, MergeOfTwoRichProfilesFieldByField) {
  // The other profile wrote a tier first...
  ASSERT_TRUE(Link("c-web", {"cookie:w1", "device:d1"}).ok());
  TrackProps("cookie:w1", "identify", "web", {{"tier", std::string("silver")}});
  // The survivor: consent to email given, one product view, a CRM tier
  // written after the other's.
  TrackProps("c-anna", "consent", "web", {{"email", true}, {"sms", true}});
  TrackProps("c-anna", "product_view", "web", {});
  TrackProps("c-anna", "identify", "web", {{"tier", std::string("gold")}});
  // ...and is active later: withdrew email, two product views, a purchase.
  TrackProps("cookie:w1", "consent", "web", {{"email", false}});
  TrackProps("cookie:w1", "product_view", "web", {});
  TrackProps("device:d1", "product_view", "app", {});
  TrackProps("cookie:w1", "identify", "web", {{"city", std::string("Rome")}});
  TrackProps("cookie:w1", "purchase", "web", {});

  tappa::v1::LinkIdentitiesResponse merged;
  grpc::Status s = Link("c-anna", {"cookie:w1"}, &merged);
  ASSERT_TRUE(s.ok()) << Describe(s) << server_->Log();
  EXPECT_THAT(merged.merged_contacts(), ElementsAre("c-web"));

  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("c-anna", &contact).ok());
  EXPECT_EQ(Counter(contact, "product_view_7d"), 3);
  EXPECT_EQ(Counter(contact, "purchases"), 1);
  EXPECT_EQ(contact.phase(), "conversion");  // the furthest of the two
  bool given = true;
  ASSERT_TRUE(Consent(contact, "email", &given));
  EXPECT_FALSE(given);  // a withdrawal survives the merge
  ASSERT_TRUE(Consent(contact, "sms", &given));
  EXPECT_TRUE(given);
  // The more recent write wins, though the other profile was active later.
  EXPECT_EQ(contact.attributes().at("tier").string_value(), "gold");
  EXPECT_EQ(contact.attributes().at("city").string_value(), "Rome");
  EXPECT_THAT(contact.aliases(),
              ElementsAre("c-web", "cookie:w1", "device:d1"));
  // Every former name reaches the survivor, and counts there once.
  for (std::string name : {"c-web", "cookie:w1", "device:d1"}) {
    EXPECT_EQ(Track(name, "product_view").contact_id(), "c-anna") << name;
    tappa::v1::Contact by_name;
    ASSERT_TRUE(client_->Get(name, &by_name).ok()) << name;
    EXPECT_EQ(by_name.contact_id(), "c-anna");
  }
  ASSERT_TRUE(client_->Get("c-anna", &contact).ok());
  EXPECT_EQ(Counter(contact, "product_view_7d"), 6);
  // Linking again changes nothing (no second merge).
  tappa::v1::LinkIdentitiesResponse again;
  ASSERT_TRUE(Link("c-anna", {"cookie:w1"}, &again).ok());
  EXPECT_TRUE(again.merged_contacts().empty());
  ASSERT_TRUE(client_->Get("c-anna", &contact).ok());
  EXPECT_EQ(Counter(contact, "product_view_7d"), 6);
  // Erasing the survivor by a former name erases everything.
  tappa::v1::DeleteContactResponse erased;
  ASSERT_TRUE(client_->Delete("device:d1", &erased).ok());
  for (const std::string& key : Keys()) {
    EXPECT_FALSE(absl::StrContains(key, "c-anna")) << key;
    EXPECT_FALSE(absl::StrContains(key, "c-web")) << key;
    EXPECT_FALSE(absl::StrContains(key, "cookie:w1")) << key;
    EXPECT_FALSE(absl::StrContains(key, "device:d1")) << key;
  }
}

// A server killed right after each step of a merge leaves a state another
// server finishes: the final profile is the same as an uninterrupted
// merge's, and an event sent for the absorbed contact meanwhile counts once.
TEST_F(IdentityE2eTest, AMergeKilledAtEachStepIsFinishedByTheNextServer) {
  for (int step = 1; step <= 3; ++step) {
    SCOPED_TRACE(absl::StrCat("crash after step ", step));
    ASSERT_TRUE(redis_->Command({"FLUSHALL"}).ok());
    ServerProcess::Options crashing;
    crashing.redis_url = redis_->url();
    crashing.extra_flags = {
        absl::StrCat("--test_merge_crash_after_step=", step),
        "--merge_sweep_every=1h"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> doomed =
        ServerProcess::Start(crashing);
    ASSERT_TRUE(doomed.ok()) << doomed.status();
    TappaClient doomed_client((*doomed)->channel());
    auto track = [&](TappaClient& c, const std::string& id,
                     const std::string& event) {
      tappa::v1::TrackEventResponse r;
      grpc::Status s = c.Track(MakeEvent(id, event, "product_view", "web"), &r);
      EXPECT_TRUE(s.ok()) << Describe(s);
      return r;
    };
    track(doomed_client, "c-a", "a1");
    track(doomed_client, "cookie:b", "b1");
    track(doomed_client, "cookie:b", "b2");
    {
      auto stub = tappa::v1::JourneyService::NewStub((*doomed)->channel());
      tappa::v1::LinkIdentitiesRequest request;
      request.set_contact_id("c-a");
      request.add_identities("cookie:b");
      tappa::v1::LinkIdentitiesResponse response;
      grpc::ClientContext context;
      EXPECT_FALSE(stub->LinkIdentities(&context, request, &response).ok());
    }
    ASSERT_TRUE(
        PollUntil([&] { return !(*doomed)->running(); }, absl::Seconds(10)));

    // The next server: first an event for the absorbed contact while the
    // merge is still unfinished, then the sweep finishes it.
    ServerProcess::Options next;
    next.redis_url = redis_->url();
    next.extra_flags = {"--merge_sweep_every=200ms", "--merge_stall=0s"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(next);
    ASSERT_TRUE(server.ok()) << server.status();
    TappaClient c((*server)->channel());
    track(c, "cookie:b", "b3");
    // A retry of an event the absorbed contact already counted.
    EXPECT_TRUE(track(c, "cookie:b", "b1").duplicate());
    ASSERT_TRUE(PollUntil(
        [&] {
          for (const std::string& key : Keys()) {
            if (absl::StrContains(key, ":m:")) return false;
          }
          return true;
        },
        absl::Seconds(20)))
        << (*server)->Log();
    tappa::v1::Contact contact;
    ASSERT_TRUE(c.Get("c-a", &contact).ok());
    EXPECT_EQ(Counter(contact, "product_view_7d"), 4);  // a1 b1 b2 b3
    EXPECT_THAT(contact.aliases(), ElementsAre("cookie:b"));
    tappa::v1::Contact by_alias;
    ASSERT_TRUE(c.Get("cookie:b", &by_alias).ok());
    EXPECT_EQ(by_alias.contact_id(), "c-a");
  }
}

TEST_F(IdentityE2eTest, ExportByAliasHoldsEverythingStoredAndIsAudited) {
  TrackProps("c-anna", "consent", "web", {{"email", true}});
  TrackProps("c-anna", "identify", "web", {{"tier", std::string("gold")}});
  TrackProps("c-anna", "purchase", "web", {});
  ASSERT_TRUE(Link("c-anna", {kEmail, "social:@anna"}).ok());
  tappa::v1::ExportContactRequest request;
  request.set_contact_id("social:@anna");
  tappa::v1::ExportContactResponse exported;
  grpc::ClientContext context;
  grpc::Status s = journey_->ExportContact(&context, request, &exported);
  ASSERT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(exported.contact().contact_id(), "c-anna");
  EXPECT_THAT(exported.contact().aliases(),
              ElementsAre(kEmail, "social:@anna"));
  EXPECT_EQ(Counter(exported.contact(), "purchases"), 1);
  EXPECT_EQ(exported.contact().attributes().at("tier").string_value(), "gold");
  const auto& stored = exported.stored().fields();
  const auto& hash = stored.at("contact").struct_value().fields();
  EXPECT_EQ(hash.at("k:email").string_value(), "1");
  EXPECT_TRUE(hash.contains("n:purchases"));
  // The records of the three events' ids are part of what is kept (their
  // binary names in hex).
  int event_records = 0;
  for (const auto& [field, value] : hash) {
    if (absl::StartsWith(field, "hex:653a")) ++event_records;  // "e:"
  }
  EXPECT_EQ(event_records, 3);
  EXPECT_FALSE(stored.at("history").string_value().empty());
  EXPECT_EQ(stored.at("aliases").list_value().values_size(), 2);
  EXPECT_TRUE(PollUntil(
      [&] {
        return absl::StrContains(server_->Log(), "\"audit\":\"ExportContact\"");
      },
      absl::Seconds(5)));
  // An unknown contact is NOT_FOUND.
  request.set_contact_id("nobody");
  grpc::ClientContext again;
  EXPECT_EQ(journey_->ExportContact(&again, request, &exported).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(IdentityE2eTest, TappactlLinksAndExports) {
  Track("c-anna", "signup");
  auto run = [&](const std::string& args) {
    std::string cmd = absl::StrCat(TAPPACTL_PATH, " ", args, " --server ",
                                   server_->grpc_address(), " 2>&1");
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while (p != nullptr && (n = fread(buf, 1, sizeof buf, p)) > 0) {
      out.append(buf, n);
    }
    if (p != nullptr) pclose(p);
    return out;
  };
  EXPECT_THAT(run("link c-anna social:@anna crm:7"),
              HasSubstr(R"("linked":["social:@anna","crm:7"])"));
  std::string exported = run("export crm:7");
  EXPECT_THAT(exported, HasSubstr(R"("contact_id":"c-anna")"));
  EXPECT_THAT(exported, HasSubstr(R"("aliases":["crm:7","social:@anna"])"));
  EXPECT_THAT(exported, HasSubstr(R"("stored":{)"));
}

TEST_F(IdentityE2eTest, IdentifyEventsLinkWhatTheRulesetAutoLinks) {
  // The retail ruleset with an identity section: a loyalty card namespace
  // that identify events may link, cookies they may not.
  std::ifstream in(SourceDir() + "/rules/examples/retail.yaml");
  std::stringstream text;
  text << in.rdbuf();
  TempDir dir("tappa-identity-rules");
  const std::string rules = dir.path() + "/rules.yaml";
  {
    std::ofstream out(rules);
    out << text.str()
        << "\nidentity:\n  namespaces: [loyalty]\n"
           "  auto_link: [loyalty, email_sha256]\n";
  }
  ServerProcess::Options options;
  options.redis_url = redis_->url();
  options.rules_path = rules;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  TappaClient client((*server)->channel());

  // A loyalty card used in a store before any website visit: a contact of
  // its own.
  tappa::v1::TrackEventResponse r;
  ASSERT_TRUE(
      client.Track(MakeEvent("loyalty:L-77", "s1", "purchase", "store"), &r)
          .ok());
  EXPECT_EQ(r.contact_id(), "loyalty:L-77");
  // The website visitor identifies with the card and an email: linked, and
  // the card's profile merged into the visitor's.
  ASSERT_TRUE(
      client.Track(MakeEvent("cookie:v", "w1", "page_view", "web"), &r).ok());
  tappa::v1::TrackEventRequest identify =
      MakeEvent("cookie:v", "w2", "identify", "web");
  identify.add_identities("loyalty:L-77");
  identify.add_identities(kEmail);
  grpc::Status s = client.Track(identify, &r);
  ASSERT_TRUE(s.ok()) << Describe(s) << (*server)->Log();
  tappa::v1::Contact contact;
  ASSERT_TRUE(client.Get("loyalty:L-77", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "cookie:v");
  EXPECT_THAT(contact.aliases(), ElementsAre(kEmail, "loyalty:L-77"));
  EXPECT_EQ(Counter(contact, "purchases"), 1);
  EXPECT_EQ(contact.phase(), "conversion");
  // Cookies are linked only by LinkIdentities; other event types carry no
  // identities; a namespace the ruleset lacks is malformed.
  tappa::v1::TrackEventRequest cookie =
      MakeEvent("cookie:v", "w3", "identify", "web");
  cookie.add_identities("cookie:other");
  grpc::Status refused = client.Track(cookie, &r);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(refused.error_message(), HasSubstr("identities[0]"));
  EXPECT_THAT(refused.error_message(), HasSubstr("auto_link"));
  tappa::v1::TrackEventRequest view =
      MakeEvent("cookie:v", "w4", "page_view", "web");
  view.add_identities(kEmail);
  EXPECT_EQ(client.Track(view, &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // A server whose ruleset lacks the namespace reads "loyalty:L-77" as a
  // plain id, and still reaches the person through the merged profile's
  // tombstone.
  EXPECT_EQ(Track("loyalty:L-77").contact_id(), "cookie:v");
}

TEST_F(IdentityE2eTest, IdentifyEventsInABatchLinkToo) {
  tappa::v1::TrackEventsRequest batch;
  *batch.add_requests() = MakeEvent("c-batch", "b1", "page_view", "web");
  tappa::v1::TrackEventRequest identify =
      MakeEvent("c-batch", "b2", "identify", "web");
  identify.add_identities("crm:9");
  *batch.add_requests() = identify;
  tappa::v1::TrackEventRequest refused =
      MakeEvent("c-batch", "b3", "identify", "web");
  refused.add_identities("cookie:9");  // not auto-linked by default
  *batch.add_requests() = refused;
  tappa::v1::TrackEventsResponse results;
  ASSERT_TRUE(client_->TrackBatch(batch, &results).ok());
  ASSERT_EQ(results.results_size(), 3);
  EXPECT_TRUE(results.results(1).has_response());
  EXPECT_EQ(results.results(2).error().code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(results.results(2).error().field(), "identities[0]");
  tappa::v1::Contact contact;
  ASSERT_TRUE(client_->Get("crm:9", &contact).ok());
  EXPECT_EQ(contact.contact_id(), "c-batch");
  EXPECT_THAT(contact.aliases(), ElementsAre("crm:9"));
}

}  // namespace
}  // namespace tappa::testing
