// End-to-end tests of hot ruleset reload (AdminService.ReloadRuleset,
// SIGHUP) and AdminService.GetRuleset: the real tappa-server against a
// private redis-server, with the ruleset in a file the test rewrites.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tappa/v1/admin_service.grpc.pb.h"
#include "tests/server/process_fixture.h"
#include "tests/server/tappa_client.h"

namespace tappa::testing {
namespace {

#define ASSERT_RPC_OK(expr)                                          \
  do {                                                               \
    grpc::Status _status = (expr);                                   \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << Describe(_status); \
  } while (0)

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class AdminE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    original_ = ReadFile(absl::StrCat(
        TAPPA_SOURCE_DIR, "/tests/server/testdata/decisioning.yaml"));
    ASSERT_FALSE(original_.empty());
    path_ = absl::StrCat(dir_.path(), "/rules.yaml");
    Write(original_);
    absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    ServerProcess::Options options;
    options.rules_path = path_;
    options.redis_url = redis_->url();
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = std::make_unique<TappaClient>(server_->channel());
    admin_ = tappa::v1::AdminService::NewStub(server_->channel());
  }

  void Write(const std::string& text) {
    std::string tmp = path_ + ".tmp";
    std::ofstream(tmp) << text;
    ASSERT_EQ(std::rename(tmp.c_str(), path_.c_str()), 0);
  }

  // The hello message's text as NextBestAction answers it now.
  std::string SideText(const std::string& contact) {
    tappa::v1::NextBestActionResponse r;
    grpc::Status s = client_->Nba(MakeNba(contact, "web", "web.side"), &r);
    if (!s.ok() || r.actions_size() != 1) return "";
    return r.actions(0).content().fields().at("text").string_value();
  }

  tappa::v1::RulesetInfo Info() {
    grpc::ClientContext context;
    tappa::v1::GetRulesetRequest request;
    tappa::v1::GetRulesetResponse response;
    EXPECT_TRUE(admin_->GetRuleset(&context, request, &response).ok());
    return response.ruleset();
  }

  grpc::Status Reload(tappa::v1::ReloadRulesetResponse* response) {
    grpc::ClientContext context;
    tappa::v1::ReloadRulesetRequest request;
    return admin_->ReloadRuleset(&context, request, response);
  }

  TempDir dir_{"tappa-admin"};
  std::string original_;
  std::string path_;
  std::unique_ptr<RedisProcess> redis_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TappaClient> client_;
  std::unique_ptr<tappa::v1::AdminService::Stub> admin_;
};

