// Load shedding: a bound on the calls a server works on at once, that
// tightens by itself when calls start to wait, and no work for calls whose
// deadline has already passed.
//
// Without it, a server offered more than it can serve queues without bound:
// every call waits behind the ones before it, answers come after their
// deadlines (work wasted on calls nobody waits for), memory grows, and the
// server does not recover until the load drops far below its capacity
// (measured: loadtests/README.md). With it, the calls beyond the bound are
// refused at once (RESOURCE_EXHAUSTED, or for NextBestAction the
// placement's fallback flagged degraded), costing microseconds, and the
// accepted ones keep a bounded latency.
//
// The bound adapts (CoDel's idea applied to a concurrency limit): when
// every call completed within an interval took longer than the threshold,
// there is a standing queue (a slow call alone cannot do it: the fastest
// call of the interval was slow too), so the limit drops by a quarter;
// while the fastest calls are quick, it grows back by an eighth per
// interval, up to `max_inflight`. The threshold is `target`, or twice the
// fastest call seen over the last `baseline_intervals` when that is more:
// a uniformly slow store (a Redis 15 ms away) is the calls' baseline, not a
// queue, and must not throttle the server. A fixed bound large enough for the
// busiest moment lets hundreds of calls queue behind a saturated CPU (Little's
// law: 1,000 in flight at 5,000 calls/s is 200 ms each); the adaptive one keeps
// just enough in flight to keep the server busy.
//
// Thread safety: thread-safe; the interval's bookkeeping is lock-free.
#ifndef TAPPA_SERVER_SERVICE_ADMISSION_H_
#define TAPPA_SERVER_SERVICE_ADMISSION_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tappa::server {

class Admission {
 public:
  struct Options {
    // The most calls in flight; <= 0: no bound (and no adaptation).
    int max_inflight = 1000;
    // The limit never drops below this.
    int min_inflight = 16;
    // A standing queue: the fastest call of an interval took longer.
    absl::Duration target = absl::Milliseconds(10);
    absl::Duration interval = absl::Milliseconds(100);
    // The baseline is the fastest call over this many intervals.
    int baseline_intervals = 50;
    // Told each new limit (for a metric); called by the thread that closes
    // an interval, so it must be cheap and thread-safe.
    std::function<void(int limit)> on_limit;
  };

  // A call being worked on; releases its place when destroyed (keep it in
  // the call's completion callbacks).
  class Slot {
   public:
    Slot(Admission* admission, int64_t start_ns)
        : admission_(admission), start_ns_(start_ns) {}
    ~Slot() { admission_->Leave(start_ns_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    Admission* admission_;
    int64_t start_ns_;
  };

  explicit Admission(Options options)
      : options_(std::move(options)),
        limit_(options_.max_inflight),
        interval_end_ns_(Nanos(absl::Now() + options_.interval)) {
    if (options_.on_limit) options_.on_limit(options_.max_inflight);
  }
  explicit Admission(int max_inflight)
      : Admission(Options{.max_inflight = max_inflight}) {}

  // A slot, or null when the current limit of calls is in flight.
  std::shared_ptr<Slot> TryEnter() {
    int n = inflight_.fetch_add(1, std::memory_order_relaxed);
    if (options_.max_inflight > 0 &&
        n >= limit_.load(std::memory_order_relaxed)) {
      inflight_.fetch_sub(1, std::memory_order_relaxed);
      return nullptr;
    }
    return std::make_shared<Slot>(this, Nanos(absl::Now()));
  }

  int inflight() const { return inflight_.load(std::memory_order_relaxed); }
  int max_inflight() const { return options_.max_inflight; }
  // The bound in force now (max_inflight when there is no standing queue).
  int limit() const { return limit_.load(std::memory_order_relaxed); }

  // The status of a refused call.
  absl::Status Overloaded() const {
    return absl::ResourceExhaustedError(
        "the server is overloaded (calls are waiting: at its bound of calls "
        "in flight); retry with exponential backoff");
  }

 private:
  static int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }

  void Leave(int64_t start_ns) {
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    if (options_.max_inflight <= 0) return;
    const int64_t now = Nanos(absl::Now());
    // The interval's fastest call.
    const int64_t took = now - start_ns;
    int64_t fastest = fastest_ns_.load(std::memory_order_relaxed);
    while (took < fastest && !fastest_ns_.compare_exchange_weak(
                                 fastest, took, std::memory_order_relaxed)) {
    }
    int64_t end = interval_end_ns_.load(std::memory_order_relaxed);
    if (now < end) return;
    // One caller closes the interval; the others go on.
    const int64_t next = now + absl::ToInt64Nanoseconds(options_.interval);
    if (!interval_end_ns_.compare_exchange_strong(end, next,
                                                  std::memory_order_relaxed)) {
      return;
    }
    fastest = fastest_ns_.exchange(std::numeric_limits<int64_t>::max(),
                                   std::memory_order_relaxed);
    absl::MutexLock lock(&closing_mu_);  // once per interval: uncontended
    recent_fastest_.push_back(fastest);
    while (recent_fastest_.size() >
           static_cast<size_t>(std::max(1, options_.baseline_intervals))) {
      recent_fastest_.pop_front();
    }
    const int64_t baseline =
        *std::min_element(recent_fastest_.begin(), recent_fastest_.end());
    const int64_t threshold =
        std::max(absl::ToInt64Nanoseconds(options_.target),
                 baseline > std::numeric_limits<int64_t>::max() / 2
                     ? std::numeric_limits<int64_t>::max()
                     : 2 * baseline);
    const int limit = limit_.load(std::memory_order_relaxed);
    const int floor =
        std::clamp(options_.min_inflight, 1, options_.max_inflight);
    int next_limit = limit;
    if (fastest > threshold) {
      next_limit = std::max(floor, limit - limit / 4);
    } else if (limit < options_.max_inflight) {
      next_limit = std::min(options_.max_inflight, limit + limit / 8 + 1);
    }
    if (next_limit == limit) return;
    limit_.store(next_limit, std::memory_order_relaxed);
    if (options_.on_limit) options_.on_limit(next_limit);
  }

  const Options options_;
  std::atomic<int> inflight_{0};
  std::atomic<int> limit_;
  std::atomic<int64_t> interval_end_ns_;
  std::atomic<int64_t> fastest_ns_{std::numeric_limits<int64_t>::max()};
  // The fastest call of each recent interval (the baseline's window).
  absl::Mutex closing_mu_;
  std::deque<int64_t> recent_fastest_ ABSL_GUARDED_BY(closing_mu_);
};

// DEADLINE_EXCEEDED when `deadline` is already past at `now`: the client
// has given up, so the call is not worth any work.
inline absl::Status CheckNotExpired(absl::Time deadline, absl::Time now) {
  if (deadline <= now) {
    return absl::DeadlineExceededError(
        "the call's deadline passed before the server could start it");
  }
  return absl::OkStatus();
}

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_ADMISSION_H_
