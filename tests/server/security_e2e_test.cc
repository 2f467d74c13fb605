// End-to-end tests of operating safely (issue 8): API keys and scopes over
// every RPC, TLS and mutual TLS with certificates this test makes (openssl),
// certificate and key reloads on SIGHUP, per-key and per-contact rate limits
// under concurrent clients, start-up refusals, and the audit log. The real
// tappa-server against a private redis-server.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/auth/api_keys.h"
#include "tappa/v1/admin_service.grpc.pb.h"
#include "tappa/v1/decision_service.grpc.pb.h"
#include "tappa/v1/followup_service.grpc.pb.h"
#include "tappa/v1/journey_service.grpc.pb.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0);
}

// One key per scope, and one with every scope. Keys are long enough
// (>= 16 characters) and unique.
const std::map<std::string, std::string>& KeysByScope() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"track", "tpk_test_track_0123456789"},
      {"decide", "tpk_test_decide_0123456789"},
      {"followups", "tpk_test_followups_0123456789"},
      {"read_contact", "tpk_test_read_contact_0123456789"},
      {"erase", "tpk_test_erase_0123456789"},
      {"admin", "tpk_test_admin_0123456789"},
  };
  return *keys;
}
constexpr char kAllKey[] = "tpk_test_all_scopes_0123456789";

std::string KeysYaml(const std::string& extra = "") {
  std::string yaml = "keys:\n";
  for (const auto& [scope, key] : KeysByScope()) {
    absl::StrAppend(&yaml, "  - name: only-", scope,
                    "\n    sha256: ", server::HashApiKey(key),
                    "\n    scopes: [", scope, "]\n");
  }
  absl::StrAppend(
      &yaml, "  - name: everything\n    sha256: ", server::HashApiKey(kAllKey),
      "\n    scopes: [track, decide, followups, read_contact, "
      "erase, admin]\n",
      extra);
  return yaml;
}

void AddKey(grpc::ClientContext* context, const std::string& key) {
  if (!key.empty()) context->AddMetadata("authorization", "Bearer " + key);
}

// The retry delay in a status's google.rpc.Status details, or -1.
int64_t RetryDelayMillis(const grpc::Status& status) {
  google::protobuf::UnknownFieldSet fields;
  if (!fields.ParseFromString(status.error_details())) return -1;
  for (int i = 0; i < fields.field_count(); ++i) {
    const auto& field = fields.field(i);
    if (field.number() != 3 ||
        field.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      continue;
    }
    google::protobuf::Any any;
    if (!any.ParseFromString(field.length_delimited()) ||
        any.type_url() != "type.googleapis.com/google.rpc.RetryInfo") {
      continue;
    }
    google::protobuf::UnknownFieldSet retry_info;
    if (!retry_info.ParseFromString(any.value()) ||
        retry_info.field_count() != 1) {
      return -1;
    }
    google::protobuf::Duration delay;
    if (!delay.ParseFromString(retry_info.field(0).length_delimited())) {
      return -1;
    }
    return delay.seconds() * 1000 + delay.nanos() / 1'000'000;
  }
  return -1;
}

// Calls `method` ("/tappa.v1.X/Y") with `key` and a minimal request; the
// status tells whether authorization let it through (anything but
// UNAUTHENTICATED and PERMISSION_DENIED: it then failed or succeeded on its
// own merits).
grpc::Status CallWithKey(const std::shared_ptr<grpc::Channel>& channel,
                         const std::string& method, const std::string& key) {
  grpc::ClientContext context;
  AddKey(&context, key);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(2000));
  if (method == "/tappa.v1.FollowUpService/SubscribeFollowUps") {
    // An authorized subscription streams until the deadline.
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(300));
    auto stub = tappa::v1::FollowUpService::NewStub(channel);
    tappa::v1::SubscribeFollowUpsRequest request;
    request.set_group("g");
    request.set_consumer("c");
    auto reader = stub->SubscribeFollowUps(&context, request);
    tappa::v1::SubscribeFollowUpsResponse response;
    while (reader->Read(&response)) {
    }
    return reader->Finish();
  }
  if (method == "/tappa.v1.DecisionService/DecideBatch") {
    auto stub = tappa::v1::DecisionService::NewStub(channel);
    auto stream = stub->DecideBatch(&context);
    tappa::v1::DecideBatchRequest request;
    request.set_request_id("r1");
    request.set_contact_id("c-auth");
    request.set_channel("web");
    request.set_placement("web.hero");
    stream->Write(request);
    stream->WritesDone();
    tappa::v1::DecideBatchResponse response;
    while (stream->Read(&response)) {
    }
    return stream->Finish();
  }
  // Unary: an empty request (validation may refuse it; auth comes first).
  grpc::GenericStub stub(channel);
  grpc::ByteBuffer response;
  grpc::Slice slice("", 0);
  grpc::ByteBuffer request(&slice, 1);
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