TEST_F(AdminE2eTest, ReloadUnderLoadChangesAnswersAndLosesNothing) {
  tappa::v1::RulesetInfo before = Info();
  EXPECT_EQ(before.name(), "decisioning-test");
  EXPECT_EQ(before.version().size(), 64u);
  EXPECT_EQ(before.source(), path_);
  EXPECT_EQ(before.actions(), 11);
  EXPECT_EQ(SideText("load-0"), "Hello");

  // Decisions run without pause while the ruleset is replaced.
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, errors{0}, new_answers{0};
  std::thread load([&] {
    TappaClient client(server_->NewChannel());
    for (int i = 0; !stop; ++i) {
      tappa::v1::NextBestActionResponse r;
      grpc::Status s = client.Nba(
          MakeNba(absl::StrCat("load-", i % 50), "web", "web.side"), &r);
      ++calls;
      if (!s.ok() || r.degraded() || r.actions_size() != 1) {
        ++errors;
        continue;
      }
      if (r.actions(0).content().fields().at("text").string_value() ==
          "Hello again") {
        ++new_answers;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(200));
  Write(absl::StrReplaceAll(original_, {{"content: {text: \"Hello\"}",
                                         "content: {text: \"Hello again\"}"}}));
  tappa::v1::ReloadRulesetResponse reloaded;
  ASSERT_RPC_OK(Reload(&reloaded));
  EXPECT_TRUE(reloaded.changed());
  EXPECT_NE(reloaded.ruleset().version(), before.version());
  absl::SleepFor(absl::Milliseconds(200));
  stop = true;
  load.join();
  EXPECT_EQ(errors.load(), 0) << "of " << calls.load();
  EXPECT_GT(new_answers.load(), 0);
  EXPECT_EQ(SideText("after"), "Hello again");
  EXPECT_EQ(Info().version(), reloaded.ruleset().version());

  // The same file again: nothing changes.
  ASSERT_RPC_OK(Reload(&reloaded));
  EXPECT_FALSE(reloaded.changed());
}

TEST_F(AdminE2eTest, BrokenRulesetChangesNothing) {
  tappa::v1::RulesetInfo before = Info();
  Write(original_ + "\nnot_a_key: 1\n");
  tappa::v1::ReloadRulesetResponse response;
  grpc::Status s = Reload(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("rules.yaml:"));
  EXPECT_THAT(s.error_message(), ::testing::HasSubstr("not_a_key"));
  EXPECT_EQ(Info().version(), before.version());
  EXPECT_EQ(SideText("still"), "Hello");
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(
      *metrics,
      ::testing::HasSubstr("tappa_ruleset_reloads_total{result=\"failed\"} 1"));
}

TEST_F(AdminE2eTest, RenamedPhasesCarryContactsAcrossAReload) {
  ASSERT_RPC_OK(client_->Track(MakeEvent("buyer", "p-1", "purchase", "web")));
  ASSERT_RPC_OK(client_->Track(MakeEvent("other", "p-2", "purchase", "web")));
  tappa::v1::Contact contact;
  ASSERT_RPC_OK(client_->Get("buyer", &contact));
  ASSERT_EQ(contact.phase(), "conversion");
  // "conversion" becomes "customer"; contacts stored in it follow.
  std::string renamed = absl::StrReplaceAll(
      original_, {{"  - {id: conversion}", "  - {id: customer}"},
                  {"{to: conversion,", "{to: customer,"}});
  Write(renamed + "\nrenamed_phases: {conversion: customer}\n");
  tappa::v1::ReloadRulesetResponse response;
  ASSERT_RPC_OK(Reload(&response));
  ASSERT_RPC_OK(client_->Get("buyer", &contact));
  EXPECT_EQ(contact.phase(), "customer");
  // Without the mapping they are in the initial phase, and counted.
  Write(renamed);
  ASSERT_RPC_OK(Reload(&response));
  ASSERT_RPC_OK(client_->Get("other", &contact));
  EXPECT_EQ(contact.phase(), "awareness");
  tappa::v1::NextBestActionResponse nba;
  ASSERT_RPC_OK(client_->Nba(MakeNba("other", "web", "web.side"), &nba));
  EXPECT_EQ(nba.phase(), "awareness");
  absl::StatusOr<std::string> metrics = server_->ScrapeMetrics();
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics,
              ::testing::HasSubstr("tappa_contacts_phase_unknown_total 1"));
  // A mapping from a current phase, or to an unknown one, is refused.
  Write(original_ + "\nrenamed_phases: {awareness: conversion}\n");
  grpc::Status s = Reload(&response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              ::testing::HasSubstr("is a phase of this ruleset"));
}

TEST_F(AdminE2eTest, SighupReloads) {
  std::string version = Info().version();
  Write(absl::StrReplaceAll(
      original_, {{"content: {text: \"Hello\"}", "content: {text: \"Hi\"}"}}));
  ASSERT_EQ(kill(server_->pid(), SIGHUP), 0);
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Info().version() == version) {
    ASSERT_LT(absl::Now(), give_up);
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(SideText("hup"), "Hi");
  EXPECT_TRUE(server_->running());
}

TEST_F(AdminE2eTest, RulesWatchReloadsWhenTheFileChanges) {
  ServerProcess::Options options;
  options.rules_path = path_;
  options.redis_url = redis_->url();
  options.extra_flags = {"--rules_watch=50ms"};
  absl::StatusOr<std::unique_ptr<ServerProcess>> watching =
      ServerProcess::Start(options);
  ASSERT_TRUE(watching.ok()) << watching.status();
  auto admin = tappa::v1::AdminService::NewStub((*watching)->channel());
  auto version = [&] {
    grpc::ClientContext context;
    tappa::v1::GetRulesetRequest request;
    tappa::v1::GetRulesetResponse response;
    EXPECT_TRUE(admin->GetRuleset(&context, request, &response).ok());
    return response.ruleset().version();
  };
  const std::string before = version();
  // A broken version is reported and changes nothing...
  Write("phases: [\n");
  EXPECT_TRUE(PollUntil(
      [&] { return absl::StrContains((*watching)->Log(), "rules.yaml:"); },
      absl::Seconds(10)))
      << (*watching)->Log();
  EXPECT_EQ(version(), before);
  // ...and the next good one is served without a signal.
  Write(absl::StrReplaceAll(
      original_, {{"content: {text: \"Hello\"}", "content: {text: \"Hi\"}"}}));
  EXPECT_TRUE(
      PollUntil([&] { return version() != before; }, absl::Seconds(10)));
  EXPECT_TRUE((*watching)->running());
}

}  // namespace
}  // namespace tappa::testing
