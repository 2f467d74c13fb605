// DecisionService.DecideBatch: a bidirectional stream of decisions for
// outbound campaigns. Each request is decided as NextBestAction would decide
// it (DecideNextBestAction, without explanation), many at once, so the Redis
// client pipelines their reads; responses are written in completion order.
//
// Flow control: a stream holds at most kMaxPending requests that were read
// but whose response is not yet written (decisions waiting to start or in
// progress, responses queued or being written). At the bound the reactor
// stops reading (no StartRead), so HTTP/2 flow control slows the client
// down; every completed write makes room for one more read. Memory is
// therefore bounded by kMaxPending requests per stream, whatever the
// stream's length.
//
// Of those, only a few decisions are in progress at once: kMaxRunning over
// every stream of the server, shared evenly by the open streams (each gets
// at least one; a stream with nothing to decide takes no share), each
// holding an Admission slot. The others wait for their turn, and a
// decision's time budget (--batch_decision_budget, 250 ms) starts when it
// starts. Why so few: a decision's latency is the number in progress
// divided by the throughput (Little's law), and queueing more behind the
// Redis client's loop threads, which run every decision after its read,
// adds latency without throughput: measured (one stream, one loop, the
// then 20 ms budget), 512 in progress degraded 63% of the answers, 128
// about 11-17%, 64 about 0.2-3%; with two loops and the 250 ms budget
// (before jemalloc), 64 and 128 in progress both gave 19.7-21.5k
// decisions/s with no degraded answer. 64 reads in flight keep the
// Redis connections' pipelines full and add at most a few milliseconds of
// queueing to the NextBestAction calls served meanwhile; one stream cannot
// take every slot of --max_inflight and shed the interactive calls.
//
// Threads: reads and writes complete on gRPC's callback threads, decisions
// on the Redis client's loop threads. One mutex guards the counters and the
// queues; each event updates the state under it (Settle) and collects the
// gRPC operations and decision starts to perform, which run after it is
// released (Perform), since gRPC may run reactions on other threads that
// take it.
//
// Lifetime: the stream is finished (Finish) only once no decision is in
// progress, no write is outstanding and, unless the stream was cancelled,
// every response is written. The decisions' callbacks capture `this`; since
// Finish comes after the last of them has taken its turn (and whoever calls
// Finish touches nothing of the reactor after it), OnDone, which deletes the
// reactor, cannot come before a callback that still needs it.
#include <algorithm>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/service/decision_flow.h"
#include "server/service/decision_service.h"
#include "server/service/refused_stream.h"
#include "server/service/status_util.h"
#include "server/service/validation.h"

