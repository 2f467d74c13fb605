// Smoke test of tappa-loadgen against a real tappa-server and redis-server
// (process_fixture.h): a one-second, low-rate, open-loop web scenario after a
// small preload. It fails on errors or a broken harness (exit status, JSON
// shape), never on latency or throughput: a test is not a benchmark.
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/server/process_fixture.h"

namespace tappa::testing {
namespace {

const std::string kRules =
    std::string(TAPPA_SOURCE_DIR) + "/rules/examples/generated_1000.yaml";

// Runs `argv` with stdout and stderr to `log`; its exit status, or -1 when
// it could not run or was killed.
int RunProgram(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* out = freopen(log.c_str(), "w", stdout);
    if (out == nullptr || dup2(fileno(stdout), 2) < 0) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid < 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(LoadgenSmokeTest, WebScenarioRunsWithoutErrors) {
  absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  ServerProcess::Options options;
  options.rules_path = kRules;
  options.redis_url = (*redis)->url();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  TempDir dir("tappa-loadgen-smoke");
  const std::string json = dir.path() + "/web.json";
  const std::string log = dir.path() + "/loadgen.log";
  int status =
      RunProgram({TAPPA_LOADGEN_PATH, "--target=" + (*server)->grpc_address(),
                  "--rules=" + kRules, "--scenario=web", "--mode=open",
                  "--rate=200", "--contacts=200", "--preload", "--batch=100",
                  "--duration=1s", "--warmup=200ms", "--connections=2",
                  "--json=" + json, "--progress=false"},
                 log);
  ASSERT_EQ(status, 0) << ReadAll(log) << "\n---- tappa-server log ----\n"
                       << (*server)->Log();

  nlohmann::json result = nlohmann::json::parse(ReadAll(json), nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << ReadAll(json);
  EXPECT_EQ(result["scenario"], "web");
  EXPECT_EQ(result["mode"], "open");
  const nlohmann::json& total = result["total"];
  EXPECT_GT(total["ok"].get<int>(), 0);
  EXPECT_EQ(total["error_count"].get<int>(), 0) << total.dump();
  EXPECT_EQ(total["item_errors"].get<int>(), 0) << total.dump();
  EXPECT_TRUE(result["by_method"].contains("NextBestAction")) << result.dump();
  EXPECT_GT(total["latency"]["p99_us"].get<double>(), 0);
}

TEST(LoadgenSmokeTest, CampaignScenarioRunsWithoutErrors) {
  absl::StatusOr<std::unique_ptr<RedisProcess>> redis = RedisProcess::Start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  ServerProcess::Options options;
  options.rules_path = kRules;
  options.redis_url = (*redis)->url();
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  TempDir dir("tappa-loadgen-smoke");
  const std::string json = dir.path() + "/campaign.json";
  const std::string log = dir.path() + "/loadgen.log";
  int status = RunProgram(
      {TAPPA_LOADGEN_PATH, "--target=" + (*server)->grpc_address(),
       "--rules=" + kRules, "--scenario=campaign", "--streams=2",
       "--contacts=1000", "--channel=email", "--duration=1s", "--warmup=200ms",
       "--connections=2", "--json=" + json, "--progress=false"},
      log);
  ASSERT_EQ(status, 0) << ReadAll(log) << "\n---- tappa-server log ----\n"
                       << (*server)->Log();

  nlohmann::json result = nlohmann::json::parse(ReadAll(json), nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << ReadAll(json);
  EXPECT_EQ(result["scenario"], "campaign");
  EXPECT_EQ(result["streams"], 2);
  EXPECT_EQ(result["failed_streams"], 0);
  const nlohmann::json& total = result["total"];
  EXPECT_GT(total["ok"].get<int>(), 0);
  EXPECT_EQ(total["error_count"].get<int>(), 0) << total.dump();
  EXPECT_TRUE(result["by_method"].contains("DecideBatch")) << result.dump();

  // A fixed number of requests (the million-request run's mode, smaller):
  // every one is answered once, none lost in the drain, odd split included.
  const std::string drained = dir.path() + "/drained.json";
  status =
      RunProgram({TAPPA_LOADGEN_PATH, "--target=" + (*server)->grpc_address(),
                  "--rules=" + kRules, "--scenario=campaign", "--streams=2",
                  "--requests=3001", "--contacts=1000", "--channel=email",
                  "--connections=2", "--json=" + drained, "--progress=false"},
                 log);
  ASSERT_EQ(status, 0) << ReadAll(log) << "\n---- tappa-server log ----\n"
                       << (*server)->Log();
  result = nlohmann::json::parse(ReadAll(drained), nullptr, false);
  ASSERT_FALSE(result.is_discarded()) << ReadAll(drained);
  EXPECT_EQ(result["requests"], 3001);
  EXPECT_EQ(result["total"]["ok"].get<int>() +
                result["total"]["error_count"].get<int>(),
            3001)
      << result.dump();
  EXPECT_EQ(result["total"]["error_count"].get<int>(), 0);
  EXPECT_GT(result["duration_s"].get<double>(), 0);
}

}  // namespace
}  // namespace tappa::testing