// Runs tappactl with `env` (e.g. "TAPPA_API_KEY=...") and `args`; yields
// the exit code and what it printed (stdout and stderr).
std::pair<int, std::string> RunTappactl(const std::string& env,
                                        const std::string& args) {
  std::string cmd =
      absl::StrCat("env ", env, " ", TAPPACTL_PATH, " ", args, " 2>&1");
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

bool Refused(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
}

class SecurityE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    keys_path_ = dir_.path() + "/keys.yaml";
    WriteFile(keys_path_, KeysYaml());
  }

  // Starts the server with the keys file and `flags`.
  void StartServer(
      std::vector<std::string> flags = {},
      std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr) {
    ServerProcess::Options options;
    options.rules_path =
        absl::StrCat(TAPPA_SOURCE_DIR, "/tests/server/testdata/followups.yaml");
    options.redis_url = redis_->url();
    options.extra_flags = std::move(flags);
    options.extra_flags.push_back("--api_keys_file=" + keys_path_);
    options.channel_credentials = std::move(credentials);
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  TempDir dir_{"tappa-security-test"};
  std::string keys_path_;
  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
};

// The scope each RPC requires: the table every method of every tappa.v1
// service must be in (checked against the services' descriptors, so a new
// RPC without a scope fails here).
const std::map<std::string, std::string>& ScopeOfMethod() {
  static const auto* table = new std::map<std::string, std::string>{
      {"/tappa.v1.JourneyService/TrackEvent", "track"},
      {"/tappa.v1.JourneyService/TrackEvents", "track"},
      {"/tappa.v1.JourneyService/GetContact", "read_contact"},
      {"/tappa.v1.JourneyService/DeleteContact", "erase"},
      {"/tappa.v1.JourneyService/LinkIdentities", "track"},
      {"/tappa.v1.JourneyService/ExportContact", "read_contact"},
      {"/tappa.v1.DecisionService/NextBestAction", "decide"},
      {"/tappa.v1.DecisionService/ReportOutcome", "decide"},
      {"/tappa.v1.DecisionService/Simulate", "decide"},
      {"/tappa.v1.DecisionService/DecideBatch", "decide"},
      {"/tappa.v1.FollowUpService/SubscribeFollowUps", "followups"},
      {"/tappa.v1.FollowUpService/AckFollowUp", "followups"},
      {"/tappa.v1.AdminService/ReloadRuleset", "admin"},
      {"/tappa.v1.AdminService/GetRuleset", "admin"},
  };
  return *table;
}

TEST_F(SecurityE2eTest, TheScopeTableCoversEveryRpc) {
  std::vector<std::string> methods;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name :
       {"tappa.v1.JourneyService", "tappa.v1.DecisionService",
        "tappa.v1.FollowUpService", "tappa.v1.AdminService"}) {
    const google::protobuf::ServiceDescriptor* service =
        pool->FindServiceByName(name);
    ASSERT_NE(service, nullptr) << name;
    ASSERT_EQ(service->file()->service_count(), 1)
        << service->file()->name() << " declares another service: add it";
    for (int i = 0; i < service->method_count(); ++i) {
      methods.push_back(absl::StrCat("/", service->full_name(), "/",
                                     service->method(i)->name()));
    }
  }
  for (const std::string& m : methods) {
    EXPECT_TRUE(ScopeOfMethod().contains(m)) << m << " has no scope here";
  }
  EXPECT_EQ(methods.size(), ScopeOfMethod().size());
}

