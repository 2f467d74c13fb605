// tappa-loadgen: drives a running tappa-server over gRPC and reports full
// latency distributions, throughput and errors.
//
//   tappa-loadgen --target=127.0.0.1:50051 --rules=rules/examples/retail.yaml
//       --scenario=web --mode=open --rate=5000 --duration=15s --json=out.json
//
// Modes:
//   closed  --concurrency=C calls are kept in flight; each completion sends
//           the next call at once. Measures the maximum throughput.
//   open    calls are sent at a fixed arrival rate (--rate, --arrival)
//           whatever the server does, and each latency is measured from the
//           time the call was *scheduled*, not sent: when the server (or the
//           client) falls behind, the calls waiting to go out are charged for
//           their wait. That is the coordinated-omission correction: a slow
//           server cannot hide its latency by slowing the client down.
// Scenarios (see loadtests/README.md):
//   web     80% NextBestAction, 18% TrackEvent, 2% ReportOutcome
//   nba     100% NextBestAction          track   100% TrackEvent
//   outcome ReportOutcome, with a NextBestAction whenever no token is at hand
//   ingest  TrackEvents batches of --batch events
//   empty   grpc.health.v1.Health/Check: the empty-RPC floor
//   campaign  DecideBatch: --streams streams, each deciding for its share of
//           the contacts in turn as fast as the server's flow control lets
//           it (no --mode: a stream is its own closed loop of up to 1,000
//           requests the server has not answered)
// ReportOutcome needs decision tokens, and only the server can make them:
// each worker keeps the tokens of the last NextBestAction answers it
// received (kTokenPoolSize) and reports each one once. When a
// ReportOutcome is due and the worker has none, a NextBestAction goes
// instead, so the first calls of a run are all decisions and the mix
// reaches its 2% once the first answers are back. Outcomes are 70%
// impressions, 25% clicks, 5% conversions and no dismissals: a dismissal
// starts cooldowns that suppress the contact's later decisions, which would
// make NextBestAction cheaper than it is in the traffic being modelled.
// Contacts are "c<k>", k drawn from a Zipf distribution over --contacts;
// placements (optionally only those of --channel) and channels come from the
// ruleset (--rules). --preload first creates every contact with an
// `identify` event (country and tier attributes) in TrackEvents batches.
//
// Threads: --threads completion-queue threads receive completions (and, in
// closed mode, send the next calls); in open mode one more thread sends on
// schedule, because a completion queue's timed wait has millisecond
// granularity and would itself add up to 1 ms to every latency.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "loadtests/latency_histogram.h"
#include "loadtests/zipf.h"
#include "nlohmann/json.hpp"
#include "rules/ruleset/loader.h"
#include "tappa/v1/decision_service.grpc.pb.h"
#include "tappa/v1/journey_service.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "tappa-server's gRPC address.");
ABSL_FLAG(std::string, mode, "closed",
          "closed (--concurrency calls in flight) or open (--rate calls/s).");
ABSL_FLAG(double, rate, 1000, "Open loop: calls per second.");
ABSL_FLAG(std::string, arrival, "constant",
          "Open loop: constant (evenly spaced) or poisson arrivals.");
ABSL_FLAG(int, concurrency, 64, "Closed loop: calls kept in flight.");
ABSL_FLAG(int, max_inflight, 0,
          "Open loop: at most this many calls in flight; later calls wait (and "
          "their wait counts in their latency). 0: 256 per connection, what "
          "the server's default --max_concurrent_streams lets a connection "
          "carry (more would wait in gRPC's own queue, go out late and expire "
          "on the way, each expiry a cancellation the server must process).");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "Measured time (0: only --preload).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(2),
          "Load before the measured time, not counted.");
ABSL_FLAG(std::string, scenario, "web",
          "web, nba, track, outcome, ingest, empty or campaign.");
ABSL_FLAG(int, streams, 4,
          "campaign: DecideBatch streams, spread over --connections.");
ABSL_FLAG(int64_t, requests, 0,
          "campaign: decide this many requests in all (split over the "
          "streams, contacts taken in turn and again), then half-close and "
          "read every answer; the figures cover the whole run, without "
          "warm-up. 0: run for --warmup + --duration, then cancel.");
ABSL_FLAG(int64_t, contacts, 100000, "Contacts c0 .. c<N-1>.");
ABSL_FLAG(std::string, contact_alias, "",
          "A namespace (e.g. crm): --preload links alias <namespace>:c<k> to "
          "each contact c<k> (its identify event carries it), and every "
          "other call names contacts by that alias, to measure resolution.");
ABSL_FLAG(double, zipf, 0.99,
          "Zipf exponent of contact popularity (0: uniform).");
ABSL_FLAG(std::string, rules, "",
          "The server's ruleset (placements and channels are read from it).");
ABSL_FLAG(std::string, channel, "",
          "Only placements of this channel for NextBestAction (empty: all).");
ABSL_FLAG(int, batch, 100, "Events per TrackEvents call (ingest, preload).");
ABSL_FLAG(bool, preload, false,
          "Create every contact (one identify event each) before measuring.");
ABSL_FLAG(int, connections, 4, "gRPC channels, each with its own connection.");
ABSL_FLAG(int, threads, 1, "Completion-queue threads.");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(1),
          "Deadline of every call.");
ABSL_FLAG(std::string, json, "", "Write the results as JSON to this file.");
ABSL_FLAG(bool, progress, true, "A progress line on stderr every second.");
ABSL_FLAG(uint64_t, seed, 1, "Random seed.");