namespace tappa::server {
namespace {

using tappa::v1::DecideBatchRequest;
using tappa::v1::DecideBatchResponse;
using tappa::v1::NextBestActionResponse;

// The bound of a stream's decisions in progress or waiting to be written
// (promised by the API: decision_service.proto).
constexpr int kMaxPending = 1000;

// The most DecideBatch decisions in progress at once in the server, shared
// by the open streams (see the file comment).
constexpr int kMaxRunning = 64;

// DecideBatch streams of this process with decisions waiting or running.
std::atomic<int> busy_streams{0};

// A busy stream's share of kMaxRunning: at least one.
int RunningLimit() {
  int busy = std::max(1, busy_streams.load(std::memory_order_relaxed));
  return std::max(1, kMaxRunning / busy);
}

// The longest request_id (decision_service.proto).
constexpr size_t kMaxRequestIdBytes = 128;

// The stream's own deadline, or InfiniteFuture when the client set none
// (gRPC reports "none" as a time in the far future).
absl::Time StreamDeadline(const grpc::ServerContext* context) {
  auto deadline = context->deadline();
  if (deadline >=
      std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// `status` as the response's error; INVALID_ARGUMENT messages start with
// the field at fault ("placement: ..."), which also goes into `field`.
void SetError(const absl::Status& status, DecideBatchResponse* response) {
  response->clear_decision();
  tappa::v1::Status* error = response->mutable_error();
  error->set_code(static_cast<int>(status.code()));
  error->set_message(std::string(status.message()));
  size_t colon = status.message().find(':');
  if (status.code() == absl::StatusCode::kInvalidArgument &&
      colon != absl::string_view::npos) {
    error->set_field(std::string(status.message().substr(0, colon)));
  }
}

class DecideBatchReactor final
    : public rpc::BidiReactor<DecideBatchRequest, DecideBatchResponse> {
 public:
  // `runtime` must outlive the reactor and every decision it starts (it is
  // the service's, which outlives the server).
  DecideBatchReactor(const Runtime& runtime, grpc::ServerContext* context)
      : runtime_(runtime),
        context_(context),
        stream_start_(absl::Now()),
        stream_deadline_(StreamDeadline(context)) {
    reading_ = true;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    Actions actions;
    // Copies what it needs: `request_` is free again after this.
    Item item = ok ? Validate(request_) : Item();
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (!ok) {
        // Half-close (or a broken stream, which OnCancel also reports).
        half_closed_ = true;
      } else if (!cancelled_) {  // else nobody will get the answer
        AddPending(1);
        if (item.decision != nullptr) {
          waiting_.push_back(std::move(item));
        } else {
          queue_.push_back(std::move(item.response));
        }
      }
      Settle(&actions);
    }
    Perform(std::move(actions));
  }

  void OnWriteDone(bool ok) override {
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      writing_.reset();
      AddPending(-1);
      // A failed write: the stream is broken (cancelled, or the client is
      // gone); nothing more can be written.
      if (!ok) Cancel();
      Settle(&actions);
    }
    Perform(std::move(actions));
  }

  void OnCancel() override {
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      Cancel();
      Settle(&actions);
    }
    Perform(std::move(actions));
  }

  // Records the stream, now that whether the client cancelled it is known
  // for sure: on the async API a cancellation can show as the end of the
  // reads before ServerContext::IsCancelled says so, and the stream then
  // finishes as if half-closed.
  void OnDone() override {
    const grpc::StatusCode code =
        context_->IsCancelled() ? grpc::StatusCode::CANCELLED : finished_code_;
    runtime_.metrics->RecordRequest(Method::kDecideBatch,
                                    static_cast<int>(code),
                                    absl::Now() - stream_start_);
    delete this;
  }

 private:
  // A request taken: a decision to run (`decision` set), or an answer
  // already known (an error).
  struct Item {
    std::shared_ptr<DecideBatchResponse> response;
    std::shared_ptr<Decision> decision;
  };

  // What to do once the mutex is released.
  struct Actions {
    std::shared_ptr<DecideBatchResponse> write;
    bool read = false;
    std::vector<Item> start;  // counted in running_ already
    bool finish = false;
    grpc::Status status;  // with `finish`
  };

  // Validates one request: an Item with its decision to run, or with its
  // error response.
  Item Validate(const DecideBatchRequest& request) {
    Item item;
    item.response = std::make_shared<DecideBatchResponse>();
    // An over-long request_id is not echoed: it would let a client make the
    // server hold up to a message's size per pending response.
    if (request.request_id().size() <= kMaxRequestIdBytes) {
      item.response->set_request_id(request.request_id());
    }
    auto d = std::make_shared<Decision>();
    d->serving = runtime_.rulesets->Get();
    absl::Status status = absl::OkStatus();
    if (d->serving == nullptr) {
      status = absl::UnavailableError("no ruleset is loaded");
    }
    if (std::string error = api::DecodeError(request);
        status.ok() && !error.empty()) {
      status = absl::InvalidArgumentError(error);
    }
    if (status.ok() && request.request_id().size() > kMaxRequestIdBytes) {
      status = absl::InvalidArgumentError("request_id: at most 128 bytes");
    }
    if (status.ok()) {
      status =
          ValidateDecisionRequest(*d->serving->ruleset, request, &d->request);
    }
    if (status.ok()) status = ValidateId("contact_id", request.contact_id());
    if (!status.ok()) {
      SetError(status, item.response.get());
      return item;
    }
    d->contact_id = request.contact_id();
    d->explain = false;
    item.decision = std::move(d);
    return item;
  }