TEST_F(SecurityE2eTest, EachScopeAgainstEachMethod) {
  StartServer();
  auto channel = server_->channel();
  const std::string& any_key = KeysByScope().begin()->second;
  for (const auto& [method, scope] : ScopeOfMethod()) {
    SCOPED_TRACE(method);
    grpc::Status none = CallWithKey(channel, method, "");
    EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << Describe(none);
    grpc::Status unknown =
        CallWithKey(channel, method, "tpk_not_a_key_of_this_server");
    EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    // Forged: a listed key with its last character changed; truncated: a
    // listed key without its last character.
    std::string forged = KeysByScope().at(scope);
    forged.back() = forged.back() == 'x' ? 'y' : 'x';
    EXPECT_EQ(CallWithKey(channel, method, forged).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    std::string truncated = KeysByScope().at(scope);
    truncated.pop_back();
    EXPECT_EQ(CallWithKey(channel, method, truncated).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    for (const auto& [key_scope, key] : KeysByScope()) {
      grpc::Status s = CallWithKey(channel, method, key);
      if (key_scope == scope) {
        EXPECT_FALSE(Refused(s))
            << "scope " << key_scope << ": " << Describe(s);
      } else {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << "scope " << key_scope << ": " << Describe(s);
        EXPECT_THAT(s.error_message(), HasSubstr(scope));
      }
    }
    EXPECT_FALSE(Refused(CallWithKey(channel, method, kAllKey)));
  }
  (void)any_key;
  // The keys themselves never reach the log.
  std::string log = server_->Log();
  for (const auto& [scope, key] : KeysByScope()) {
    EXPECT_THAT(log, ::testing::Not(HasSubstr(key)));
  }
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr("tappa_auth_rejected_total{reason=\"scope\"}"));
}

TEST_F(SecurityE2eTest, TappactlTakesItsKeyFromTheEnvironment) {
  StartServer();
  const std::string args =
      absl::StrCat("contact nobody --server ", server_->grpc_address());
  auto [no_key, no_key_out] = RunTappactl("", args);
  EXPECT_EQ(no_key, 1);
  EXPECT_THAT(no_key_out, HasSubstr("16 this server requires an API key"));
  auto [keyed, keyed_out] = RunTappactl(
      absl::StrCat("TAPPA_API_KEY=", KeysByScope().at("read_contact")), args);
  EXPECT_EQ(keyed, 1);
  EXPECT_THAT(keyed_out, HasSubstr("5 contact_id: no such contact"));
}

TEST_F(SecurityE2eTest, KeysReloadOnSighupAndABrokenFileKeepsTheOldOnes) {
  StartServer();
  auto channel = server_->channel();
  const std::string method = "/tappa.v1.AdminService/GetRuleset";
  const std::string new_key = "tpk_added_later_0123456789";
  EXPECT_EQ(CallWithKey(channel, method, new_key).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  WriteFile(keys_path_, KeysYaml(absl::StrCat("  - name: later\n    sha256: ",
                                              server::HashApiKey(new_key),
                                              "\n    scopes: [admin]\n")));
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(
      PollUntil([&] { return CallWithKey(channel, method, new_key).ok(); },
                absl::Seconds(10)));
  // A broken file: the server keeps the keys it has.
  WriteFile(keys_path_, "keys:\n  - name: Bad Name\n    scopes: [nope]\n");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(PollUntil(
      [&] { return absl::StrContains(server_->Log(), "API keys kept"); },
      absl::Seconds(10)))
      << server_->Log();
  EXPECT_THAT(server_->Log(), HasSubstr("keys.yaml:2:"));
  EXPECT_TRUE(CallWithKey(channel, method, new_key).ok());
  EXPECT_TRUE(CallWithKey(channel, method, kAllKey).ok());
}

TEST_F(SecurityE2eTest, BeyondLoopbackNeedsKeysOrTheLoudInsecureFlag) {
  ServerProcess::Options options;
  options.redis_url = redis_->url();
  options.listen_host = "0.0.0.0";
  absl::StatusOr<std::unique_ptr<ServerProcess>> refused =
      ServerProcess::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("--api_keys_file"));

  options.extra_flags = {"--insecure_allow_unauthenticated"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> open =
      ServerProcess::Start(options);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_THAT((*open)->Log(), HasSubstr("WITHOUT AUTHENTICATION"));
  TappaClient client((*open)->channel());
  EXPECT_TRUE(client.Get("nobody").error_code() == grpc::StatusCode::NOT_FOUND);

  // With keys, beyond loopback is fine (and warns about plaintext).
  options.extra_flags = {"--api_keys_file=" + keys_path_};
  absl::StatusOr<std::unique_ptr<ServerProcess>> keyed =
      ServerProcess::Start(options);
  ASSERT_TRUE(keyed.ok()) << keyed.status();
  EXPECT_THAT((*keyed)->Log(), HasSubstr("without TLS"));
}

TEST_F(SecurityE2eTest, PerKeyRateLimitHoldsUnderEightClients) {
  WriteFile(keys_path_,
            KeysYaml(absl::StrCat("  - name: limited\n    sha256: ",
                                  server::HashApiKey("tpk_limited_0123456789"),
                                  "\n    scopes: [decide]\n"
                                  "    requests_per_second: 20\n"
                                  "    burst: 20\n")));
  StartServer();
  std::atomic<int> ok{0}, limited{0}, other{0}, bad_hint{0};
  absl::Time start = absl::Now();
  absl::Time stop = start + absl::Seconds(1);
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto stub = tappa::v1::DecisionService::NewStub(server_->NewChannel());
      for (int i = 0; absl::Now() < stop; ++i) {
        grpc::ClientContext context;
        AddKey(&context, "tpk_limited_0123456789");
        tappa::v1::NextBestActionRequest request =
            MakeNba(absl::StrCat("c-", t, "-", i), "web", "web.hero");
        tappa::v1::NextBestActionResponse response;
        grpc::Status s = stub->NextBestAction(&context, request, &response);
        if (s.ok()) {
          ++ok;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++limited;
          int64_t delay = RetryDelayMillis(s);
          if (delay < 1 || delay > 1000) ++bad_hint;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_GE(ok.load(), 20);  // the burst
  EXPECT_LE(ok.load(), 20 + 20 * elapsed + 1);
  EXPECT_GT(limited.load(), 0);
  EXPECT_EQ(bad_hint.load(), 0);
  EXPECT_EQ(other.load(), 0);
  // Another key is not limited by this one's rate.
  grpc::Status s = CallWithKey(server_->channel(),
                               "/tappa.v1.AdminService/GetRuleset", kAllKey);
  EXPECT_TRUE(s.ok()) << Describe(s);
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(
      *metrics,
      HasSubstr("tappa_rate_limited_total{key=\"limited\",limit=\"key\"}"));
}

TEST_F(SecurityE2eTest, PerContactEventRateHoldsUnderEightClients) {
  StartServer({"--contact_events_per_second=10", "--contact_event_burst=10"});
  std::atomic<int> ok{0}, limited{0}, aborted{0}, other{0}, bad_hint{0};
  // Each client's connection is up before the clock starts: on a loaded
  // machine a first connection attempt can fail, and the calls made during
  // its reconnection backoff fail at once (UNAVAILABLE), which is not what
  // this test is about.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int t = 0; t < 8; ++t) {
    channels.push_back(server_->NewChannel());
    ASSERT_TRUE(channels.back()->WaitForConnected(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20))));
  }
  absl::Mutex other_mu;
  std::string first_other;
  absl::Time start = absl::Now();
  absl::Time stop = start + absl::Seconds(1);
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto stub = tappa::v1::JourneyService::NewStub(channels[t]);
      for (int i = 0; absl::Now() < stop; ++i) {
        grpc::ClientContext context;
        AddKey(&context, kAllKey);
        tappa::v1::TrackEventRequest request;
        request.set_event_id(absl::StrCat("e-", t, "-", i));
        request.set_contact_id("c-hot");
        request.set_type("page_view");
        request.set_channel("web");
        tappa::v1::TrackEventResponse response;
        grpc::Status s = stub->TrackEvent(&context, request, &response);
        if (s.ok()) {
          ++ok;
        } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
          ++limited;
          int64_t delay = RetryDelayMillis(s);
          if (delay < 1 || delay > 1000) ++bad_hint;
        } else if (s.error_code() == grpc::StatusCode::ABORTED) {
          ++aborted;
        } else {
          ++other;
          absl::MutexLock lock(&other_mu);
          if (first_other.empty()) first_other = Describe(s);
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_GE(ok.load(), 10);
  EXPECT_LE(ok.load(), 10 + 10 * elapsed + 1);
  EXPECT_GT(limited.load(), 0);
  EXPECT_EQ(bad_hint.load(), 0);
  EXPECT_EQ(other.load(), 0) << first_other;
  // Stored events match the accepted ones: a refused event changed nothing.
  TappaClient client(server_->channel());
  grpc::ClientContext context;
  AddKey(&context, kAllKey);
  tappa::v1::GetContactRequest get;
  get.set_contact_id("c-hot");
  tappa::v1::GetContactResponse contact;
  auto journey = tappa::v1::JourneyService::NewStub(server_->channel());
  ASSERT_TRUE(journey->GetContact(&context, get, &contact).ok());
  // Another contact is not limited by this one's rate.
  grpc::ClientContext other_context;
  AddKey(&other_context, kAllKey);
  tappa::v1::TrackEventRequest request;
  request.set_event_id("e-cold");
  request.set_contact_id("c-cold");
  request.set_type("page_view");
  request.set_channel("web");
  tappa::v1::TrackEventResponse response;
  grpc::Status s = journey->TrackEvent(&other_context, request, &response);
  EXPECT_TRUE(s.ok()) << Describe(s);
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("tappa_rate_limited_total{key=\"everything\","
                                  "limit=\"contact\"}"));
  EXPECT_THAT(*metrics, ::testing::Not(HasSubstr("c-hot")));
}

// Event `i` of a burst: a purchase of contact "c-burst", id "<prefix>-<i>".
tappa::v1::TrackEventRequest BurstEvent(const std::string& prefix, int i) {
  tappa::v1::TrackEventRequest request;
  request.set_event_id(absl::StrCat(prefix, "-", i));
  request.set_contact_id("c-burst");
  request.set_type("purchase");
  request.set_channel("web");
  return request;
}

// Sends `events` TrackEvents for contact "c-burst" at once (ids
// "<prefix>-<i>") with `deadline`, and returns their statuses in order. The
// events go over two connections: one carries at most 256 calls at once
// (the server's --max_concurrent_streams).
std::vector<grpc::Status> Burst(ServerProcess& server,
                                const std::string& prefix, int events,
                                absl::Duration deadline) {
  auto one = tappa::v1::JourneyService::NewStub(server.NewChannel());
  auto two = tappa::v1::JourneyService::NewStub(server.NewChannel());
  grpc::CompletionQueue cq;
  struct Call {
    grpc::ClientContext context;
    tappa::v1::TrackEventResponse response;
    grpc::Status status;
    std::unique_ptr<
        grpc::ClientAsyncResponseReader<tappa::v1::TrackEventResponse>>
        reader;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < events; ++i) {
    auto call = std::make_unique<Call>();
    AddKey(&call->context, kAllKey);
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    call->reader =
        (i % 2 == 0 ? one : two)
            ->AsyncTrackEvent(&call->context, BurstEvent(prefix, i), &cq);
    call->reader->Finish(&call->response, &call->status, call.get());
    calls.push_back(std::move(call));
  }
  for (int i = 0; i < events; ++i) {
    void* tag;
    bool ok;
    EXPECT_TRUE(cq.Next(&tag, &ok));
  }
  std::vector<grpc::Status> statuses;
  for (const auto& call : calls) statuses.push_back(call->status);
  return statuses;
}

// The contact's count of purchases (every burst event is one).
int64_t Purchases(tappa::v1::JourneyService::Stub& journey) {
  grpc::ClientContext context;
  AddKey(&context, kAllKey);
  tappa::v1::GetContactRequest get;
  get.set_contact_id("c-burst");
  tappa::v1::GetContactResponse contact;
  grpc::Status s = journey.GetContact(&context, get, &contact);
  EXPECT_TRUE(s.ok()) << Describe(s);
  auto it = contact.contact().counters().find("purchases");
  return it == contact.contact().counters().end() ? 0 : it->second;
}

// Sends the events of a burst again, one by one, and checks that exactly
// the ones refused before are new now: a refused event had changed nothing
// (for bursts within the 50 idempotency records a contact keeps).
void ExpectRefusedChangedNothing(tappa::v1::JourneyService::Stub& journey,
                                 const std::string& prefix,
                                 const std::vector<grpc::Status>& first) {
  for (size_t i = 0; i < first.size(); ++i) {
    grpc::ClientContext context;
    AddKey(&context, kAllKey);
    tappa::v1::TrackEventResponse response;
    grpc::Status s = journey.TrackEvent(
        &context, BurstEvent(prefix, static_cast<int>(i)), &response);
    ASSERT_TRUE(s.ok()) << Describe(s);
    EXPECT_EQ(response.duplicate(), first[i].ok()) << prefix << " " << i;
  }
}

// A contact's events are applied one at a time; at most 256 wait behind the
// one being applied (event_processor.h), the rest are refused at once with a
// retry delay and change nothing. Redis is paused so that a burst of 300
// events to one contact all arrive while the first is stuck in its read.
TEST_F(SecurityE2eTest, EventsBeyondAContactsQueueAreRefusedAndChangeNothing) {
  StartServer({"--contact_events_per_second=0"});
  auto journey = tappa::v1::JourneyService::NewStub(server_->channel());
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "1000", "ALL"}).ok());
  std::vector<grpc::Status> first =
      Burst(*server_, "burst", 300, absl::Seconds(20));
  int refused = 0;
  for (const grpc::Status& s : first) {
    if (s.ok()) continue;
    ++refused;
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << Describe(s);
    EXPECT_THAT(s.error_message(), HasSubstr("contact_id"));
    EXPECT_EQ(RetryDelayMillis(s), 100);
  }
  // The first one applied, 256 waiting behind it; every other one refused
  // (the burst is sent within the pause), and changed nothing.
  EXPECT_EQ(refused, 300 - 1 - 256);
  EXPECT_EQ(Purchases(*journey), 300 - refused);
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr("tappa_rate_limited_total{key=\"everything\","
                                  "limit=\"contact_queue\"} 43"));
}

