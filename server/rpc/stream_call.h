// Streaming methods served on the async API through reactors shaped like
// gRPC's callback reactors (StartRead / StartWrite / Finish, OnReadDone /
// OnWriteDone / OnCancel / OnDone), so stream logic reads the same as it
// would on the callback API without its polling threads
// (server/rpc/completion_queues.h says why).
//
// Contract, as on the callback API:
//   - at most one read and one write outstanding at a time;
//   - operations may be started from any thread, including the reactor's
//     constructor (they are issued once the reactor is bound to its call);
//   - OnReadDone and OnWriteDone may run at the same time on two queue
//     threads;
//   - OnCancel runs once if the call ends without a Finish of the server's
//     (client gone, deadline passed, server shutting down). A cancellation
//     may show first as a failed read or write: ServerContext::IsCancelled
//     is only sure from OnCancel or OnDone on;
//   - the reactor must call Finish exactly once, even after OnCancel;
//   - OnDone runs last, once every operation has completed, and is where a
//     reactor deletes itself; nothing of the call may be used after it.
#ifndef TAPPA_SERVER_RPC_STREAM_CALL_H_
#define TAPPA_SERVER_RPC_STREAM_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "server/rpc/completion_queues.h"

namespace tappa::rpc {

// The request type of a server-streaming reactor's reads: it has none.
struct NoReads {};

namespace internal {

// The operations a bound reactor forwards to its call.
template <typename Request, typename Response>
class StreamOps {
 public:
  virtual void Read(Request* request) = 0;
  virtual void Write(const Response* response) = 0;
  virtual void Finish(grpc::Status status) = 0;

 protected:
  ~StreamOps() = default;
};

}  // namespace internal

template <typename Request, typename Response>
class StreamReactor {
 public:
  virtual ~StreamReactor() = default;

  // Bidirectional streams only. `request` must stay valid until OnReadDone.
  void StartRead(Request* request) {
    static_assert(!std::is_same_v<Request, NoReads>,
                  "a server-streaming call has no reads");
    if (auto* ops = BoundOrKeep([&] { read_before_bind_ = request; })) {
      ops->Read(request);
    }
  }
  // `response` must stay valid until OnWriteDone.
  void StartWrite(const Response* response) {
    if (auto* ops = BoundOrKeep([&] { write_before_bind_ = response; })) {
      ops->Write(response);
    }
  }
  // The reactor may be deleted (OnDone) before this returns.
  void Finish(grpc::Status status) {
    if (auto* ops = BoundOrKeep([&] { finish_before_bind_ = status; })) {
      ops->Finish(std::move(status));
    }
  }

  virtual void OnReadDone(bool ok) {}
  virtual void OnWriteDone(bool ok) {}
  virtual void OnCancel() {}
  virtual void OnDone() = 0;

  // Called once by the serving code when the factory has returned the
  // reactor: issues what was started before.
  void Bind(internal::StreamOps<Request, Response>* ops) {
    Request* read;
    const Response* write;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      read = read_before_bind_;
      write = write_before_bind_;
      finish = std::move(finish_before_bind_);
      ops_.store(ops, std::memory_order_release);
    }
    // Outside the lock: an operation's completion may end the call (OnDone
    // deletes the reactor) on a queue thread as soon as it is issued. The
    // call holds itself open until Bind returns.
    if (read != nullptr) ops->Read(read);
    if (write != nullptr) ops->Write(write);
    if (finish.has_value()) ops->Finish(std::move(*finish));
  }

 private:
  // The call to issue an operation on, or null after `keep` recorded it for
  // Bind. No lock is held while an operation is issued: its completion may
  // delete the reactor at once.
  template <typename Keep>
  internal::StreamOps<Request, Response>* BoundOrKeep(Keep keep) {
    if (auto* ops = ops_.load(std::memory_order_acquire)) return ops;
    absl::MutexLock lock(&mu_);
    if (auto* ops = ops_.load(std::memory_order_acquire)) return ops;
    keep();
    return nullptr;
  }

  absl::Mutex mu_;  // guards the operations kept before Bind
  std::atomic<internal::StreamOps<Request, Response>*> ops_{nullptr};
  Request* read_before_bind_ ABSL_GUARDED_BY(mu_) = nullptr;
  const Response* write_before_bind_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::optional<grpc::Status> finish_before_bind_ ABSL_GUARDED_BY(mu_);
};

template <typename Request, typename Response>
using BidiReactor = StreamReactor<Request, Response>;
template <typename Response>
using WriteReactor = StreamReactor<NoReads, Response>;

// The generated AsyncService's RequestFoo for a bidirectional method Foo.
template <typename Service, typename Request, typename Response>
using BidiRequestMethod = void (Service::*)(
    grpc::ServerContext*, grpc::ServerAsyncReaderWriter<Response, Request>*,
    grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);
