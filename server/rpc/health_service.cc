#include "server/rpc/health_service.h"

#include <algorithm>
#include <optional>

#include "server/rpc/stream_call.h"
#include "server/rpc/unary_call.h"

namespace tappa::rpc {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch call: writes the latest status whenever it differs from the
// last one written, one write at a time. Decisions are taken under the
// watcher's mutex, operations issued outside it: Finish's completion may
// delete the watcher at once.
class HealthService::Watcher final : public WriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* health, std::string service)
      : health_(health), service_(std::move(service)) {}

  void Notify(Status status) {
    Update([&] { latest_ = status; });
  }
  void End() {
    Update([&] { ending_ = true; });
  }

  void OnWriteDone(bool ok) override {
    Update([&] {
      writing_ = false;
      if (!ok) gone_ = ending_ = true;  // the client is gone
    });
  }
  void OnCancel() override { End(); }
  void OnDone() override {
    {
      absl::MutexLock lock(&health_->mu_);
      auto& all = health_->watchers_;
      all.erase(std::remove(all.begin(), all.end(), this), all.end());
    }
    delete this;
  }

  const std::string& service() const { return service_; }

 private:
  enum class Next { kNothing, kWrite, kFinish };

  // Applies `change` under the mutex, then issues what it made due.
  template <typename Change>
  void Update(Change change) {
    Next next;
    {
      absl::MutexLock lock(&mu_);
      change();
      next = TakeNext();
    }
    Issue(next);
  }

  Next TakeNext() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return Next::kNothing;
    const bool current = written_.has_value() && *written_ == latest_;
    // The last status goes out before the end, unless the client is gone.
    if (ending_ && (current || gone_)) {
      finished_ = true;
      return Next::kFinish;
    }
    if (current) return Next::kNothing;
    written_ = latest_;
    response_.set_status(latest_);
    writing_ = true;
    return Next::kWrite;
  }

  // `response_` is only changed by TakeNext while no write is outstanding.
  void Issue(Next next) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (next == Next::kWrite) StartWrite(&response_);
    if (next == Next::kFinish) Finish(grpc::Status::OK);  // may delete this
  }

  HealthService* const health_;
  const std::string service_;
  absl::Mutex mu_;
  Status latest_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  std::optional<Status> written_ ABSL_GUARDED_BY(mu_);
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool gone_ ABSL_GUARDED_BY(mu_) = false;  // a write failed: no client
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::Status HealthService::StatusOf(
    const std::string& service) const {
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                               : it->second;
}

void HealthService::Serve(CompletionQueues* queues) {
  using Async = grpc::health::v1::Health::AsyncService;
  ServeUnary(queues, &async_, &Async::RequestCheck,
             [this](grpc::ServerContext*, const HealthCheckRequest* request,
                    HealthCheckResponse* response, UnaryReactor* reactor) {
               Status status;
               {
                 absl::MutexLock lock(&mu_);
                 status = StatusOf(request->service());
               }
               if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
                 reactor->Finish(
                     grpc::Status(grpc::StatusCode::NOT_FOUND,
                                  "unknown service: " + request->service()));
                 return;
               }
               response->set_status(status);
               reactor->Finish(grpc::Status::OK);
             });
  ServeServerStream(
      queues, &async_, &Async::RequestWatch,
      [this](grpc::ServerContext*, const HealthCheckRequest* request)
          -> WriteReactor<HealthCheckResponse>* {
        auto* watcher = new Watcher(this, request->service());
        absl::MutexLock lock(&mu_);
        if (shut_down_) {
          watcher->End();
        } else {
          watchers_.push_back(watcher);
          watcher->Notify(StatusOf(request->service()));
        }
        return watcher;
      });
}

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  Status status =
      serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  statuses_[service] = status;
  for (Watcher* watcher : watchers_) {
    if (watcher->service() == service) watcher->Notify(status);
  }
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [service, status] : statuses_) {
    status = HealthCheckResponse::NOT_SERVING;
  }
  for (Watcher* watcher : watchers_) {
    watcher->Notify(StatusOf(watcher->service()));
    watcher->End();
  }
}

}  // namespace tappa::rpc