// An event whose wait behind its contact's others would outlast its deadline
// is refused at once instead of queued to expire. Three events taking
// ~400 ms each (Redis paused) teach the server that an event holds its
// contact ~70 ms (a moving average over 16); then, with Redis paused again,
// of 40 events with a 1 s deadline only the first several are queued (an
// event is refused when twice the estimated wait exceeds its deadline).
TEST_F(SecurityE2eTest, EventsThatWouldWaitPastTheirDeadlineAreRefused) {
  // Without remembered contacts each event waits for the one before it to
  // be answered (with them, the burst's events are sent behind each other
  // and all land within the pause).
  StartServer({"--contact_events_per_second=0", "--recent_contacts=0"});
  auto journey = tappa::v1::JourneyService::NewStub(server_->channel());
  // The server learns how long an event waits per event ahead of it from
  // events that waited: here the second of each pair, 400 ms behind the
  // first while Redis is paused.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "400", "ALL"}).ok());
    std::vector<grpc::Status> slow =
        Burst(*server_, absl::StrCat("slow", i), 2, absl::Seconds(5));
    for (const grpc::Status& s : slow) ASSERT_TRUE(s.ok()) << Describe(s);
  }
  ASSERT_TRUE(redis_->Command({"CLIENT", "PAUSE", "300", "ALL"}).ok());
  std::vector<grpc::Status> first =
      Burst(*server_, "tight", 40, absl::Seconds(1));
  int ok = 0, refused = 0, other = 0;
  for (const grpc::Status& s : first) {
    if (s.ok()) {
      ++ok;
    } else if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      EXPECT_EQ(RetryDelayMillis(s), 100);
    } else {
      ++other;
      ADD_FAILURE() << Describe(s);
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(refused, 10);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(Purchases(*journey), 6 + ok);
  ExpectRefusedChangedNothing(*journey, "tight", first);
}

