// Load shedding: a bound on the calls a server works on at once, and no work
// for calls whose deadline has already passed.
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
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_ADMISSION_H_
#define TAPPA_SERVER_SERVICE_ADMISSION_H_

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tappa::server {

class Admission {
 public:
  // A call being worked on; releases its place when destroyed (keep it in
  // the call's completion callbacks).
  class Slot {
   public:
    explicit Slot(Admission* admission) : admission_(admission) {}
    ~Slot() { admission_->inflight_.fetch_sub(1, std::memory_order_relaxed); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    Admission* admission_;
  };

  // `max_inflight` <= 0: no bound.
  explicit Admission(int max_inflight) : max_(max_inflight) {}

  // A slot, or null when `max_inflight` calls are in flight.
  std::shared_ptr<Slot> TryEnter() {
    int n = inflight_.fetch_add(1, std::memory_order_relaxed);
    if (max_ > 0 && n >= max_) {
      inflight_.fetch_sub(1, std::memory_order_relaxed);
      return nullptr;
    }
    return std::make_shared<Slot>(this);
  }

  int inflight() const { return inflight_.load(std::memory_order_relaxed); }
  int max_inflight() const { return max_; }

  // The status of a refused call.
  absl::Status Overloaded() const {
    return absl::ResourceExhaustedError(
        "the server is overloaded (at its bound of calls in flight); retry "
        "with exponential backoff");
  }

 private:
  const int max_;
  std::atomic<int> inflight_{0};
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
