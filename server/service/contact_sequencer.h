// Runs tasks for the same contact in submission order and tasks for
// different contacts concurrently. The server uses it so that its own events
// for one contact never race each other: optimistic-locking conflicts then
// only come from other writers (replicas, follow-ups firing, merges).
//
// One task of a contact runs at a time. A task may also Release() the
// contact before it is done: it has sent its write, and the next task may
// start and send its own behind it while the first is in flight (at most
// `max_in_flight` in flight). The caller keeps their order in Redis (one
// connection per contact, writes chained by version). When a released
// task's write fails, the caller calls Break(): no new task starts while
// one is in flight. Tasks that cannot go on behind the writes in flight
// (theirs failed, or they lack what they would start from) are handed back
// with Defer(): they run again once none is in flight, in the contact's
// order (each task's number, from Run()), one at a time, before the tasks
// that never started; pipelining resumes once they are through.
//
// A task is started on the thread that submits it (when the contact is
// free), or on the thread that calls Release() or Done(). Tasks must not
// block; each must eventually lead to exactly one Done(contact, released).
//
// A task may be refused instead of queued (the caller sheds the request):
// when `max_waiting` tasks already wait behind the contact's running one,
// or when the caller's `may_wait` says the wait is too long. A contact sent
// events faster than they are applied (a bot, a replayed backlog, the load
// tests' hottest contacts) would otherwise queue without bound, every
// queued event past its deadline by the time its turn came.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_
#define TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tappa::server {

class ContactSequencer {
 public:
  using Task = absl::AnyInvocable<void()>;

  explicit ContactSequencer(size_t max_waiting, int max_in_flight = 1)
      : max_waiting_(max_waiting), max_in_flight_(max_in_flight) {}