TEST_F(SecurityE2eTest, AuditLinesForErasuresAndAdminCallsWithoutData) {
  std::string audit_path = dir_.path() + "/audit.log";
  StartServer({"--audit_log=" + audit_path});
  auto channel = server_->channel();
  auto journey = tappa::v1::JourneyService::NewStub(channel);
  {
    grpc::ClientContext context;
    AddKey(&context, kAllKey);
    tappa::v1::TrackEventRequest request;
    request.set_event_id("e-1");
    request.set_contact_id("c-erase-me");
    request.set_type("signup");
    request.set_channel("web");
    (*request.mutable_properties())["email"].set_string_value(
        "secret@example.com");
    tappa::v1::TrackEventResponse response;
    ASSERT_TRUE(journey->TrackEvent(&context, request, &response).ok());
  }
  {
    grpc::ClientContext context;
    AddKey(&context, KeysByScope().at("erase"));
    tappa::v1::DeleteContactRequest request;
    request.set_contact_id("c-erase-me");
    tappa::v1::DeleteContactResponse response;
    ASSERT_TRUE(journey->DeleteContact(&context, request, &response).ok());
  }
  ASSERT_TRUE(CallWithKey(channel, "/tappa.v1.AdminService/ReloadRuleset",
                          KeysByScope().at("admin"))
                  .ok());
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(PollUntil(
      [&] { return absl::StrContains(ReadFile(audit_path), "SIGHUP"); },
      absl::Seconds(10)));

  std::vector<nlohmann::json> lines;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(audit_path), '\n', absl::SkipEmpty())) {
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << line;
    lines.push_back(parsed);
  }
  auto find = [&](const std::string& audit) -> const nlohmann::json* {
    for (const auto& l : lines) {
      if (l["audit"] == audit) return &l;
    }
    return nullptr;
  };
  const nlohmann::json* erased = find("DeleteContact");
  ASSERT_NE(erased, nullptr);
  EXPECT_EQ((*erased)["key"], "only-erase");
  EXPECT_EQ((*erased)["target"], "c-erase-me");
  EXPECT_EQ((*erased)["result"], "OK");
  EXPECT_TRUE((*erased)["time"].is_string());
  const nlohmann::json* reload = find("ReloadRuleset");
  ASSERT_NE(reload, nullptr);
  EXPECT_EQ((*reload)["key"], "only-admin");
  ASSERT_NE(find("SIGHUP ruleset"), nullptr);
  ASSERT_NE(find("SIGHUP api keys"), nullptr);
  std::string all = ReadFile(audit_path);
  EXPECT_THAT(all, ::testing::Not(HasSubstr("secret@example.com")));
  for (const auto& [scope, key] : KeysByScope()) {
    EXPECT_THAT(all, ::testing::Not(HasSubstr(key)));
  }
}

