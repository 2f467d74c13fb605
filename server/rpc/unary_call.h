// A unary method served on the async API: each call is an object that waits
// on a completion queue for its request, runs the handler, and deletes
// itself once its answer is sent.
#ifndef TAPPA_SERVER_RPC_UNARY_CALL_H_
#define TAPPA_SERVER_RPC_UNARY_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "server/rpc/completion_queues.h"

namespace tappa::rpc {

// How a unary handler answers: Finish exactly once, from any thread, with
// the response the handler was given filled in (sent only when `status` is
// OK). The call, its context, request and response stay valid until then.
class UnaryReactor {
 public:
  virtual void Finish(grpc::Status status) = 0;

 protected:
  ~UnaryReactor() = default;
};

template <typename Request, typename Response>
using UnaryHandler = absl::AnyInvocable<void(
    grpc::ServerContext* context, const Request* request, Response* response,
    UnaryReactor* reactor)>;

// The generated AsyncService's RequestFoo for a unary method Foo.
template <typename Service, typename Request, typename Response>
using UnaryRequestMethod = void (Service::*)(
    grpc::ServerContext*, Request*, grpc::ServerAsyncResponseWriter<Response>*,
    grpc::CompletionQueue*, grpc::ServerCompletionQueue*, void*);

namespace internal {

template <typename Owner, typename Service, typename Request, typename Response>
class UnaryMethod final : public ServedMethod {
 public:
  UnaryMethod(Owner* owner,
              UnaryRequestMethod<Service, Request, Response> request,
              UnaryHandler<Request, Response> handler, OpenCalls* open_calls)
      : owner_(owner),
        request_(request),
        handler_(std::move(handler)),
        open_calls_(open_calls) {}

  void Arm(grpc::ServerCompletionQueue* queue) override {
    new Call(this, queue);
  }

 private:
  class Call final : public UnaryReactor {
   public:
    Call(UnaryMethod* method, grpc::ServerCompletionQueue* queue)
        : method_(method), queue_(queue), writer_(&context_) {
      // Without it ServerContext::IsCancelled does not work on this API.
      context_.AsyncNotifyWhenDone(&done_);
      (method_->owner_->*method_->request_)(&context_, &request_, &writer_,
                                            queue_, queue_, &arrived_);
    }

    void Finish(grpc::Status status) override {
      writer_.Finish(response_, status, &answered_);
    }

   private:
    void Arrived(bool ok) {
      if (!ok) {  // the server is shutting down; `done_` never comes
        delete this;
        return;
      }
      method_->Arm(queue_);  // the next call waits before this one runs
      method_->open_calls_->Add();
      method_->handler_(&context_, &request_, &response_, this);
    }

    // The call's end (`done_`) and the answer's (Finish) both come back,
    // in either order, maybe on two threads; after the second nothing refers
    // to the call.
    void Completed(bool) {
      if (completions_left_.fetch_sub(1, std::memory_order_acq_rel) != 1) {
        return;
      }
      OpenCalls* open_calls = method_->open_calls_;
      delete this;
      open_calls->Remove();
    }

    UnaryMethod* const method_;
    grpc::ServerCompletionQueue* const queue_;
    grpc::ServerContext context_;
    Request request_;
    Response response_;
    grpc::ServerAsyncResponseWriter<Response> writer_;
    MemberTag<Call> arrived_{this, &Call::Arrived};
    MemberTag<Call> answered_{this, &Call::Completed};
    MemberTag<Call> done_{this, &Call::Completed};
    std::atomic<int> completions_left_{2};
  };

  Owner* const owner_;
  const UnaryRequestMethod<Service, Request, Response> request_;
  UnaryHandler<Request, Response> handler_;
  OpenCalls* const open_calls_;
};

}  // namespace internal

// Serves a unary method of `owner` (the generated AsyncService, registered
// with the builder) on every queue: `request` is its RequestFoo, `handler`
// runs on a queue thread for each call and must not block.
template <typename Owner, typename Service, typename Request, typename Response>
void ServeUnary(CompletionQueues* queues, Owner* owner,
                UnaryRequestMethod<Service, Request, Response> request,
                std::type_identity_t<UnaryHandler<Request, Response>> handler) {
  queues->Serve(std::make_unique<
                internal::UnaryMethod<Owner, Service, Request, Response>>(
      owner, request, std::move(handler), queues->open_calls()));
}

// The same with a member function of `impl` as the handler:
//   ServeUnary(queues, &async_, &Async::RequestTrackEvent, this,
//              &JourneyServiceImpl::TrackEvent);
template <typename Owner, typename Service, typename Request, typename Response,
          typename Impl>
void ServeUnary(CompletionQueues* queues, Owner* owner,
                UnaryRequestMethod<Service, Request, Response> request,
                Impl* impl,
                void (Impl::*handler)(grpc::ServerContext*, const Request*,
                                      Response*, UnaryReactor*)) {
  ServeUnary(
      queues, owner, request,
      [impl, handler](grpc::ServerContext* context, const Request* message,
                      Response* response, UnaryReactor* reactor) {
        (impl->*handler)(context, message, response, reactor);
      });
}

}  // namespace tappa::rpc

#endif  // TAPPA_SERVER_RPC_UNARY_CALL_H_
