// The async serving layer (server/rpc) through its one self-contained
// service, grpc.health.v1.Health, over a real gRPC server and channel:
// unary calls, server streams, cancellation and shutdown.
#include "server/rpc/health_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/rpc/completion_queues.h"
#include "server/rpc/stream_call.h"
#include "server/rpc/unary_call.h"

namespace tappa::rpc {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(health_.grpc_service());
    queues_ = std::make_unique<CompletionQueues>(&builder, 2);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    health_.Serve(queues_.get());
    queues_->Start();
    stub_ = Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    health_.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now());
    EXPECT_EQ(queues_->Shutdown(absl::Now() + absl::Seconds(5)), 0);
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, out);
  }

  // Waits (up to 5 s) for no call to be open on the server.
  bool NoCallOpen() {
    return queues_->open_calls()->WaitUntilNone(absl::Now() + absl::Seconds(5));
  }

  HealthService health_;
  std::unique_ptr<CompletionQueues> queues_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckAnswersTheStatusSetAndNotFoundForOthers) {
  health_.SetServingStatus("", true);
  health_.SetServingStatus("tappa.v1.JourneyService", false);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check("tappa.v1.JourneyService", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  grpc::Status unknown = Check("no.such.Service", &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("no.such.Service"), std::string::npos);
  EXPECT_TRUE(NoCallOpen());
}

TEST_F(HealthServiceTest, ManyConcurrentChecksAllAnswer) {
  health_.SetServingStatus("", true);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        HealthCheckResponse response;
        if (Check("", &response).ok() &&
            response.status() == HealthCheckResponse::SERVING) {
          ++ok;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 1600);
  EXPECT_TRUE(NoCallOpen());
}

TEST_F(HealthServiceTest, WatchStreamsEveryChangeUntilShutdown) {
  health_.SetServingStatus("", true);
  grpc::ClientContext context;
  HealthCheckRequest request;
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  health_.SetServingStatus("", false);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health_.SetServingStatus("", false);  // no change: nothing sent
  health_.SetServingStatus("", true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  health_.Shutdown();
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(NoCallOpen());
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysSoAndFollowsIt) {
  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("later.Service");
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  health_.SetServingStatus("later.Service", true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  context.TryCancel();
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(HealthServiceTest, ACancelledWatchEndsOnTheServer) {
  health_.SetServingStatus("", true);
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    auto reader = stub_->Watch(&context, HealthCheckRequest());
    HealthCheckResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    reader->Finish();
  }
  // Each server-side stream saw OnCancel, finished, and was deleted.
  EXPECT_TRUE(NoCallOpen());
}

// A handler may answer later from another thread; shutdown waits for it.
TEST(CompletionQueuesTest, ShutdownWaitsForACallAnsweredLater) {
  Health::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  CompletionQueues queues(&builder, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  absl::Notification arrived;
  UnaryReactor* held = nullptr;
  HealthCheckResponse* held_response = nullptr;
  ServeUnary(&queues, &service, &Health::AsyncService::RequestCheck,
             [&](grpc::ServerContext*, const HealthCheckRequest*,
                 HealthCheckResponse* response, UnaryReactor* reactor) {
               held = reactor;
               held_response = response;
               arrived.Notify();
             });
  queues.Start();

  auto stub = Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::Status client_status;
  HealthCheckResponse client_response;
  std::thread client([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    client_status =
        stub->Check(&context, HealthCheckRequest(), &client_response);
  });
  ASSERT_TRUE(arrived.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(queues.open_calls()->open(), 1);

  std::thread answerer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    held_response->set_status(HealthCheckResponse::SERVING);
    held->Finish(grpc::Status::OK);
  });
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  EXPECT_EQ(queues.Shutdown(absl::Now() + absl::Seconds(5)), 0);
  answerer.join();
  client.join();
  EXPECT_TRUE(client_status.ok()) << client_status.error_message();
  EXPECT_EQ(client_response.status(), HealthCheckResponse::SERVING);
}

// A reactor that writes and finishes from a thread of its own (as Tappa's
// follow-up subscriptions and DecideBatch do from the Redis loops), so the
// completion that deletes it races with the call that issued Finish.
class FinishesFromItsOwnThread final
    : public WriteReactor<HealthCheckResponse> {
 public:
  explicit FinishesFromItsOwnThread(std::atomic<int>* done) : done_(done) {
    response_.set_status(HealthCheckResponse::SERVING);
    std::thread([this] {
      StartWrite(&response_);
      written_.WaitForNotification();
      Finish(grpc::Status::OK);  // `this` may be gone right after
    }).detach();
  }
  void OnWriteDone(bool) override { written_.Notify(); }
  void OnDone() override {
    ++*done_;
    delete this;
  }

 private:
  std::atomic<int>* const done_;
  HealthCheckResponse response_;
  absl::Notification written_;
};

TEST(StreamCallTest, StreamsFinishedFromOtherThreadsEndCleanly) {
  Health::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  CompletionQueues queues(&builder, 2);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::atomic<int> done{0};
  ServeServerStream(
      &queues, &service, &Health::AsyncService::RequestWatch,
      [&](grpc::ServerContext*,
          const HealthCheckRequest*) -> WriteReactor<HealthCheckResponse>* {
        return new FinishesFromItsOwnThread(&done);
      });
  queues.Start();
  auto stub = Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  constexpr int kStreams = 500;
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kStreams / 4; ++i) {
        grpc::ClientContext context;
        auto reader = stub->Watch(&context, HealthCheckRequest());
        HealthCheckResponse response;
        int reads = 0;
        while (reader->Read(&response)) ++reads;
        if (reader->Finish().ok() && reads == 1) ++answered;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(answered.load(), kStreams);
  EXPECT_TRUE(
      queues.open_calls()->WaitUntilNone(absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(done.load(), kStreams);
  server->Shutdown(std::chrono::system_clock::now());
  EXPECT_EQ(queues.Shutdown(absl::Now() + absl::Seconds(5)), 0);
}

}  // namespace
}  // namespace tappa::rpc