namespace tappa::loadtests {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

void SleepUntilNanos(int64_t t) {
  timespec ts;
  ts.tv_sec = t / 1000000000;
  ts.tv_nsec = t % 1000000000;
  // steady_clock is CLOCK_MONOTONIC on Linux.
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

// ---- What is sent ----

enum Kind {
  kNextBestAction,
  kTrackEvent,
  kReportOutcome,
  kTrackEvents,
  kHealthCheck,
  kDecideBatch,  // one decision of a DecideBatch stream (campaign)
  kKinds
};
constexpr std::array<const char*, kKinds> kKindNames = {
    "NextBestAction", "TrackEvent",   "ReportOutcome",
    "TrackEvents",    "Health.Check", "DecideBatch"};

constexpr std::array<const char*, 17> kCodeNames = {"OK",
                                                    "CANCELLED",
                                                    "UNKNOWN",
                                                    "INVALID_ARGUMENT",
                                                    "DEADLINE_EXCEEDED",
                                                    "NOT_FOUND",
                                                    "ALREADY_EXISTS",
                                                    "PERMISSION_DENIED",
                                                    "RESOURCE_EXHAUSTED",
                                                    "FAILED_PRECONDITION",
                                                    "ABORTED",
                                                    "OUT_OF_RANGE",
                                                    "UNIMPLEMENTED",
                                                    "INTERNAL",
                                                    "UNAVAILABLE",
                                                    "DATA_LOSS",
                                                    "UNAUTHENTICATED"};

struct PlacementRef {
  std::string id;
  std::string channel;
};

// Event types of the web traffic, with weights: mostly browsing, some
// purchases and the rarer events that move contacts to later phases, so the
// contacts spread over the journey while the test runs.
struct WeightedType {
  const char* type;
  double weight;
};
constexpr WeightedType kEventTypes[] = {{"page_view", 35},
                                        {"product_view", 30},
                                        {"review_read", 12},
                                        {"cart_add", 10},
                                        {"email_open", 8},
                                        {"purchase", 3},
                                        {"newsletter_subscribe", 1.5},
                                        {"ugc_share", 0.5}};

// Builds requests. Thread-safe: the state it changes (the event id counter)
// is atomic; callers pass their own random engines.
class Workload {
 public:
  Workload(std::string scenario, int64_t contacts, double zipf_s,
           std::vector<PlacementRef> placements,
           std::vector<std::string> channels, int batch, std::string run_id)
      : scenario_(std::move(scenario)),
        zipf_(contacts, zipf_s),
        placements_(std::move(placements)),
        channels_(std::move(channels)),
        batch_(batch),
        run_id_(std::move(run_id)) {
    double total = 0;
    for (const WeightedType& t : kEventTypes) {
      total += t.weight;
      type_cdf_.push_back(total);
    }
    for (double& c : type_cdf_) c /= total;
  }

  // The kind of the next call. kReportOutcome becomes kNextBestAction when
  // the sender has no decision token (see the header comment).
  Kind NextKind(std::mt19937_64& rng) const {
    if (scenario_ == "nba") return kNextBestAction;
    if (scenario_ == "track") return kTrackEvent;
    if (scenario_ == "outcome") return kReportOutcome;
    if (scenario_ == "ingest") return kTrackEvents;
    if (scenario_ == "empty") return kHealthCheck;
    // web: 80% decisions, 18% events, 2% outcomes.
    int u = std::uniform_int_distribution<int>(0, 99)(rng);
    if (u < 80) return kNextBestAction;
    return u < 98 ? kTrackEvent : kReportOutcome;
  }

  void FillDecision(std::mt19937_64& rng,
                    v1::NextBestActionRequest* request) const {
    const PlacementRef& p = placements_[std::uniform_int_distribution<size_t>(
        0, placements_.size() - 1)(rng)];
    request->set_contact_id(ContactId(zipf_.Sample(rng)));
    request->set_channel(p.channel);
    request->set_placement(p.id);
  }

  // A campaign's decision for contact `k` (every contact in turn, not
  // Zipf-drawn: a campaign decides once for each of its audience).
  void FillCampaign(std::mt19937_64& rng, int64_t k,
                    v1::DecideBatchRequest* request) const {
    const PlacementRef& p = placements_[std::uniform_int_distribution<size_t>(
        0, placements_.size() - 1)(rng)];
    request->set_contact_id(ContactId(k % zipf_.size()));
    request->set_channel(p.channel);
    request->set_placement(p.id);
  }

  void FillEvent(std::mt19937_64& rng, v1::TrackEventRequest* request) {
    FillEventFor(rng, zipf_.Sample(rng), request);
  }

  // 70% impressions, 25% clicks, 5% conversions; never a dismissal (see the
  // header comment).
  void FillOutcome(std::mt19937_64& rng, std::string token,
                   v1::ReportOutcomeRequest* request) const {
    int u = std::uniform_int_distribution<int>(0, 99)(rng);
    request->set_decision_token(std::move(token));
    request->set_outcome(u < 70   ? v1::OUTCOME_IMPRESSION
                         : u < 95 ? v1::OUTCOME_CLICK
                                  : v1::OUTCOME_CONVERSION);
  }

  void FillBatch(std::mt19937_64& rng, v1::TrackEventsRequest* request) {
    for (int i = 0; i < batch_; ++i) FillEvent(rng, request->add_requests());
  }

  // One `identify` event for contact `k`: the attributes the generated
  // rulesets' conditions read.
  void FillIdentify(int64_t k, v1::TrackEventRequest* request) {
    static constexpr const char* kCountries[] = {"IT", "FR", "DE", "ES",
                                                 "NL", "US", "GB"};
    static constexpr const char* kTiers[] = {"gold", "silver", "platinum"};
    request->set_event_id(NextEventId());
    // Preloading creates each contact under its canonical id, and links
    // its alias when calls will use one.
    request->set_contact_id(absl::StrCat("c", k));
    if (!alias_namespace_.empty()) request->add_identities(ContactId(k));
    request->set_type("identify");
    request->set_channel(channels_[k % channels_.size()]);
    auto& props = *request->mutable_properties();
    props["country"].set_string_value(kCountries[k % 7]);
    props["tier"].set_string_value(kTiers[(k / 7) % 3]);
  }

  int64_t contacts() const { return zipf_.size(); }
  int batch() const { return batch_; }

 private:
  // How calls name contact k: its canonical id, or its alias
  // (--contact_alias).
  std::string ContactId(int64_t k) const {
    return alias_namespace_.empty() ? absl::StrCat("c", k)
                                    : absl::StrCat(alias_namespace_, ":c", k);
  }

 public:
  void set_alias_namespace(std::string ns) { alias_namespace_ = std::move(ns); }

 private:
  std::string alias_namespace_;

  std::string NextEventId() {
    return absl::StrCat(run_id_, "-",
                        next_event_.fetch_add(1, std::memory_order_relaxed));
  }

  void FillEventFor(std::mt19937_64& rng, int64_t k,
                    v1::TrackEventRequest* request) {
    request->set_event_id(NextEventId());
    request->set_contact_id(ContactId(k));
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    size_t type = std::lower_bound(type_cdf_.begin(), type_cdf_.end(), u) -
                  type_cdf_.begin();
    request->set_type(kEventTypes[std::min(type, type_cdf_.size() - 1)].type);
    request->set_channel(channels_[std::uniform_int_distribution<size_t>(
        0, channels_.size() - 1)(rng)]);
  }

  const std::string scenario_;
  const ZipfDistribution zipf_;
  const std::vector<PlacementRef> placements_;
  const std::vector<std::string> channels_;
  const int batch_;
  const std::string run_id_;
  std::vector<double> type_cdf_;  // cumulative weights of kEventTypes
  std::atomic<uint64_t> next_event_{0};
};

// ---- Calls in flight ----

// One call; its address is the completion-queue tag. Deleted by the thread
// that receives its completion.
struct Call {
  virtual ~Call() = default;
  // Degraded NextBestAction answers (fallbacks) are successes for gRPC but
  // worth counting; per-item errors of a batch likewise.
  virtual bool Degraded() const { return false; }
  virtual int ItemErrors() const { return 0; }
  virtual int Items() const { return 1; }

  Kind kind = kHealthCheck;
  int channel = 0;
  int64_t scheduled = 0;  // ns, steady clock: latency is measured from here
  grpc::ClientContext context;
  grpc::Status status;
};

template <typename Request, typename Response>
struct UnaryCall : Call {
  Request request;
  Response response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
};

struct DecisionCall
    : UnaryCall<v1::NextBestActionRequest, v1::NextBestActionResponse> {
  bool Degraded() const override { return status.ok() && response.degraded(); }
};
struct EventCall : UnaryCall<v1::TrackEventRequest, v1::TrackEventResponse> {};
struct OutcomeCall
    : UnaryCall<v1::ReportOutcomeRequest, v1::ReportOutcomeResponse> {};
struct BatchCall : UnaryCall<v1::TrackEventsRequest, v1::TrackEventsResponse> {
  int ItemErrors() const override {
    int n = 0;
    for (const auto& r : response.results()) n += r.has_error() ? 1 : 0;
    return n;
  }
  int Items() const override { return request.requests_size(); }
};
struct HealthCall : UnaryCall<grpc::ByteBuffer, grpc::ByteBuffer> {
  // HealthCheckRequest{service: ""} encodes as zero bytes, but a
  // default-constructed ByteBuffer is "no message" and does not serialize:
  // the request is one empty slice.
  HealthCall() {
    grpc::Slice empty("", 0);
    request = grpc::ByteBuffer(&empty, 1);
  }
};

// The decision tokens of the most recent NextBestAction answers, newest
// first out: a client reports what became of an action soon after it was
// decided. Bounded, so that a long run does not keep every token; when full,
// the oldest is dropped. Each token is taken once, so no outcome is reported
// twice: the server writes nothing for a duplicate, which would make the
// measured ReportOutcome cheaper than a real client's. Not thread-safe: the
// owner's mutex guards it.
constexpr size_t kTokenPoolSize = 256;

class TokenPool {
 public:
  void Add(std::string token) {
    ring_[next_] = std::move(token);
    next_ = (next_ + 1) % ring_.size();
    size_ = std::min(size_ + 1, ring_.size());
  }

  // Moves the newest token to `token`; false when there is none.
  bool Take(std::string* token) {
    if (size_ == 0) return false;
    next_ = (next_ + ring_.size() - 1) % ring_.size();
    --size_;
    *token = std::move(ring_[next_]);
    return true;
  }

 private:
  std::array<std::string, kTokenPoolSize> ring_;
  size_t next_ = 0;  // where the next token goes; the newest is before it
  size_t size_ = 0;
};

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::DecisionService::Stub> decisions;
  std::unique_ptr<v1::JourneyService::Stub> journey;
  std::unique_ptr<grpc::GenericStub> generic;
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // Channels with equal arguments share one connection through gRPC's
  // global subchannel pool; a local pool gives each its own, as separate
  // clients would have.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// ---- Statistics ----

struct KindStats {
  LatencyHistogram latency;
  // Of the calls answered OK and not degraded: under overload, what the
  // server accepted to serve in full.
  LatencyHistogram accepted;
  uint64_t ok = 0;
  uint64_t degraded = 0;
  uint64_t items = 0;
  uint64_t item_errors = 0;
  std::array<uint64_t, 17> errors{};

  uint64_t error_count() const {
    uint64_t n = 0;
    for (uint64_t e : errors) n += e;
    return n;
  }
  void Merge(const KindStats& o) {
    latency.Merge(o.latency);
    accepted.Merge(o.accepted);
    ok += o.ok;
    degraded += o.degraded;
    items += o.items;
    item_errors += o.item_errors;
    for (size_t i = 0; i < errors.size(); ++i) errors[i] += o.errors[i];
  }
  void Reset() { *this = KindStats(); }
};

using Stats = std::array<KindStats, kKinds>;

void MergeStats(const Stats& from, Stats* into) {
  for (int k = 0; k < kKinds; ++k) (*into)[k].Merge(from[k]);
}

KindStats Total(const Stats& s) {
  KindStats t;
  for (const KindStats& k : s) t.Merge(k);
  return t;
}

// ---- The load generator ----

struct Options {
  std::string mode;
  double rate = 0;
  bool poisson = false;
  int concurrency = 0;
  int max_inflight = 0;
  absl::Duration duration;
  absl::Duration warmup;
  absl::Duration deadline;
  int threads = 1;
  bool progress = true;
  uint64_t seed = 1;
  int streams = 0;       // campaign
  int64_t requests = 0;  // campaign: a fixed number, drained
};

class LoadGenerator {
 public:
  LoadGenerator(Options options, std::vector<Connection>* connections,
                Workload* workload)
      : options_(std::move(options)),
        connections_(connections),
        workload_(workload) {
    for (int i = 0; i < options_.threads; ++i) {
      workers_.push_back(std::make_unique<Worker>());
      workers_.back()->rng.seed(options_.seed * 7919 + i);
    }
  }

  // Runs the warm-up and the measured time, then waits for the calls in
  // flight (bounded by their deadline). Results: Measured(), SendLag().
  void Run() {
    start_ = NowNanos();
    measure_start_ = start_ + absl::ToInt64Nanoseconds(options_.warmup);
    measure_end_ = measure_start_ + absl::ToInt64Nanoseconds(options_.duration);
    if (options_.mode == "closed") {
      // Each worker keeps its share of the calls in flight (re-sent from
      // Receive) on connections taken round-robin. Sent before the workers
      // start, so each worker's random engine has one user at a time.
      for (int c = 0; c < options_.concurrency; ++c) {
        Send(c % options_.threads, c % connections_->size(), NowNanos());
      }
    }
    std::vector<std::thread> threads;
    for (int i = 0; i < options_.threads; ++i) {
      threads.emplace_back([this, i] { Receive(i); });
    }
    std::thread progress([this] { Progress(); });
    if (options_.mode == "open") SendOnSchedule();
    // Every call ends by its deadline at the latest.
    while (inflight_.load() > 0 || NowNanos() < measure_end_) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    for (auto& w : workers_) w->cq.Shutdown();
    for (std::thread& t : threads) t.join();
    {
      std::lock_guard<std::mutex> lock(progress_mu_);
      done_ = true;
    }
    progress_cv_.notify_all();
    progress.join();
  }

  Stats Measured() const {
    Stats all;
    for (const auto& w : workers_) {
      std::lock_guard<std::mutex> lock(w->mu);
      MergeStats(w->measured, &all);
    }
    return all;
  }
  const LatencyHistogram& send_lag() const { return send_lag_; }
  double measured_seconds() const {
    return absl::ToDoubleSeconds(options_.duration);
  }

 private:
  struct Worker {
    grpc::CompletionQueue cq;
    std::mt19937_64 rng;  // used by whoever sends on this worker's queue
    mutable std::mutex mu;
    Stats measured;  // calls scheduled within the measured time
    Stats interval;  // everything since the last progress line
    // Filled by the worker's completion thread, taken by whoever sends on
    // its queue: in open mode that is the sender thread, hence the mutex.
    TokenPool tokens;
  };

  // Builds and starts one call whose completion goes to worker `w`'s queue.
  // Called by one thread per worker at a time (closed: the worker itself
  // after the initial calls; open: the sender only).
  void Send(int w, int c, int64_t scheduled) {
    Worker& worker = *workers_[w];
    Connection& conn = (*connections_)[c];
    Kind kind = workload_->NextKind(worker.rng);
    std::string token;
    if (kind == kReportOutcome) {
      std::lock_guard<std::mutex> lock(worker.mu);
      if (!worker.tokens.Take(&token)) kind = kNextBestAction;
    }
    Call* call = nullptr;
    auto deadline = std::chrono::system_clock::now() +
                    absl::ToChronoNanoseconds(options_.deadline);
    switch (kind) {
      case kNextBestAction: {
        auto* d = new DecisionCall;
        workload_->FillDecision(worker.rng, &d->request);
        d->context.set_deadline(deadline);
        d->reader = conn.decisions->PrepareAsyncNextBestAction(
            &d->context, d->request, &worker.cq);
        call = d;
        break;
      }
      case kTrackEvent: {
        auto* e = new EventCall;
        workload_->FillEvent(worker.rng, &e->request);
        e->context.set_deadline(deadline);
        e->reader = conn.journey->PrepareAsyncTrackEvent(
            &e->context, e->request, &worker.cq);
        call = e;
        break;
      }
      case kReportOutcome: {
        auto* o = new OutcomeCall;
        workload_->FillOutcome(worker.rng, std::move(token), &o->request);
        o->context.set_deadline(deadline);
        o->reader = conn.decisions->PrepareAsyncReportOutcome(
            &o->context, o->request, &worker.cq);
        call = o;
        break;
      }
      case kTrackEvents: {
        auto* b = new BatchCall;
        workload_->FillBatch(worker.rng, &b->request);
        b->context.set_deadline(deadline);
        b->reader = conn.journey->PrepareAsyncTrackEvents(
            &b->context, b->request, &worker.cq);
        call = b;
        break;
      }
      default: {
        auto* h = new HealthCall;
        h->context.set_deadline(deadline);
        h->reader = conn.generic->PrepareUnaryCall(
            &h->context, "/grpc.health.v1.Health/Check", h->request,
            &worker.cq);
        call = h;
        break;
      }
    }
    call->kind = kind;
    call->channel = c;
    call->scheduled = scheduled;
    inflight_.fetch_add(1, std::memory_order_relaxed);
    // The reader's static type differs per call type; each knows its own.
    switch (kind) {
      case kNextBestAction: {
        auto* d = static_cast<DecisionCall*>(call);
        d->reader->StartCall();
        d->reader->Finish(&d->response, &d->status, call);
        break;
      }
      case kTrackEvent: {
        auto* e = static_cast<EventCall*>(call);
        e->reader->StartCall();
        e->reader->Finish(&e->response, &e->status, call);
        break;
      }
      case kReportOutcome: {
        auto* o = static_cast<OutcomeCall*>(call);
        o->reader->StartCall();
        o->reader->Finish(&o->response, &o->status, call);
        break;
      }
      case kTrackEvents: {
        auto* b = static_cast<BatchCall*>(call);
        b->reader->StartCall();
        b->reader->Finish(&b->response, &b->status, call);
        break;
      }
      default: {
        auto* h = static_cast<HealthCall*>(call);
        h->reader->StartCall();
        h->reader->Finish(&h->response, &h->status, call);
        break;
      }
    }
  }

  // Open loop: sends each call at its scheduled time (sleeping in between
  // with a 1 us timer slack instead of the default 50 us), sends late calls
  // as soon as it can, and records how late each call went out.
  void SendOnSchedule() {
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    std::mt19937_64 rng(options_.seed ^ 0x5eed);
    std::exponential_distribution<double> gaps(options_.rate);
    const double interval_ns = 1e9 / options_.rate;
    double next = static_cast<double>(start_);
    int turn = 0;
    while (next < measure_end_) {
      int64_t now = NowNanos();
      if (next > now) {
        SleepUntilNanos(static_cast<int64_t>(next));
        continue;
      }
      if (inflight_.load(std::memory_order_relaxed) >= options_.max_inflight) {
        // Late calls keep their scheduled time: the wait counts.
        absl::SleepFor(absl::Microseconds(50));
        continue;
      }
      int64_t scheduled = static_cast<int64_t>(next);
      if (scheduled >= measure_start_) send_lag_.Record(now - scheduled);
      Send(turn % options_.threads, turn % connections_->size(), scheduled);
      ++turn;
      next += options_.poisson ? gaps(rng) * 1e9 : interval_ns;
    }
  }

  // Completion-queue thread of worker `w`.
  void Receive(int w) {
    Worker& worker = *workers_[w];
    void* tag = nullptr;
    bool ok = false;
    while (worker.cq.Next(&tag, &ok)) {
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      int64_t now = NowNanos();
      {
        std::lock_guard<std::mutex> lock(worker.mu);
        Record(*call, now, &worker.interval);
        if (call->scheduled >= measure_start_ &&
            call->scheduled < measure_end_) {
          Record(*call, now, &worker.measured);
        }
        if (call->kind == kNextBestAction && call->status.ok()) {
          // The call is deleted next: its tokens are moved, not copied.
          auto& response = static_cast<DecisionCall&>(*call).response;
          for (v1::RankedAction& action : *response.mutable_actions()) {
            if (!action.decision_token().empty()) {
              worker.tokens.Add(std::move(*action.mutable_decision_token()));
            }
          }
        }
      }
      inflight_.fetch_sub(1, std::memory_order_relaxed);
      if (options_.mode == "closed" && now < measure_end_) {
        Send(w, call->channel, now);
      }
    }
  }

  static void Record(const Call& call, int64_t now, Stats* stats) {
    KindStats& k = (*stats)[call.kind];
    // Failed calls count in the latency too: a deadline exceeded took its
    // whole deadline, and leaving it out would flatter the tail.
    k.latency.Record(now - call.scheduled);
    if (call.status.ok()) {
      ++k.ok;
      if (call.Degraded()) {
        ++k.degraded;
      } else {
        k.accepted.Record(now - call.scheduled);
      }
      k.items += call.Items();
      k.item_errors += call.ItemErrors();
    } else {
      ++k.errors[std::min<int>(call.status.error_code(), 16)];
    }
  }

  // Once a second: calls/s, errors and latency of the last second.
  void Progress() {
    int64_t last = start_;
    std::unique_lock<std::mutex> lock(progress_mu_);
    while (!progress_cv_.wait_for(lock, std::chrono::seconds(1),
                                  [this] { return done_; })) {
      Stats interval;
      for (auto& w : workers_) {
        std::lock_guard<std::mutex> wl(w->mu);
        MergeStats(w->interval, &interval);
        for (KindStats& k : w->interval) k.Reset();
      }
      int64_t now = NowNanos();
      double secs = (now - last) / 1e9;
      // The phase the second mostly belonged to.
      int64_t mid = last + (now - last) / 2;
      last = now;
      if (!options_.progress) continue;
      KindStats t = Total(interval);
      const char* phase = mid < measure_start_ ? "warmup"
                          : mid < measure_end_ ? "measure"
                                               : "drain";
      std::cerr << absl::StrFormat(
          "[%5.1fs %-7s] %8.0f ok/s  errors %llu  p50 %.3fms  p99 %.3fms  max "
          "%.3fms  "
          "in flight %lld\n",
          (now - start_) / 1e9, phase, t.ok / secs,
          static_cast<unsigned long long>(t.error_count()),
          t.latency.Percentile(50) / 1e6, t.latency.Percentile(99) / 1e6,
          t.latency.max() / 1e6, static_cast<long long>(inflight_.load()));
    }
  }

  const Options options_;
  std::vector<Connection>* connections_;
  Workload* workload_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<int64_t> inflight_{0};
  int64_t start_ = 0, measure_start_ = 0, measure_end_ = 0;
  LatencyHistogram send_lag_;  // open loop: actual send - scheduled time
  std::mutex progress_mu_;
  std::condition_variable progress_cv_;
  bool done_ = false;  // guarded by progress_mu_
};

// ---- Readiness ----

// grpc.health.v1.Health/Check of the whole server: the ServingStatus
// (1 = SERVING), or -1 when the call fails. HealthCheckResponse is
// { ServingStatus status = 1; }, so SERVING is the two bytes 08 01.
int HealthStatus(Connection& conn) {
  grpc::CompletionQueue cq;
  HealthCall call;
  call.context.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(1));
  call.reader = conn.generic->PrepareUnaryCall(
      &call.context, "/grpc.health.v1.Health/Check", call.request, &cq);
  call.reader->StartCall();
  call.reader->Finish(&call.response, &call.status, &call);
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!call.status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!call.response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (bytes.empty()) return 0;  // status UNKNOWN is the default, not encoded
  if (bytes.size() < 2 || bytes[0] != 0x08) return -1;
  return bytes[1];
}

// Waits until the server answers SERVING (its Redis is up and a ruleset is
// loaded): measuring a server that cannot serve measures nothing.
bool WaitServing(Connection& conn, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (HealthStatus(conn) == 1) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// ---- Preload ----

// Creates contacts c0 .. c<N-1> (one identify event each) with TrackEvents
// batches, `connections` calls in flight. Returns false on any error.
bool Preload(std::vector<Connection>& connections, Workload& workload,
             absl::Duration deadline) {
  const int64_t n = workload.contacts();
  const int batch = std::max(1, std::min(workload.batch(), 500));
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> errors{0};
  int64_t start = NowNanos();
  std::vector<std::thread> threads;
  for (size_t c = 0; c < connections.size(); ++c) {
    threads.emplace_back([&, c] {
      while (true) {
        int64_t first = next.fetch_add(batch);
        if (first >= n) return;
        v1::TrackEventsRequest request;
        for (int64_t k = first; k < std::min(n, first + batch); ++k) {
          workload.FillIdentify(k, request.add_requests());
        }
        v1::TrackEventsResponse response;
        grpc::ClientContext context;
        // A batch of 500 events takes far longer than one call.
        context.set_deadline(std::chrono::system_clock::now() +
                             absl::ToChronoNanoseconds(deadline * 30));
        grpc::Status s =
            connections[c].journey->TrackEvents(&context, request, &response);
        if (!s.ok()) {
          std::cerr << "tappa-loadgen: preload: "
                    << kCodeNames[std::min<int>(s.error_code(), 16)] << " "
                    << s.error_message() << "\n";
          errors.fetch_add(request.requests_size());
          continue;
        }
        for (const auto& r : response.results()) {
          if (r.has_error()) {
            if (errors.fetch_add(1) == 0) {
              std::cerr << "tappa-loadgen: preload: " << r.error().message()
                        << "\n";
            }
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  double secs = (NowNanos() - start) / 1e9;
  std::cerr << absl::StrFormat(
      "tappa-loadgen: preloaded %d contacts in %.1fs (%.0f events/s), %d "
      "errors\n",
      n, secs, n / secs, errors.load());
  return errors.load() == 0;
}

// ---- Campaign: DecideBatch streams ----

// Runs --streams DecideBatch streams for the warm-up and the measured time:
// stream s decides for contacts c<s>, c<s+S>, ... (S streams) on a random
// placement (of --channel), with a writer thread that writes as fast as the
// server's flow control lets it and a reader thread (the caller's) that
// receives the answers. A decision's latency is from the client's Write
// call to its answer, the send time riding in request_id; it includes the
// wait in the stream (the server answers in completion order, and holds up
// to 1,000 of a stream's requests). Answers are counted when they arrive in
// the measured time; then the streams are cancelled rather than drained.
// With --requests, each stream sends its share and half-closes, every
// answer is read and counted, and `*seconds` is the whole run's time.
// Yields the number of streams that failed.
int RunCampaign(const Options& o, std::vector<Connection>* connections,
                const Workload& workload, Stats* stats, double* seconds) {
  const int64_t start = NowNanos();
  const bool fixed = o.requests > 0;
  const int64_t measure_start =
      fixed ? start : start + absl::ToInt64Nanoseconds(o.warmup);
  const int64_t measure_end =
      fixed ? std::numeric_limits<int64_t>::max()
            : measure_start + absl::ToInt64Nanoseconds(o.duration);
  std::mutex mu;
  std::atomic<int> failed{0};
  std::vector<std::thread> readers;
  for (int s = 0; s < o.streams; ++s) {
    readers.emplace_back([&, s] {
      Connection& conn = (*connections)[s % connections->size()];
      grpc::ClientContext context;
      // Generous: the stream ends when the writer stops and the answers are
      // in; the deadline only bounds a stuck server.
      context.set_deadline(
          std::chrono::system_clock::now() +
          (fixed ? std::chrono::hours(1)
                 : absl::ToChronoNanoseconds(o.warmup + o.duration +
                                             absl::Seconds(60))));
      // Stream s's share of --requests: requests s, s+S, s+2S, ...
      const int64_t share =
          fixed ? (o.requests - s + o.streams - 1) / o.streams : 0;
      auto stream = conn.decisions->DecideBatch(&context);
      std::thread writer([&] {
        std::mt19937_64 rng(o.seed * 1000003 + s);
        int64_t written = 0;
        for (int64_t k = s; fixed ? written < share : NowNanos() < measure_end;
             k += o.streams) {
          v1::DecideBatchRequest request;
          workload.FillCampaign(rng, k, &request);
          request.set_request_id(absl::StrCat(NowNanos()));
          // Corked: most writes only fill gRPC's buffer (buffer hint), every
          // 16th flushes, so the client spends one send per 16 requests.
          grpc::WriteOptions options;
          if (++written % 16 != 0) options.set_buffer_hint();
          if (!stream->Write(request, options)) break;
        }
        stream->WritesDone();
      });
      KindStats local;
      v1::DecideBatchResponse response;
      bool cancelled = false;
      while (stream->Read(&response)) {
        int64_t now = NowNanos();
        if (now >= measure_end) {
          // Not drained: the connection's buffers hold seconds of requests.
          context.TryCancel();
          cancelled = true;
          break;
        }
        if (now < measure_start) continue;
        int64_t sent = now;
        (void)absl::SimpleAtoi(response.request_id(), &sent);
        local.latency.Record(now - sent);
        if (response.has_error()) {
          int code = response.error().code();
          ++local.errors[code >= 0 && code < 17 ? code : 2];
        } else {
          ++local.ok;
          if (response.decision().degraded()) {
            ++local.degraded;
          } else {
            local.accepted.Record(now - sent);
          }
        }
      }
      writer.join();
      grpc::Status status = stream->Finish();
      if (!status.ok() &&
          !(cancelled && status.error_code() == grpc::StatusCode::CANCELLED)) {
        failed.fetch_add(1);
        std::cerr << "tappa-loadgen: DecideBatch stream " << s << ": "
                  << kCodeNames[std::min<int>(status.error_code(), 16)] << ": "
                  << status.error_message() << "\n";
      }
      std::lock_guard<std::mutex> lock(mu);
      (*stats)[kDecideBatch].Merge(local);
    });
  }
  for (std::thread& t : readers) t.join();
  *seconds =
      fixed ? (NowNanos() - start) / 1e9 : absl::ToDoubleSeconds(o.duration);
  return failed.load();
}

// ---- Reporting ----

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  auto us = [](int64_t ns) { return std::round(ns / 10.0) / 100.0; };
  return {{"count", h.count()},
          {"mean_us", us(static_cast<int64_t>(h.mean()))},
          {"p50_us", us(h.Percentile(50))},
          {"p90_us", us(h.Percentile(90))},
          {"p99_us", us(h.Percentile(99))},
          {"p99_9_us", us(h.Percentile(99.9))},
          {"max_us", us(h.max())}};
}

nlohmann::json KindJson(const KindStats& k, double secs) {
  nlohmann::json errors = nlohmann::json::object();
  for (size_t i = 0; i < k.errors.size(); ++i) {
    if (k.errors[i] != 0) errors[kCodeNames[i]] = k.errors[i];
  }
  return {{"ok", k.ok},
          {"throughput_per_s", std::round(k.ok / secs)},
          {"items_per_s", std::round(k.items / secs)},
          {"errors", errors},
          {"error_count", k.error_count()},
          {"item_errors", k.item_errors},
          {"degraded", k.degraded},
          {"latency", LatencyJson(k.latency)},
          {"accepted_latency", LatencyJson(k.accepted)}};
}

void PrintTable(const Options& o, const std::string& scenario,
                const Stats& stats, const LatencyHistogram& send_lag,
                double secs) {
  std::cout << "scenario " << scenario << ", ";
  if (scenario == "campaign") {
    std::cout << o.streams << " DecideBatch streams";
    if (o.requests > 0) std::cout << ", " << o.requests << " requests";
  } else if (o.mode == "open") {
    std::cout << o.mode << " loop, ";
    std::cout << o.rate << " calls/s offered ("
              << (o.poisson ? "poisson" : "constant") << ")";
  } else {
    std::cout << o.mode << " loop, " << o.concurrency << " calls in flight";
  }
  if (scenario == "campaign" && o.requests > 0) {
    std::cout << ", measured " << absl::StrFormat("%.1fs", secs)
              << " from the first request to the last answer\n";
  } else {
    std::cout << ", measured " << absl::FormatDuration(o.duration) << " after "
              << absl::FormatDuration(o.warmup) << " warm-up\n";
  }
  std::cout << absl::StrFormat("%-15s %10s %10s %9s %9s %9s %9s %9s %8s\n",
                               "method", "ok", "calls/s", "p50 ms", "p90 ms",
                               "p99 ms", "p99.9 ms", "max ms", "errors");
  auto row = [&](const char* name, const KindStats& k) {
    const LatencyHistogram& h = k.latency;
    std::cout << absl::StrFormat(
        "%-15s %10d %10.0f %9.3f %9.3f %9.3f %9.3f %9.3f %8d\n", name, k.ok,
        k.ok / secs, h.Percentile(50) / 1e6, h.Percentile(90) / 1e6,
        h.Percentile(99) / 1e6, h.Percentile(99.9) / 1e6, h.max() / 1e6,
        k.error_count());
  };
  int used = 0;
  for (int i = 0; i < kKinds; ++i) {
    if (stats[i].ok + stats[i].error_count() == 0) continue;
    row(kKindNames[i], stats[i]);
    ++used;
  }
  KindStats total = Total(stats);
  if (used > 1) row("all", total);
  for (size_t i = 0; i < total.errors.size(); ++i) {
    if (total.errors[i] != 0) {
      std::cout << "  errors " << kCodeNames[i] << ": " << total.errors[i]
                << "\n";
    }
  }
  if (total.degraded != 0)
    std::cout << "  degraded answers: " << total.degraded << "\n";
  if (total.accepted.count() != 0 &&
      total.accepted.count() != total.latency.count()) {
    const LatencyHistogram& h = total.accepted;
    std::cout << absl::StrFormat(
        "  accepted (OK, not degraded): %d, p50 %.3f p90 %.3f p99 %.3f "
        "p99.9 %.3f max %.3f ms\n",
        h.count(), h.Percentile(50) / 1e6, h.Percentile(90) / 1e6,
        h.Percentile(99) / 1e6, h.Percentile(99.9) / 1e6, h.max() / 1e6);
  }
  if (stats[kTrackEvents].ok != 0) {
    std::cout << absl::StrFormat("  events: %.0f/s, %d refused in batches\n",
                                 stats[kTrackEvents].items / secs,
                                 stats[kTrackEvents].item_errors);
  }
  if (o.mode == "open" && scenario != "campaign") {
    std::cout << absl::StrFormat(
        "  send lag (client-side, included in latencies): p99 %.3fms, max "
        "%.3fms\n",
        send_lag.Percentile(99) / 1e6, send_lag.max() / 1e6);
  }
}

int Main() {
  Options o;
  o.mode = absl::GetFlag(FLAGS_mode);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.poisson = absl::GetFlag(FLAGS_arrival) == "poisson";
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  if (o.max_inflight == 0)
    o.max_inflight = 256 * absl::GetFlag(FLAGS_connections);
  o.duration = absl::GetFlag(FLAGS_duration);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.deadline = absl::GetFlag(FLAGS_deadline);
  o.threads = std::max(1, absl::GetFlag(FLAGS_threads));
  o.progress = absl::GetFlag(FLAGS_progress);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.streams = absl::GetFlag(FLAGS_streams);
  o.requests = absl::GetFlag(FLAGS_requests);
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  const std::string arrival = absl::GetFlag(FLAGS_arrival);

  if (o.mode != "open" && o.mode != "closed") {
    std::cerr << "tappa-loadgen: --mode must be open or closed\n";
    return 2;
  }
  if (scenario != "web" && scenario != "nba" && scenario != "track" &&
      scenario != "outcome" && scenario != "ingest" && scenario != "empty" &&
      scenario != "campaign") {
    std::cerr << "tappa-loadgen: --scenario must be web, nba, track, outcome, "
                 "ingest, empty or campaign\n";
    return 2;
  }
  if (scenario == "campaign" && o.streams <= 0) {
    std::cerr << "tappa-loadgen: --streams must be positive\n";
    return 2;
  }
  if (arrival != "constant" && arrival != "poisson") {
    std::cerr << "tappa-loadgen: --arrival must be constant or poisson\n";
    return 2;
  }
  if ((o.mode == "open" && o.rate <= 0) ||
      (o.mode == "closed" && o.concurrency <= 0) ||
      absl::GetFlag(FLAGS_contacts) <= 0 || absl::GetFlag(FLAGS_batch) <= 0 ||
      absl::GetFlag(FLAGS_connections) <= 0 || o.max_inflight <= 0) {
    std::cerr << "tappa-loadgen: --rate, --concurrency, --contacts, --batch, "
                 "--connections "
                 "and --max_inflight must be positive\n";
    return 2;
  }

  // Placements and channels from the ruleset: requests the server accepts.
  std::vector<PlacementRef> placements;
  std::vector<std::string> channels;
  const std::string rules = absl::GetFlag(FLAGS_rules);
  const bool needs_rules = scenario != "empty" || absl::GetFlag(FLAGS_preload);
  if (needs_rules) {
    if (rules.empty()) {
      std::cerr << "tappa-loadgen: --rules is required for scenario "
                << scenario << " and --preload\n";
      return 2;
    }
    auto loaded = ruleset::LoadRulesetFile(rules);
    if (!loaded.ok()) {
      std::cerr << "tappa-loadgen: " << rules << ": "
                << loaded.status().message() << "\n";
      return 2;
    }
    const ruleset::Ruleset& rs = **loaded;
    for (const auto& c : rs.channels) channels.push_back(c.id);
    const std::string only = absl::GetFlag(FLAGS_channel);
    for (const auto& p : rs.placements) {
      const std::string& ch = rs.channels[p.channel].id;
      if (only.empty() || ch == only) placements.push_back({p.id, ch});
    }
    if (placements.empty() || channels.empty()) {
      std::cerr << "tappa-loadgen: " << rules << " has no placements"
                << (only.empty() ? "" : " on channel " + only) << "\n";
      return 2;
    }
  }

  std::vector<Connection> connections(absl::GetFlag(FLAGS_connections));
  for (Connection& c : connections) {
    c.channel = MakeChannel(absl::GetFlag(FLAGS_target));
    c.decisions = v1::DecisionService::NewStub(c.channel);
    c.journey = v1::JourneyService::NewStub(c.channel);
    c.generic = std::make_unique<grpc::GenericStub>(c.channel);
  }
  if (!WaitServing(connections[0], absl::Seconds(20))) {
    std::cerr << "tappa-loadgen: " << absl::GetFlag(FLAGS_target)
              << " did not answer SERVING to a health check within 20s\n";
    return 1;
  }
  for (Connection& c : connections) {
    if (!c.channel->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::seconds(5))) {
      std::cerr << "tappa-loadgen: cannot connect to "
                << absl::GetFlag(FLAGS_target) << "\n";
      return 1;
    }
  }

  const std::string run_id =
      absl::StrCat("lg", getpid(), "-", absl::ToUnixMillis(absl::Now()));
  Workload workload(scenario, absl::GetFlag(FLAGS_contacts),
                    absl::GetFlag(FLAGS_zipf), placements, channels,
                    absl::GetFlag(FLAGS_batch), run_id);
  workload.set_alias_namespace(absl::GetFlag(FLAGS_contact_alias));

  if (absl::GetFlag(FLAGS_preload) &&
      !Preload(connections, workload, o.deadline)) {
    return 1;
  }
  if (o.duration <= absl::ZeroDuration()) return 0;

  // The client's own CPU time: on a shared 2-core box, what the load
  // generator burns is taken from the server.
  auto cpu_seconds = [] {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
           (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  double cpu_before = cpu_seconds();
  Stats stats;
  double secs = 0;
  LatencyHistogram send_lag;
  int failed_streams = 0;
  if (scenario == "campaign") {
    failed_streams = RunCampaign(o, &connections, workload, &stats, &secs);
  } else {
    LoadGenerator generator(o, &connections, &workload);
    generator.Run();
    stats = generator.Measured();
    secs = generator.measured_seconds();
    send_lag = generator.send_lag();
  }
  double client_cpu = cpu_seconds() - cpu_before;
  PrintTable(o, scenario, stats, send_lag, secs);
  if (failed_streams != 0) {
    std::cout << "  failed DecideBatch streams: " << failed_streams << "\n";
  }

  KindStats total = Total(stats);
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty()) {
    nlohmann::json j;
    j["scenario"] = scenario;
    j["mode"] = scenario == "campaign" ? "stream" : o.mode;
    j["streams"] = scenario == "campaign" ? o.streams : 0;
    j["failed_streams"] = failed_streams;
    j["target"] = absl::GetFlag(FLAGS_target);
    const bool loop = scenario != "campaign";
    j["offered_rate"] = loop && o.mode == "open" ? o.rate : 0;
    j["arrival"] = arrival;
    j["concurrency"] = loop && o.mode == "closed" ? o.concurrency : 0;
    j["connections"] = connections.size();
    j["threads"] = o.threads;
    j["duration_s"] = secs;
    j["warmup_s"] = o.requests > 0 ? 0 : absl::ToDoubleSeconds(o.warmup);
    j["requests"] = o.requests;
    j["contacts"] = absl::GetFlag(FLAGS_contacts);
    j["zipf"] = absl::GetFlag(FLAGS_zipf);
    j["channel"] = absl::GetFlag(FLAGS_channel);
    j["client_cpu_s"] = std::round(client_cpu * 100) / 100;
    j["total"] = KindJson(total, secs);
    j["by_method"] = nlohmann::json::object();
    for (int i = 0; i < kKinds; ++i) {
      if (stats[i].ok + stats[i].error_count() != 0) {
        j["by_method"][kKindNames[i]] = KindJson(stats[i], secs);
      }
    }
    if (loop && o.mode == "open") {
      j["send_lag"] = LatencyJson(send_lag);
    }
    std::ofstream out(json_path);
    out << j.dump(2) << "\n";
    if (!out) {
      std::cerr << "tappa-loadgen: cannot write " << json_path << "\n";
      return 1;
    }
  }
  // Exit status 3: the harness ran but some calls failed (the run script
  // reports it rather than stopping).
  return total.error_count() + total.item_errors + failed_streams == 0 ? 0 : 3;
}

}  // namespace
}  // namespace tappa::loadtests

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for tappa-server: open- or closed-loop gRPC load with "
      "full latency "
      "distributions. See loadtests/README.md.");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG: its deadlock detector would
  // run on every lock of gRPC's (a few % of the client's CPU).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return tappa::loadtests::Main();
}