  // Starts the decision of `item`. Yields its response when it is answered
  // at once (shed, or the stream's deadline passed); else null, and
  // OnDecided gets it later.
  std::shared_ptr<DecideBatchResponse> Start(Item item) {
    std::shared_ptr<Decision> d = std::move(item.decision);
    std::shared_ptr<DecideBatchResponse> response = std::move(item.response);
    d->now = runtime_.clock->Now();
    d->seed = NewDecisionSeed();
    // The decision budget runs from the decision's start, not from the
    // request's arrival: waiting for its turn is the stream's flow control,
    // not the decision's time. The stream's deadline, when set, bounds it.
    absl::Time start = absl::Now();
    absl::Time deadline =
        std::min(start + runtime_.batch_decision_budget, stream_deadline_);
    const ruleset::Ruleset& rs = *d->serving->ruleset;
    NextBestActionResponse* decision = response->mutable_decision();
    decision->set_contact_id(d->contact_id);
    decision->set_ruleset_version(rs.version);
    *decision->mutable_decision_time() = TimeToProto(d->now);

    std::shared_ptr<Admission::Slot> slot;
    if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
      if (s.code() == absl::StatusCode::kResourceExhausted) {
        // Shed without reading, as NextBestAction: the fallback, at once.
        AnswerDegraded(runtime_, *d, DegradedReason::kOverloaded, decision);
      } else {
        SetError(s, response.get());
      }
      return response;
    }
    DecideNextBestAction(
        runtime_, std::move(d), ReadDeadline(start, deadline), deadline,
        decision,
        // The slot is held until the decision is done (by this callback's
        // copies); `response` lives as long as the callback.
        [this, response, slot](const absl::Status& status) {
          if (!status.ok()) SetError(status, response.get());
          OnDecided(response);
        });
    return nullptr;
  }

