// End-to-end tests of DecisionService.DecideBatch through the real
// tappa-server binary over a real gRPC channel against a private
// redis-server (process_fixture.h): a long stream answered exactly once per
// request with bounded server memory, flow control against a client that
// does not read, and per-request errors that leave the stream going. The
// ruleset is tests/server/testdata/decisioning.yaml.
#include <stdio.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

using tappa::v1::DecideBatchRequest;
using tappa::v1::DecideBatchResponse;

std::string RulesPath() {
  return absl::StrCat(SourceDir(), "/tests/server/testdata/decisioning.yaml");
}

// The resident set size of process `pid` in bytes (VmRSS), or -1.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, "VmRSS:")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    int64_t kb = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &kb)) {
      return kb * 1024;
    }
  }
  return -1;
}

// The value of the sample `series` (name and labels, exactly as exposed),
// or -1 when absent.
double SampleValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      double v = -1;
      if (absl::SimpleAtod(line.substr(0, line.find(' ')), &v)) return v;
    }
  }
  return -1;
}

DecideBatchRequest MakeRequest(const std::string& request_id,
                               const std::string& contact,
                               const std::string& channel,
                               const std::string& placement) {
  DecideBatchRequest request;
  request.set_request_id(request_id);
  request.set_contact_id(contact);
  request.set_channel(channel);
  request.set_placement(placement);
  return request;
}

// Samples, on a thread of its own until destroyed, the server's resident
// memory and its DecideBatch decisions pending (the metric), keeping the
// largest of each.
class ServerSampler {
 public:
  explicit ServerSampler(const ServerProcess* server)
      : server_(server), thread_([this] { Run(); }) {}
  ~ServerSampler() {
    stop_.Notify();
    thread_.join();
  }

  int64_t max_rss() const {
    absl::MutexLock lock(&mu_);
    return max_rss_;
  }
  double max_pending() const {
    absl::MutexLock lock(&mu_);
    return max_pending_;
  }
  double last_pending() const {
    absl::MutexLock lock(&mu_);
    return last_pending_;
  }

 private:
  void Run() {
    do {
      int64_t rss = ResidentBytes(server_->pid());
      absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
      double pending = metrics.ok()
                           ? SampleValue(*metrics, "tappa_decide_batch_pending")
                           : -1;
      absl::MutexLock lock(&mu_);
      max_rss_ = std::max(max_rss_, rss);
      max_pending_ = std::max(max_pending_, pending);
      last_pending_ = pending;
    } while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  }

  const ServerProcess* server_;
  absl::Notification stop_;
  mutable absl::Mutex mu_;
  int64_t max_rss_ ABSL_GUARDED_BY(mu_) = -1;
  double max_pending_ ABSL_GUARDED_BY(mu_) = -1;
  double last_pending_ ABSL_GUARDED_BY(mu_) = -1;
  std::thread thread_;  // last: starts once the rest is constructed
};

class DecideBatchE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    std::string key_path = absl::StrCat(dir_.path(), "/token.key");
    std::ofstream(key_path) << "an-end-to-end-test-key-of-at-least-32-bytes\n";
    ServerProcess::Options options;
    options.rules_path = RulesPath();
    options.redis_url = redis_->url();
    options.extra_flags = {
        absl::StrCat("--decision_token_key_file=", key_path),
        // A loaded 2-core box running client, server and Redis at once: the
        // tests check flow control and accounting, not the 250 ms default.
        "--batch_decision_budget=2s",
        // Open streams are cancelled 1 s after SIGTERM (see the shutdown
        // test).
        "--shutdown_grace=1s"};
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = tappa::v1::DecisionService::NewStub(server_->NewChannel());
  }

  double Metric(const std::string& series) {
    absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    return metrics.ok() ? SampleValue(*metrics, series) : -1;
  }

  TempDir dir_{"tappa-decide-batch"};
  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<tappa::v1::DecisionService::Stub> stub_;
};

