// Tappa serves gRPC on the async completion-queue API, each queue polled by
// one thread of its own, and nothing on the callback API.
//
// Why: the callback API polls with two "nexting" threads that hand the
// polling role to each other at every network event, so a call that arrives
// alone (open-loop traffic) costs several thread switches. Measured here on
// an empty RPC offered at 4,000/s: callback API 126 µs of server CPU and 5.9
// context switches per call, one async queue 46 µs and 1.5
// (loadtests/README.md, session 7).
//
// Usage (server/main.cc):
//   grpc::ServerBuilder builder;
//   builder.RegisterService(journey.grpc_service());
//   rpc::CompletionQueues queues(&builder, threads);
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
//   journey.Serve(&queues);   // arms every method on every queue
//   queues.Start();           // one polling thread per queue
//   ...
//   server->Shutdown(deadline);
//   queues.Shutdown(deadline);
#ifndef TAPPA_SERVER_RPC_COMPLETION_QUEUES_H_
#define TAPPA_SERVER_RPC_COMPLETION_QUEUES_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace tappa::rpc {

// What a completion queue hands back: Proceed runs on the queue's thread
// with the outcome of the operation the tag was given to.
class CompletionTag {
 public:
  virtual void Proceed(bool ok) = 0;

 protected:
  ~CompletionTag() = default;
};

// A tag that runs `on` of `object` with the operation's outcome: a call
// gives each of its operations one.
template <typename T>
class MemberTag final : public CompletionTag {
 public:
  MemberTag(T* object, void (T::*on)(bool)) : object_(object), on_(on) {}
  void Proceed(bool ok) override { (object_->*on_)(ok); }

 private:
  T* const object_;
  void (T::*const on_)(bool);
};

// Calls the application still holds. Shutdown waits for none to be left
// before it shuts the queues: an operation started on a call whose queue is
// shut down aborts the process.
class OpenCalls {
 public:
  void Add() { open_.fetch_add(1, std::memory_order_relaxed); }
  void Remove() { open_.fetch_sub(1, std::memory_order_release); }
  // True once no call is open; false when `deadline` passes first. Polls
  // (shutdown only): the calls' path pays one atomic add each way.
  bool WaitUntilNone(absl::Time deadline);
  int64_t open() const { return open_.load(std::memory_order_acquire); }

 private:
  std::atomic<int64_t> open_{0};
};

// A served method: arms one call-in-waiting on a queue. Owned by
// CompletionQueues, so it outlives every call made through it.
class ServedMethod {
 public:
  virtual ~ServedMethod() = default;
  virtual void Arm(grpc::ServerCompletionQueue* queue) = 0;
};

class CompletionQueues {
 public:
  // Adds `count` (at least 1) queues to `builder`; call before BuildAndStart.
  CompletionQueues(grpc::ServerBuilder* builder, int count);
  // Shuts down (with no wait for open calls) if Shutdown was not called.
  ~CompletionQueues();

  CompletionQueues(const CompletionQueues&) = delete;
  CompletionQueues& operator=(const CompletionQueues&) = delete;

  // Serves `method` from now on: `waiting` calls-in-waiting on every queue
  // (a call that arrives while none waits is queued by gRPC until one is
  // armed again; more than one keeps bursts from waiting on that).
  void Serve(std::unique_ptr<ServedMethod> method, int waiting = 4);

  OpenCalls* open_calls() { return &open_calls_; }

  // Starts one thread per queue; call after BuildAndStart and Serve.
  void Start();

  // Call after grpc::Server::Shutdown returned: waits until `deadline` for
  // the open calls to finish (their handlers still answer; Redis work is
  // bounded by each call's deadline), shuts the queues, drains them and
  // joins their threads. Returns the calls still open at the deadline; when
  // there are any, the queues are left running (leaked) for the process to
  // exit with.
  int64_t Shutdown(absl::Time deadline);

 private:
  void Poll(grpc::ServerCompletionQueue* queue);

  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::unique_ptr<ServedMethod>> methods_;
  std::vector<std::thread> threads_;
  OpenCalls open_calls_;
  bool shut_down_ = false;
};

}  // namespace tappa::rpc

#endif  // TAPPA_SERVER_RPC_COMPLETION_QUEUES_H_
