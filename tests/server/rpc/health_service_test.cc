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

// A gRPC server of one service on a free loopback port, its completion
// queues, and a health stub on a channel to it. The test arms the methods
// (Serve*) between construction and Start.
struct ServerOf {
  ServerOf(grpc::Service* service, int threads) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service);
    queues = std::make_unique<CompletionQueues>(&builder, threads);
    server = builder.BuildAndStart();
    stub = Health::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                            grpc::InsecureChannelCredentials()));
  }
  // Stops the server; the number of calls still open afterwards.
  int64_t Stop() {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    return queues->Shutdown(absl::Now() + absl::Seconds(5));
  }

  std::unique_ptr<CompletionQueues> queues;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Health::Stub> stub;
};

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(served_.server, nullptr);
    health_.Serve(served_.queues.get());
    served_.queues->Start();
  }

  void TearDown() override {
    health_.Shutdown();
    EXPECT_EQ(served_.Stop(), 0);
  }

  grpc::Status Check(const std::string& service, HealthCheckResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
    HealthCheckRequest request;
    request.set_service(service);
    return served_.stub->Check(&context, request, out);
  }

  // Waits (up to 5 s) for no call to be open on the server.
  bool NoCallOpen() {
    return served_.queues->open_calls()->WaitUntilNone(absl::Now() +
                                                       absl::Seconds(5));
  }

  HealthService health_;
  ServerOf served_{health_.grpc_service(), 2};
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
  auto reader = served_.stub->Watch(&context, request);
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
  auto reader = served_.stub->Watch(&context, request);
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
    auto reader = served_.stub->Watch(&context, HealthCheckRequest());
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
  ServerOf served(&service, 1);
  ASSERT_NE(served.server, nullptr);
  absl::Notification arrived;
  UnaryReactor* held = nullptr;
  HealthCheckResponse* held_response = nullptr;
  ServeUnary(served.queues.get(), &service, &Health::AsyncService::RequestCheck,
             [&](grpc::ServerContext*, const HealthCheckRequest*,
                 HealthCheckResponse* response, UnaryReactor* reactor) {
               held = reactor;
               held_response = response;
               arrived.Notify();
             });
  served.queues->Start();

  grpc::Status client_status;
  HealthCheckResponse client_response;
  std::thread client([&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    client_status =
        served.stub->Check(&context, HealthCheckRequest(), &client_response);
  });
  ASSERT_TRUE(arrived.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(served.queues->open_calls()->open(), 1);

  std::thread answerer([&] {
    absl::SleepFor(absl::Milliseconds(300));
    held_response->set_status(HealthCheckResponse::SERVING);
    held->Finish(grpc::Status::OK);
  });
  EXPECT_EQ(served.Stop(), 0);
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
  ServerOf served(&service, 2);
  ASSERT_NE(served.server, nullptr);
  std::atomic<int> done{0};
  ServeServerStream(
      served.queues.get(), &service, &Health::AsyncService::RequestWatch,
      [&](grpc::ServerContext*,
          const HealthCheckRequest*) -> WriteReactor<HealthCheckResponse>* {
        return new FinishesFromItsOwnThread(&done);
      });
  served.queues->Start();
  constexpr int kStreams = 500;
  std::vector<std::thread> clients;
  std::atomic<int> answered{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kStreams / 4; ++i) {
        grpc::ClientContext context;
        auto reader = served.stub->Watch(&context, HealthCheckRequest());
        HealthCheckResponse response;
        int reads = 0;
        while (reader->Read(&response)) ++reads;
        if (reader->Finish().ok() && reads == 1) ++answered;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(answered.load(), kStreams);
  EXPECT_TRUE(served.queues->open_calls()->WaitUntilNone(absl::Now() +
                                                         absl::Seconds(5)));
  EXPECT_EQ(done.load(), kStreams);
  EXPECT_EQ(served.Stop(), 0);
}

}  // namespace
}  // namespace tappa::rpc