TEST_F(DecideBatchE2eTest, LongStreamIsAnsweredOnceEachInBoundedMemory) {
  constexpr int kRequests = 100000;
  // Every 10,000th request names an unknown placement.
  auto invalid = [](int i) { return i % 10000 == 5000; };
  const int64_t rss_before = ResidentBytes(server_->pid());

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(300)));
  auto stream = stub_->DecideBatch(&context);
  ServerSampler sampler(server_.get());
  absl::Time start = absl::Now();
  // Writes as fast as flow control lets it (Write blocks while the server
  // does not read).
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      if (!stream->Write(MakeRequest(absl::StrCat(i), absl::StrCat("batch-", i),
                                     "web",
                                     invalid(i) ? "web.nope" : "web.hero"))) {
        return;  // the stream broke: the reader's checks report it
      }
    }
    stream->WritesDone();
  });

  std::vector<int> answers(kRequests, 0);
  int responses = 0, errors = 0, degraded = 0, offers = 0, unknown_ids = 0;
  std::map<int, int> degraded_reasons;
  std::string first_problem;
  DecideBatchResponse response;
  while (stream->Read(&response)) {
    ++responses;
    int i = -1;
    if (!absl::SimpleAtoi(response.request_id(), &i) || i < 0 ||
        i >= kRequests) {
      ++unknown_ids;
      continue;
    }
    ++answers[i];
    if (response.has_error()) {
      ++errors;
      if (first_problem.empty() &&
          (!invalid(i) || response.error().code() != 3 ||
           response.error().field() != "placement" ||
           !absl::StartsWith(response.error().message(), "placement: "))) {
        first_problem = response.DebugString();
      }
      continue;
    }
    const tappa::v1::NextBestActionResponse& d = response.decision();
    if (first_problem.empty() &&
        (invalid(i) || d.contact_id() != absl::StrCat("batch-", i) ||
         d.actions_size() != 1 || d.actions(0).decision_token().empty())) {
      first_problem = response.DebugString();
    }
    if (d.degraded()) {
      ++degraded;
      ++degraded_reasons[d.degraded_reason()];
    }
    if (d.actions_size() == 1 && d.actions(0).action_id() == "welcome-offer") {
      ++offers;
    }
  }
  absl::Duration elapsed = absl::Now() - start;
  writer.join();
  grpc::Status status = stream->Finish();
  const int64_t rss_after = ResidentBytes(server_->pid());

  EXPECT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(responses, kRequests);
  EXPECT_EQ(unknown_ids, 0);
  int missing = 0, repeated = 0;
  for (int n : answers) {
    missing += n == 0;
    repeated += n > 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(repeated, 0);
  EXPECT_EQ(errors, kRequests / 10000);
  EXPECT_TRUE(first_problem.empty()) << first_problem;
  // New contacts in the awareness phase: the welcome offer, unless the
  // store was too slow (degraded answers are the fallback banner).
  EXPECT_EQ(offers + degraded, kRequests - errors);
  EXPECT_LT(degraded, (kRequests - errors) / 10);
  for (const auto& [reason, n] : degraded_reasons) {
    printf("degraded, %s: %d\n", tappa::v1::DegradedReason_Name(reason).c_str(),
           n);
  }

  const int64_t max_rss = std::max(sampler.max_rss(), rss_after);
  EXPECT_GT(max_rss, 0);
  EXPECT_LT(max_rss, int64_t{300} << 20);
  EXPECT_LE(sampler.max_pending(), 1000);

  // Decisions are counted like NextBestAction's; the stream once.
  EXPECT_EQ(Metric("tappa_decisions_total{action=\"welcome-offer\","
                   "placement=\"web.hero\"}"),
            offers);
  EXPECT_EQ(Metric("tappa_grpc_requests_total{code=\"OK\",method=\"tappa.v1."
                   "DecisionService/DecideBatch\"}"),
            1);
  EXPECT_EQ(Metric("tappa_decide_batch_pending"), 0);

  const double seconds = absl::ToDoubleSeconds(elapsed);
  printf(
      "DecideBatch: %d requests in %.2f s = %.0f decisions/s; %d degraded; "
      "server RSS %.1f MB before, %.1f MB max during/after; at most %.0f "
      "pending\n",
      kRequests, seconds, kRequests / seconds, degraded, rss_before / 1048576.0,
      max_rss / 1048576.0, sampler.max_pending());
}