  // A decision is done (on a Redis client loop thread).
  void OnDecided(std::shared_ptr<DecideBatchResponse> response) {
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      Decided(std::move(response));
      Settle(&actions);
    }
    Perform(std::move(actions));
  }

  void Decided(std::shared_ptr<DecideBatchResponse> response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    --running_;
    if (cancelled_) {
      AddPending(-1);
    } else {
      queue_.push_back(std::move(response));
    }
  }

  // Moves the stream forward after any change: the next write, the next
  // read, decisions to start, or the end. Each is taken on (under the
  // mutex) by exactly one caller.
  void Settle(Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finishing_) return;
    if (!cancelled_ && writing_ == nullptr && !queue_.empty()) {
      writing_ = std::move(queue_.front());
      queue_.pop_front();
      actions->write = writing_;
    }
    if (!cancelled_ && !half_closed_ && !reading_ && pending_ < kMaxPending) {
      reading_ = true;
      actions->read = true;
    }
    // The stream's share changes with the number of busy streams.
    if (bool busy = running_ > 0 || !waiting_.empty(); busy != busy_) {
      busy_ = busy;
      busy_streams.fetch_add(busy ? 1 : -1, std::memory_order_relaxed);
    }
    const int limit = RunningLimit();
    while (!cancelled_ && running_ < limit && !waiting_.empty()) {
      ++running_;
      actions->start.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    // Every operation started must be over before Finish: the reactor may
    // be deleted right after it. A read outstanding when the stream is
    // cancelled completes (ok = false) by itself.
    if (running_ > 0 || writing_ != nullptr || reading_) return;
    if (!cancelled_ && !(half_closed_ && queue_.empty() && waiting_.empty())) {
      return;
    }
    finishing_ = true;
    actions->finish = true;
    // What the client sees (and the metric counts). A cancellation or the
    // deadline may first show as the end of the reads, as if half-closed.
    if (absl::Now() >= stream_deadline_) {
      actions->status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                     "the stream's deadline passed");
    } else if (cancelled_ || context_->IsCancelled()) {
      actions->status =
          grpc::Status(grpc::StatusCode::CANCELLED, "the stream was cancelled");
    } else {
      actions->status = grpc::Status::OK;
    }
  }

  // Performs what Settle took on, without the mutex. Decisions answered at
  // once settle again here (a loop, not recursion: a run of shed decisions
  // must not grow the stack). Finish comes last, and then the reactor may
  // be gone.
  void Perform(Actions actions) {
    while (true) {
      if (actions.write != nullptr) StartWrite(actions.write.get());
      if (actions.read) StartRead(&request_);
      std::vector<std::shared_ptr<DecideBatchResponse>> answered;
      for (Item& item : actions.start) {
        if (auto response = Start(std::move(item))) {
          answered.push_back(std::move(response));
        }
      }
      if (answered.empty()) break;
      actions = Actions();
      absl::MutexLock lock(&mu_);
      for (auto& response : answered) Decided(std::move(response));
      Settle(&actions);
    }
    if (actions.finish) FinishStream(actions.status);
  }

  // No more reads, writes or decision starts; what waits is dropped.
  void Cancel() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    cancelled_ = true;
    AddPending(-static_cast<int>(queue_.size() + waiting_.size()));
    queue_.clear();
    waiting_.clear();
  }

  void AddPending(int n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (n == 0) return;
    pending_ += n;
    runtime_.metrics->AddDecideBatchPending(n);
  }

  // Finishes the stream (OnDone records it); the reactor may be deleted as
  // soon as Finish is called, so nothing of it is touched afterwards.
  void FinishStream(const grpc::Status& status) {
    finished_code_ = status.error_code();
    Finish(status);
  }

  const Runtime& runtime_;
  grpc::ServerContext* const context_;  // valid until OnDone
  const absl::Time stream_start_;
  const absl::Time stream_deadline_;
  // The read buffer: only touched between a StartRead and its OnReadDone.
  DecideBatchRequest request_;

  absl::Mutex mu_;
  // Requests read whose response is not written yet (decisions waiting or
  // running, responses queued or being written); at most kMaxPending.
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  // Decisions started whose callback has not run yet; at most the stream's
  // RunningLimit() when they started.
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  // Valid requests waiting for their decision to start, in arrival order.
  std::deque<Item> waiting_ ABSL_GUARDED_BY(mu_);
  // Finished responses waiting for their write, in completion order.
  std::deque<std::shared_ptr<DecideBatchResponse>> queue_ ABSL_GUARDED_BY(mu_);
  // The response being written (gRPC allows one write at a time).
  std::shared_ptr<DecideBatchResponse> writing_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;      // a StartRead outstanding
  bool half_closed_ ABSL_GUARDED_BY(mu_) = false;  // the client is done
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;    // nothing more is written
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;    // Finish was taken on
  // The status Finish sent: written before Finish, read in OnDone.
  grpc::StatusCode finished_code_ = grpc::StatusCode::OK;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // counted in busy_streams
};

}  // namespace

rpc::BidiReactor<DecideBatchRequest, DecideBatchResponse>*
DecisionServiceImpl::DecideBatch(grpc::ServerContext* context) {
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kDecide);
      !caller.ok()) {
    runtime_.metrics->RecordRequest(Method::kDecideBatch,
                                    static_cast<int>(caller.status().code()),
                                    absl::ZeroDuration());
    return new RefusedStream<
        rpc::BidiReactor<DecideBatchRequest, DecideBatchResponse>>(
        caller.status());
  }
  return new DecideBatchReactor(runtime_, context);
}

}  // namespace tappa::server