// ---- TLS ----

// A CA, and certificates it signs, made with the openssl command line.
class TestPki {
 public:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}

  void MakeCa(const std::string& name) {
    Run(
        absl::StrCat("openssl req -x509 -newkey ec -pkeyopt "
                     "ec_paramgen_curve:prime256v1 -nodes -keyout ",
                     Path(name + ".key"), " -out ", Path(name + ".pem"),
                     " -days 2 -subj /CN=", name));
  }

  // `name`.pem and `name`.key, signed by `ca`, for localhost and 127.0.0.1.
  void MakeLeaf(const std::string& name, const std::string& ca) {
    WriteFile(Path("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
    Run(
        absl::StrCat("openssl req -newkey ec -pkeyopt "
                     "ec_paramgen_curve:prime256v1 -nodes -keyout ",
                     Path(name + ".key"), " -out ", Path(name + ".csr"),
                     " -subj /CN=", name));
    Run(absl::StrCat("openssl x509 -req -in ", Path(name + ".csr"), " -CA ",
                     Path(ca + ".pem"), " -CAkey ", Path(ca + ".key"),
                     " -CAcreateserial -out ", Path(name + ".pem"),
                     " -days 2 -extfile ", Path("san.ext")));
  }

  std::string Path(const std::string& file) const {
    return absl::StrCat(dir_, "/", file);
  }
  std::string Read(const std::string& file) const {
    return ReadFile(Path(file));
  }

 private:
  void Run(const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0)
        << command;
  }
  std::string dir_;
};