TEST_F(DecideBatchE2eTest, ServerStopsReadingAtTheBoundUntilTheClientReads) {
  // 4 KB per request, 160 MB in all: far more than the transports' buffers
  // and HTTP/2 windows hold (measured: ~14,000 such requests are written
  // and ~12,000 responses buffered by the client before everything stops).
  constexpr int kRequests = 40000;
  const std::string decided_series =
      "tappa_decisions_total{action=\"impression-capped\",placement=\"web."
      "side\"}";
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  auto stream = stub_->DecideBatch(&context);
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      DecideBatchRequest request = MakeRequest(
          absl::StrCat(i), absl::StrCat("fc-", i), "web", "web.side");
      for (const char* key : {"a", "b", "c", "d"}) {
        (*request.mutable_context())[key].set_string_value(
            std::string(1000, 'n'));
      }
      if (!stream->Write(request)) return;
      written.fetch_add(1);
    }
    stream->WritesDone();
  });

  {
    // The client reads nothing: once the responses fill the client's
    // buffers, the server's writes stop completing, it holds its bound of
    // decisions and reads no more requests.
    ServerSampler sampler(server_.get());
    EXPECT_TRUE(
        PollUntil([&] { return Metric("tappa_decide_batch_pending") == 1000; },
                  absl::Seconds(60), absl::Milliseconds(50)))
        << "pending: " << Metric("tappa_decide_batch_pending");
    // The requests read are decided (the 1,000 pending include some still
    // waiting for their turn), then the stream stalls while the client
    // keeps not reading: no decision made, nothing more read, the bound
    // never exceeded.
    double decided = Metric(decided_series);
    EXPECT_TRUE(PollUntil(
        [&] {
          double before = decided;
          decided = Metric(decided_series);
          return decided == before;
        },
        absl::Seconds(30), absl::Seconds(1)));
    absl::SleepFor(absl::Seconds(1));
    EXPECT_EQ(Metric("tappa_decide_batch_pending"), 1000);
    // (Not "no decision at all since": on a loaded machine a few decisions
    // that were waiting for their turn may still complete.)
    EXPECT_LT(Metric(decided_series), kRequests);
    EXPECT_LT(decided, kRequests);
    EXPECT_LE(sampler.max_pending(), 1000);
    // The client is slowed down: its writes block.
    EXPECT_LT(written.load(), kRequests);
    EXPECT_LT(sampler.max_rss(), int64_t{300} << 20);
    printf(
        "DecideBatch flow control: while the client did not read, it wrote "
        "%d of %d requests and the server decided %.0f, held at most %.0f "
        "pending, RSS at most %.1f MB\n",
        written.load(), kRequests, decided, sampler.max_pending(),
        sampler.max_rss() / 1048576.0);
  }

  std::vector<int> answers(kRequests, 0);
  int responses = 0;
  DecideBatchResponse response;
  while (stream->Read(&response)) {
    ++responses;
    int i = -1;
    if (absl::SimpleAtoi(response.request_id(), &i) && i >= 0 &&
        i < kRequests) {
      ++answers[i];
    }
    EXPECT_FALSE(response.has_error()) << response.DebugString();
  }
  writer.join();
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << Describe(status);
  EXPECT_EQ(responses, kRequests);
  EXPECT_EQ(std::count(answers.begin(), answers.end(), 1), kRequests);
  EXPECT_EQ(Metric("tappa_decide_batch_pending"), 0);
}

TEST_F(DecideBatchE2eTest,
       InvalidRequestsGetErrorsNamingTheFieldAndTheStreamGoesOn) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto stream = stub_->DecideBatch(&context);
  std::vector<DecideBatchRequest> requests = {
      MakeRequest("ok-1", "ann", "web", "web.hero"),
      MakeRequest("placement", "ann", "web", "web.nope"),
      MakeRequest("channel", "ann", "fax", "web.hero"),
      MakeRequest("wrong-channel", "ann", "email", "web.hero"),
      MakeRequest("contact", "", "web", "web.hero"),
      MakeRequest("limit", "ann", "web", "web.hero"),
      MakeRequest("context", "ann", "web", "web.hero"),
      MakeRequest(std::string(129, 'x'), "ann", "web", "web.hero"),
      // Not UTF-8: protobuf (in release builds) serializes it with a logged
      // complaint; the server must not parse it as a string.
      MakeRequest("utf8", "bad\xff", "web", "web.hero"),
      MakeRequest("ok-2", "bob", "web", "web.side"),
  };
  requests[5].set_limit(-1);
  (*requests[6].mutable_context())["page"].mutable_list_value();
  for (const DecideBatchRequest& r : requests) ASSERT_TRUE(stream->Write(r));
  ASSERT_TRUE(stream->WritesDone());

  std::map<std::string, DecideBatchResponse> by_id;
  DecideBatchResponse response;
  while (stream->Read(&response)) {
    EXPECT_EQ(by_id.count(response.request_id()), 0u)
        << "twice: " << response.request_id();
    by_id[response.request_id()] = response;
  }
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << Describe(status);
  ASSERT_EQ(by_id.size(), requests.size());

  for (const char* ok : {"ok-1", "ok-2"}) {
    EXPECT_FALSE(by_id[ok].has_error()) << by_id[ok].DebugString();
    EXPECT_EQ(by_id[ok].decision().actions_size(), 1);
  }
  EXPECT_EQ(by_id["ok-1"].decision().actions(0).action_id(), "welcome-offer");
  const std::map<std::string, std::string> field_of = {
      {"placement", "placement"},
      {"channel", "channel"},
      {"wrong-channel", "placement"},
      {"contact", "contact_id"},
      {"limit", "limit"},
      {"context", "context.page"},
      // An over-long request_id is not echoed.
      {"", "request_id"},
      {"utf8", "contact_id"},
  };
  for (const auto& [id, field] : field_of) {
    const DecideBatchResponse& r = by_id[id];
    EXPECT_TRUE(r.has_error()) << id;
    EXPECT_FALSE(r.has_decision()) << id;
    EXPECT_EQ(r.error().code(), 3) << id;  // INVALID_ARGUMENT
    EXPECT_EQ(r.error().field(), field) << id << ": " << r.DebugString();
    EXPECT_TRUE(absl::StartsWith(r.error().message(), field + ": "))
        << id << ": " << r.error().message();
  }
  EXPECT_EQ(by_id["utf8"].error().message(), "contact_id: must be valid UTF-8");
}

