// Runs tasks for the same contact one after another (in submission order)
// and tasks for different contacts concurrently. The server uses it so that
// its own events for one contact never race each other: optimistic-locking
// conflicts then only come from other replicas.
//
// A task is started on the thread that submits it (when the contact is idle)
// or on the thread that calls Done() for the contact's previous task. Tasks
// must not block; each must eventually lead to exactly one Done(contact).
//
// A task may be refused instead of queued (the caller sheds the request):
// when `max_waiting` tasks already wait behind the contact's running one,
// or when the caller's `may_wait` says the wait is too long. One contact's
// tasks run one at a time, each a few Redis round trips, so a contact sent
// events faster than that (a bot, a replayed backlog, the load tests'
// hottest contacts) would otherwise queue without bound, every queued event
// past its deadline by the time its turn came.
//
// Thread safety: thread-safe.
#ifndef TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_
#define TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_

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

  explicit ContactSequencer(size_t max_waiting) : max_waiting_(max_waiting) {}

  // Runs `task` now if `contact` is idle, else queues it behind the
  // contact's tasks; false (and `task` dropped, never run) when
  // `max_waiting` already wait or `may_wait(tasks waiting)` is false.
  // `may_wait` runs under the sequencer's lock: it must be quick.
  bool Run(
      absl::string_view contact, Task task,
      absl::FunctionRef<bool(size_t)> may_wait = [](size_t) { return true; }) {
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = waiting_.try_emplace(contact);
      if (!inserted) {
        const size_t waiting = it->second.size();
        if (waiting >= max_waiting_ || !may_wait(waiting)) return false;
        it->second.push_back(std::move(task));
        return true;
      }
    }
    task();
    return true;
  }

  // Called when the contact's running task is finished: starts the next.
  // When Done() is called from within a task Done() started on this thread
  // (a task that finished without waiting for anything), the next task runs
  // after that one returns, not inside it: a contact's queue of quickly
  // refused events must not nest its tasks on the stack.
  void Done(absl::string_view contact) {
    Task next;
    {
      absl::MutexLock lock(&mu_);
      auto it = waiting_.find(contact);
      if (it == waiting_.end()) return;
      if (it->second.empty()) {
        waiting_.erase(it);
        return;
      }
      next = std::move(it->second.front());
      it->second.pop_front();
    }
    RunUnnested(std::move(next));
  }

 private:
  static void RunUnnested(Task task) {
    // The tasks to run after the one Done() is running on this thread.
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
  absl::Mutex mu_;
  // Contacts with a running task, and what waits behind it.
  absl::flat_hash_map<std::string, std::deque<Task>> waiting_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_CONTACT_SEQUENCER_H_