  // Runs `task` now if the contact is free (no task running, none waiting,
  // and nothing in flight or room behind it), else queues it; false (and
  // `task` dropped, never run) when `max_waiting` already wait or
  // `may_wait(tasks waiting)` is false. `may_wait` runs under the
  // sequencer's lock: it must be quick. `*seq`, when given, is set before
  // the task runs to its place in the contact's order (for Defer()).
  bool Run(
      absl::string_view contact, Task task,
      absl::FunctionRef<bool(size_t)> may_wait = [](size_t) { return true; },
      uint64_t* seq = nullptr) {
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = contacts_.try_emplace(contact);
      Contact& c = it->second;
      const bool start = inserted || (c.waiting.empty() && MayStart(c));
      if (!start) {
        const size_t waiting = c.waiting.size() - c.deferred;
        if (waiting >= max_waiting_ || !may_wait(waiting)) return false;
      }
      const uint64_t mine = c.next_seq++;
      if (seq != nullptr) *seq = mine;
      if (!start) {
        c.waiting.push_back({mine, std::move(task)});
        return true;
      }
      c.running = true;
    }
    task();
    return true;
  }

  // The contact's running task is about to send its write: it counts as in
  // flight from now on (its answer may come before Release()), until its
  // Done(contact, /*released=*/true) or Defer(..., /*released=*/true).
  void AddInFlight(absl::string_view contact) {
    absl::MutexLock lock(&mu_);
    auto it = contacts_.find(contact);
    if (it != contacts_.end()) ++it->second.in_flight;
  }

  // The running task has sent its write (after AddInFlight): the next task
  // may start, behind it.
  void Release(absl::string_view contact) {
    Task next;
    {
      absl::MutexLock lock(&mu_);
      auto it = contacts_.find(contact);
      if (it == contacts_.end()) return;
      it->second.running = false;
      next = TakeNext(it);
    }
    if (next) RunUnnested(std::move(next));
  }

  // How many of the contact's tasks are released and not done. For the
  // running task: it cannot rise until that task releases.
  int InFlight(absl::string_view contact) {
    absl::MutexLock lock(&mu_);
    auto it = contacts_.find(contact);
    return it == contacts_.end() ? 0 : it->second.in_flight;
  }

  // Whether the caller's released task (number `seq` in the contact's
  // order) is the contact's only one in flight and no deferred one is
  // older: it may retry at once.
  bool AloneInFlight(absl::string_view contact, uint64_t seq) {
    absl::MutexLock lock(&mu_);
    auto it = contacts_.find(contact);
    if (it == contacts_.end()) return false;
    const Contact& c = it->second;
    return c.in_flight == 1 && (c.deferred == 0 || seq < c.waiting.front().seq);
  }

  // The running task (`released` false), or a released one, number `seq`
  // in the contact's order, cannot go on behind the writes in flight:
  // `task` (its continuation) runs again once the contact has none in
  // flight, in its place in the contact's order among the deferred ones,
  // before the tasks that never started. They run one at a time until the
  // deferred ones are through.
  void Defer(absl::string_view contact, uint64_t seq, Task task,
             bool released) {
    Task next;
    {
      absl::MutexLock lock(&mu_);
      auto it = contacts_.find(contact);
      if (it == contacts_.end()) {
        // Not sequenced (cannot happen for a running or released task):
        // run it rather than lose it.
        next = std::move(task);
      } else {
        Contact& c = it->second;
        if (released) {
          --c.in_flight;
        } else {
          c.running = false;
        }
        c.broken = true;
        // Tasks are not deferred in their order (one still running may miss
        // the remembered outcome before an older one in flight fails): each
        // goes to its place.
        size_t at = 0;
        while (at < c.deferred && c.waiting[at].seq < seq) ++at;
        c.waiting.insert(c.waiting.begin() + at, {seq, std::move(task)});
        ++c.deferred;
        next = TakeNext(it);
      }
    }
    if (next) RunUnnested(std::move(next));
  }

  // A released task's write failed: no task starts while one is in flight,
  // until the contact has none in flight and no deferred task left.
  void Break(absl::string_view contact) {
    absl::MutexLock lock(&mu_);
    auto it = contacts_.find(contact);
    if (it != contacts_.end()) it->second.broken = true;
  }

  // A task of the contact is finished (`released`: it had called
  // Release()): starts the next one if it may.
  // When called from within a task started by Release() or Done() on this
  // thread (a task that finished without waiting for anything), the next
  // task runs after that one returns, not inside it: a contact's queue of
  // quickly refused events must not nest its tasks on the stack.
  void Done(absl::string_view contact, bool released = false) {
    Task next;
    {
      absl::MutexLock lock(&mu_);
      auto it = contacts_.find(contact);
      if (it == contacts_.end()) return;
      Contact& c = it->second;
      if (released) {
        --c.in_flight;
      } else {
        c.running = false;
      }
      next = TakeNext(it);
    }
    if (next) RunUnnested(std::move(next));
  }

 private:
  struct Contact {
    bool running = false;  // a task runs and has not released the contact
    int in_flight = 0;     // tasks released and not done
    // A write in flight failed: one task at a time (none starts while one
    // is in flight) until every deferred task is through.
    bool broken = false;
    struct Waiting {
      uint64_t seq;  // the task's place in the contact's order
      Task task;
    };
    std::deque<Waiting> waiting;
    size_t deferred = 0;  // the first this many of `waiting` were deferred
    uint64_t next_seq = 0;
  };
  using Map = absl::flat_hash_map<std::string, Contact>;

  bool MayStart(const Contact& c) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !c.running &&
           (c.in_flight == 0 || (!c.broken && c.in_flight < max_in_flight_));
  }

  // The next task to start (marked running), if any may; forgets a contact
  // with nothing left.
  Task TakeNext(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Contact& c = it->second;
    // One at a time until the deferred tasks are through: a contact whose
    // writes keep failing (another replica writing it as fast) would
    // otherwise fail whole pipelines again and again.
    if (c.in_flight == 0 && c.deferred == 0) c.broken = false;
    Task next;
    if (!c.waiting.empty() && MayStart(c)) {
      next = std::move(c.waiting.front().task);
      c.waiting.pop_front();
      if (c.deferred > 0) --c.deferred;
      c.running = true;
    } else if (!c.running && c.in_flight == 0 && c.waiting.empty()) {
      contacts_.erase(it);
    }
    return next;
  }

  static void RunUnnested(Task task) {
    // The tasks to run after the one running on this thread.
    thread_local std::deque<Task>* after_current = nullptr;
    if (after_current != nullptr) {
      after_current->push_back(std::move(task));
      return;
    }
    std::deque<Task> queue;
    queue.push_back(std::move(task));
    after_current = &queue;
    while (!queue.empty()) {
      Task next = std::move(queue.front());
      queue.pop_front();
      next();
    }
    after_current = nullptr;
  }

  const size_t max_waiting_;
  const int max_in_flight_;
  absl::Mutex mu_;
  // Contacts with a task running, in flight or waiting.
  Map contacts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_