TEST_F(DecideBatchE2eTest, CancelledStreamEndsAndServerKeepsServing) {
  {
    grpc::ClientContext context;
    auto stream = stub_->DecideBatch(&context);
    for (int i = 0; i < 3000; ++i) {
      if (!stream->Write(MakeRequest(absl::StrCat(i), absl::StrCat("c-", i),
                                     "web", "web.side"))) {
        break;
      }
    }
    DecideBatchResponse response;
    ASSERT_TRUE(stream->Read(&response));
    context.TryCancel();
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The cancelled stream's decisions complete, nothing stays pending, and
  // the stream is counted once it finished.
  EXPECT_TRUE(PollUntil(
      [&] {
        return Metric("tappa_decide_batch_pending") == 0 &&
               Metric(
                   "tappa_grpc_requests_total{code=\"CANCELLED\",method="
                   "\"tappa.v1.DecisionService/DecideBatch\"}") == 1;
      },
      absl::Seconds(10)));
  // The next stream is served as usual.
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  auto stream = stub_->DecideBatch(&context);
  ASSERT_TRUE(stream->Write(MakeRequest("after", "d-1", "web", "web.hero")));
  ASSERT_TRUE(stream->WritesDone());
  DecideBatchResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.request_id(), "after");
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(DecideBatchE2eTest, StreamPastItsDeadlineEndsDeadlineExceeded) {
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Milliseconds(500)));
  auto stream = stub_->DecideBatch(&context);
  ASSERT_TRUE(stream->Write(MakeRequest("1", "e-1", "web", "web.hero")));
  DecideBatchResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_FALSE(response.has_error()) << response.DebugString();
  // The client neither half-closes nor writes: the deadline ends it.
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server counts the stream as ended by its deadline, or, when the
  // client's deadline fired first on a loaded machine, as cancelled.
  EXPECT_TRUE(PollUntil(
      [&] {
        return Metric(
                   "tappa_grpc_requests_total{code=\"DEADLINE_EXCEEDED\","
                   "method=\"tappa.v1.DecisionService/DecideBatch\"}") +
                   Metric(
                       "tappa_grpc_requests_total{code=\"CANCELLED\","
                       "method=\"tappa.v1.DecisionService/DecideBatch\"}") ==
               1;
      },
      absl::Seconds(10)))
      << *server_->ScrapeMetrics();
}

TEST_F(DecideBatchE2eTest, ShutdownEndsAnOpenStreamAndExitsCleanly) {
  grpc::ClientContext context;
  auto stream = stub_->DecideBatch(&context);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(stream->Write(MakeRequest(
        absl::StrCat(i), absl::StrCat("s-", i), "web", "web.hero")));
  }
  DecideBatchResponse response;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(stream->Read(&response));
  // The stream is open, waiting for the next request: SIGTERM drains for
  // --shutdown_grace, then cancels it; the server still exits 0.
  absl::StatusOr<int> exit_status = server_->Terminate(absl::Seconds(15));
  ASSERT_TRUE(exit_status.ok()) << exit_status.status();
  EXPECT_EQ(*exit_status, 0) << server_->Log();
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_FALSE(stream->Finish().ok());
}

}  // namespace
}  // namespace tappa::testing