class TlsE2eTest : public SecurityE2eTest {
 protected:
  void SetUp() override {
    SecurityE2eTest::SetUp();
    pki_.MakeCa("ca");
    pki_.MakeLeaf("server", "ca");
    pki_.MakeCa("client-ca");
    pki_.MakeLeaf("client", "client-ca");
    pki_.MakeCa("rogue-ca");
    pki_.MakeLeaf("rogue-client", "rogue-ca");
    // The server reads its files from copies the test may replace.
    WriteFile(pki_.Path("live.pem"), pki_.Read("server.pem"));
    WriteFile(pki_.Path("live.key"), pki_.Read("server.key"));
  }

  std::vector<std::string> TlsFlags(bool mutual) {
    std::vector<std::string> flags = {"--tls_cert=" + pki_.Path("live.pem"),
                                      "--tls_key=" + pki_.Path("live.key")};
    if (mutual)
      flags.push_back("--tls_client_ca=" + pki_.Path("client-ca.pem"));
    return flags;
  }

  std::shared_ptr<grpc::ChannelCredentials> Trusting(
      const std::string& ca, const std::string& client = "") {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pki_.Read(ca + ".pem");
    if (!client.empty()) {
      options.pem_cert_chain = pki_.Read(client + ".pem");
      options.pem_private_key = pki_.Read(client + ".key");
    }
    return grpc::SslCredentials(options);
  }

  // One GetRuleset over a new connection with `credentials`.
  grpc::Status CallOver(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel =
        grpc::CreateCustomChannel(server_->grpc_address(), credentials, args);
    grpc::ClientContext context;
    AddKey(&context, kAllKey);
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(3));
    tappa::v1::GetRulesetRequest request;
    tappa::v1::GetRulesetResponse response;
    return tappa::v1::AdminService::NewStub(channel)->GetRuleset(
        &context, request, &response);
  }

  TestPki pki_{dir_.path()};
};

