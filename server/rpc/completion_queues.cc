#include "server/rpc/completion_queues.h"

#include <pthread.h>

#include <string>

#include "absl/time/clock.h"

namespace tappa::rpc {

bool OpenCalls::WaitUntilNone(absl::Time deadline) {
  while (open() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

CompletionQueues::CompletionQueues(grpc::ServerBuilder* builder, int count) {
  for (int i = 0; i < std::max(count, 1); ++i) {
    queues_.push_back(builder->AddCompletionQueue());
  }
}

CompletionQueues::~CompletionQueues() {
  if (!shut_down_) Shutdown(absl::Now());
}

void CompletionQueues::Serve(std::unique_ptr<ServedMethod> method,
                             int waiting) {
  for (auto& queue : queues_) {
    for (int i = 0; i < waiting; ++i) method->Arm(queue.get());
  }
  methods_.push_back(std::move(method));
}

void CompletionQueues::Start() {
  for (size_t i = 0; i < queues_.size(); ++i) {
    grpc::ServerCompletionQueue* queue = queues_[i].get();
    threads_.emplace_back([this, queue] { Poll(queue); });
    std::string name = "grpc-queue-" + std::to_string(i);
    pthread_setname_np(threads_.back().native_handle(), name.c_str());
  }
}

int64_t CompletionQueues::Shutdown(absl::Time deadline) {
  shut_down_ = true;
  open_calls_.WaitUntilNone(deadline);
  const int64_t left = open_calls_.open();
  if (left > 0) {
    // A call still open may yet start an operation, which would abort the
    // process on a shut queue: leave the queues to the process's exit.
    for (std::thread& thread : threads_) thread.detach();
    threads_.clear();
    for (auto& queue : queues_) queue.release();
    queues_.clear();
    return left;
  }
  for (auto& queue : queues_) queue->Shutdown();
  if (threads_.empty()) {
    // Never started: drain here (the calls-in-waiting come back not ok).
    for (auto& queue : queues_) Poll(queue.get());
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  return left;
}

void CompletionQueues::Poll(grpc::ServerCompletionQueue* queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue->Next(&tag, &ok)) static_cast<CompletionTag*>(tag)->Proceed(ok);
}

}  // namespace tappa::rpc