// ... and for a server-streaming method.
template <typename Service, typename Request, typename Response>
using ServerStreamRequestMethod = void (Service::*)(
    grpc::ServerContext*, Request*, grpc::ServerAsyncWriter<Response>*,
    grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

template <typename Request, typename Response>
using BidiFactory =
    absl::AnyInvocable<BidiReactor<Request, Response>*(grpc::ServerContext*)>;
template <typename Request, typename Response>
using ServerStreamFactory = absl::AnyInvocable<WriteReactor<Response>*(
    grpc::ServerContext*, const Request*)>;

namespace internal {

// One streaming method; kBidi picks bidirectional or server streaming.
template <bool kBidi, typename Owner, typename Service, typename Request,
          typename Response>
class StreamMethod final : public ServedMethod {
 public:
  using ReadType = std::conditional_t<kBidi, Request, NoReads>;
  using Reactor = StreamReactor<ReadType, Response>;
  using Stream =
      std::conditional_t<kBidi,
                         grpc::ServerAsyncReaderWriter<Response, Request>,
                         grpc::ServerAsyncWriter<Response>>;
  using RequestMethod =
      std::conditional_t<kBidi, BidiRequestMethod<Service, Request, Response>,
                         ServerStreamRequestMethod<Service, Request, Response>>;
  using Factory = std::conditional_t<kBidi, BidiFactory<Request, Response>,
                                     ServerStreamFactory<Request, Response>>;

  StreamMethod(Owner* owner, RequestMethod request, Factory factory,
               OpenCalls* open_calls)
      : owner_(owner),
        request_(request),
        factory_(std::move(factory)),
        open_calls_(open_calls) {}

  void Arm(grpc::ServerCompletionQueue* queue) override {
    new Call(this, queue);
  }

 private:
  class Call final : public StreamOps<ReadType, Response> {
   public:
    Call(StreamMethod* method, grpc::ServerCompletionQueue* queue)
        : method_(method), queue_(queue), stream_(&context_) {
      context_.AsyncNotifyWhenDone(&done_);
      if constexpr (kBidi) {
        (method_->owner_->*method_->request_)(&context_, &stream_, queue_,
                                              queue_, &arrived_);
      } else {
        (method_->owner_->*method_->request_)(&context_, &request_, &stream_,
                                              queue_, queue_, &arrived_);
      }
    }

    void Read(ReadType* request) override {
      if constexpr (kBidi) {
        Begin();
        stream_.Read(request, &read_);
      }
    }
    void Write(const Response* response) override {
      Begin();
      stream_.Write(*response, &write_);
    }
    void Finish(grpc::Status status) override {
      {
        absl::MutexLock lock(&mu_);
        ++pending_;
        finish_started_ = true;
      }
      stream_.Finish(status, &finished_);
    }

   private:
    void Arrived(bool ok) {
      if (!ok) {  // the server is shutting down; `done_` never comes
        delete this;
        return;
      }
      method_->Arm(queue_);
      method_->open_calls_->Add();
      {
        absl::MutexLock lock(&mu_);
        // `done_`, due when the call ends, and the binding below: until
        // Bind has issued what the reactor started, the call stays open.
        pending_ = 2;
      }
      if constexpr (kBidi) {
        reactor_ = method_->factory_(&context_);
      } else {
        reactor_ = method_->factory_(&context_, &request_);
      }
      reactor_->Bind(this);
      End();
    }
    void ReadDone(bool ok) {
      reactor_->OnReadDone(ok);
      End();
    }
    void WriteDone(bool ok) {
      reactor_->OnWriteDone(ok);
      End();
    }
    void FinishDone(bool) { End(); }
    void CallDone(bool) {
      if (context_.IsCancelled()) reactor_->OnCancel();
      End();
    }

    void Begin() {
      absl::MutexLock lock(&mu_);
      ++pending_;
    }
    // An operation completed (after its reaction ran): the last one, once
    // Finish was started, ends the call.
    void End() {
      {
        absl::MutexLock lock(&mu_);
        if (--pending_ > 0 || !finish_started_) return;
      }
      reactor_->OnDone();
      OpenCalls* open_calls = method_->open_calls_;
      delete this;
      open_calls->Remove();
    }

    StreamMethod* const method_;
    grpc::ServerCompletionQueue* const queue_;
    grpc::ServerContext context_;
    std::conditional_t<kBidi, NoReads, Request> request_;
    Stream stream_;
    Reactor* reactor_ = nullptr;
    MemberTag<Call> arrived_{this, &Call::Arrived};
    MemberTag<Call> read_{this, &Call::ReadDone};
    MemberTag<Call> write_{this, &Call::WriteDone};
    MemberTag<Call> finished_{this, &Call::FinishDone};
    MemberTag<Call> done_{this, &Call::CallDone};
    absl::Mutex mu_;
    int pending_ ABSL_GUARDED_BY(mu_) = 0;  // operations not yet completed
    bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  };

  Owner* const owner_;
  const RequestMethod request_;
  Factory factory_;
  OpenCalls* const open_calls_;
};

}  // namespace internal

// Serves a bidirectional method: `factory` makes the reactor of each call
// on a queue thread (it must not block).
template <typename Owner, typename Service, typename Request, typename Response>
void ServeBidi(CompletionQueues* queues, Owner* owner,
               BidiRequestMethod<Service, Request, Response> request,
               std::type_identity_t<BidiFactory<Request, Response>> factory) {
  queues->Serve(
      std::make_unique<
          internal::StreamMethod<true, Owner, Service, Request, Response>>(
          owner, request, std::move(factory), queues->open_calls()),
      1);
}

// Serves a server-streaming method; the factory gets the request message,
// valid until the reactor's OnDone.
template <typename Owner, typename Service, typename Request, typename Response>
void ServeServerStream(
    CompletionQueues* queues, Owner* owner,
    ServerStreamRequestMethod<Service, Request, Response> request,
    std::type_identity_t<ServerStreamFactory<Request, Response>> factory) {
  queues->Serve(
      std::make_unique<
          internal::StreamMethod<false, Owner, Service, Request, Response>>(
          owner, request, std::move(factory), queues->open_calls()),
      1);
}

}  // namespace tappa::rpc

#endif  // TAPPA_SERVER_RPC_STREAM_CALL_H_