TEST_F(TlsE2eTest, ServesTlsAndRefusesPlaintextAndUntrustedServers) {
  StartServer(TlsFlags(/*mutual=*/false), Trusting("ca"));
  grpc::Status s = CallOver(Trusting("ca"));
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(CallOver(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A client that trusts another CA refuses the server.
  EXPECT_EQ(CallOver(Trusting("rogue-ca")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(server_->Log(), HasSubstr(", TLS,"));
}

TEST_F(TlsE2eTest, TappactlSpeaksTlsAndMutualTls) {
  StartServer(TlsFlags(/*mutual=*/true), Trusting("ca", "client"));
  const std::string env = absl::StrCat(
      "TAPPA_API_KEY=", kAllKey, " TAPPA_SERVER=localhost:",
      server_->grpc_address().substr(server_->grpc_address().find(':') + 1));
  auto [ok, ok_out] = RunTappactl(
      env, absl::StrCat("contact nobody --tls-ca ", pki_.Path("ca.pem"),
                        " --tls-cert ", pki_.Path("client.pem"), " --tls-key ",
                        pki_.Path("client.key")));
  EXPECT_EQ(ok, 1);
  EXPECT_THAT(ok_out, HasSubstr("5 contact_id: no such contact"));
  auto [no_cert, no_cert_out] =
      RunTappactl(env, absl::StrCat("contact nobody --tls-ca ",
                                    pki_.Path("ca.pem"), " --timeout 2"));
  EXPECT_EQ(no_cert, 1);
  EXPECT_THAT(no_cert_out, HasSubstr("14 "));  // UNAVAILABLE: no handshake
}

TEST_F(TlsE2eTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  StartServer(TlsFlags(/*mutual=*/true), Trusting("ca", "client"));
  grpc::Status s = CallOver(Trusting("ca", "client"));
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(CallOver(Trusting("ca")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(CallOver(Trusting("ca", "rogue-client")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(server_->Log(), HasSubstr("mutual TLS"));
}

TEST_F(TlsE2eTest, SighupReloadsCertificatesAndKeepsConnections) {
  StartServer(TlsFlags(/*mutual=*/false), Trusting("ca"));
  // An established connection before the reload.
  auto old_channel = server_->NewChannel();
  TappaClient old_client(old_channel);
  auto admin = tappa::v1::AdminService::NewStub(old_channel);
  auto get_ruleset = [&] {
    grpc::ClientContext context;
    AddKey(&context, kAllKey);
    tappa::v1::GetRulesetRequest request;
    tappa::v1::GetRulesetResponse response;
    return admin->GetRuleset(&context, request, &response);
  };
  ASSERT_TRUE(get_ruleset().ok());

  // A broken certificate on SIGHUP changes nothing.
  WriteFile(pki_.Path("live.pem"), "not a certificate\n");
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  ASSERT_TRUE(PollUntil(
      [&] {
        return absl::StrContains(server_->Log(), "TLS certificates kept");
      },
      absl::Seconds(10)))
      << server_->Log();
  EXPECT_THAT(server_->Log(), HasSubstr("--tls_cert"));
  EXPECT_TRUE(CallOver(Trusting("ca")).ok());

  // A certificate from a new CA: new connections get it.
  pki_.MakeCa("ca2");
  pki_.MakeLeaf("server2", "ca2");
  WriteFile(pki_.Path("live.key"), pki_.Read("server2.key"));
  WriteFile(pki_.Path("live.pem"), pki_.Read("server2.pem"));
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  EXPECT_TRUE(PollUntil([&] { return CallOver(Trusting("ca2")).ok(); },
                        absl::Seconds(15)))
      << server_->Log();
  EXPECT_EQ(CallOver(Trusting("ca")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // The connection made before still works.
  EXPECT_TRUE(get_ruleset().ok());
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              HasSubstr("tappa_tls_reloads_total{result=\"failed\"} 1"));
}

TEST_F(TlsE2eTest, MismatchedKeyIsAClearStartError) {
  WriteFile(pki_.Path("live.key"), pki_.Read("client.key"));
  ServerProcess::Options options;
  options.redis_url = redis_->url();
  options.extra_flags = TlsFlags(/*mutual=*/false);
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(),
              HasSubstr("--tls_key: the private key does not match"));
}

}  // namespace
}  // namespace tappa::testing
