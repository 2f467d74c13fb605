// Real processes for end-to-end tests: a private `redis-server` and the real
// `tappa-server` binary, each on free loopback ports in a temporary directory
// of its own, plus the small clients the tests need to talk to them (a
// synchronous Redis connection, raw gRPC calls, the health check, an HTTP GET
// for /metrics).
//
// Lifetime: every process started here is killed (SIGKILL) by its owner's
// destructor if it is still running, and its directory is removed. Children
// also get PR_SET_PDEATHSIG(SIGKILL), so a crashed or killed test binary does
// not leave servers behind. PDEATHSIG fires when the *thread* that forked
// exits, so start and restart processes from the test's main thread.
//
// Waiting: nothing sleeps for a fixed time; readiness and exits are polled at
// short intervals up to a bounded total, and a timeout is an error Status.
//
// Thread safety: RedisProcess::Command() and the const methods of
// ServerProcess may be called from any thread; starting, stopping and
// restarting must come from one thread (the test's).
#ifndef TAPPA_TESTS_SERVER_PROCESS_FIXTURE_H_
#define TAPPA_TESTS_SERVER_PROCESS_FIXTURE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"

struct redisContext;

namespace tappa::testing {

// A TCP port on 127.0.0.1 that was free when asked (bound to port 0 and read
// back). Another process may take it before it is used; the Start() functions
// below retry with a new port when their child cannot listen.
int PickFreePort();

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction.
class TempDir {
 public:
  // Aborts the test binary if no directory can be created (nothing useful
  // can run without one).
  explicit TempDir(absl::string_view prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A Redis reply, copied out of hiredis.
struct SyncRedisReply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;                       // kString, kStatus, kError
  std::vector<SyncRedisReply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
};

// One synchronous (blocking) hiredis connection. Not thread-safe.
class RedisConnection {
 public:
  // Connects to 127.0.0.1:`port`; Unavailable when nothing answers within
  // `timeout` (which also bounds every later read).
  static absl::StatusOr<std::unique_ptr<RedisConnection>> Connect(
      int port, absl::Duration timeout = absl::Seconds(5));
  ~RedisConnection();

  // Sends one command and reads its reply. A reply of type kError is a
  // reply, not an error Status; transport failures are Unavailable and leave
  // the connection unusable.
  absl::StatusOr<SyncRedisReply> Command(const std::vector<std::string>& args);

  // Reads the next reply without sending anything (for MONITOR).
  absl::StatusOr<SyncRedisReply> ReadReply();

 private:
  explicit RedisConnection(redisContext* context) : context_(context) {}
  redisContext* context_;
};

// A private redis-server on a free loopback port, persisting to its own
// temporary directory with an append-only file fsynced every second (the
// production setting of ARCHITECTURE decision 6).
class RedisProcess {
 public:
  struct Options {
    // Appended to the command line (e.g. {"--maxmemory", "10mb"}).
    std::vector<std::string> extra_args;
    absl::Duration start_timeout = absl::Seconds(10);
  };

  // Starts redis-server and returns once it answers PING with PONG.
  static absl::StatusOr<std::unique_ptr<RedisProcess>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisProcess>> Start() {
    return Start(Options());
  }

  // Kills the process if it runs, then removes its directory.
  ~RedisProcess();

  int port() const { return port_; }
  const std::string& dir() const { return dir_.path(); }
  // "redis://127.0.0.1:<port>", for tappa-server's --redis_url.
  std::string url() const;
  // Whether the child process is alive (reaps it when it has exited).
  bool running();

  // SHUTDOWN (Redis flushes and fsyncs the append-only file first), then
  // waits for the process to exit.
  absl::Status Shutdown(absl::Duration timeout = absl::Seconds(10));
  // SIGKILL, then waits for the process to exit: nothing gets flushed.
  void Kill();
  // Starts redis-server again on the same port and directory (it reloads the
  // append-only file) and waits until it answers PING. The process must be
  // stopped.
  absl::Status Restart();

  // Runs one command on a connection kept by this object (reconnecting when
  // Redis was restarted). Thread-safe.
  absl::StatusOr<SyncRedisReply> Command(const std::vector<std::string>& args);

  // A new connection of the caller's own (e.g. for MONITOR).
  absl::StatusOr<std::unique_ptr<RedisConnection>> Connect() const;

  // redis-server's stdout and stderr so far (for failure messages).
  std::string Log() const;

 private:
  RedisProcess(Options options, int port);
  absl::Status Spawn();

  Options options_;
  TempDir dir_;
  int port_;
  pid_t pid_ = -1;
  absl::Mutex mu_;
  std::unique_ptr<RedisConnection> connection_ ABSL_GUARDED_BY(mu_);
};

// What grpc.health.v1.Health/Check answered.
enum class HealthState {
  kUnknown = 0,
  kServing = 1,
  kNotServing = 2,
  kServiceUnknown = 3
};

// The real tappa-server binary (built by this project; its path comes from
// the compile definition TAPPA_SERVER_PATH) listening on free loopback ports.
class ServerProcess {
 public:
  struct Options {
    // Empty: the repository's rules/examples/retail.yaml.
    std::string rules_path;
    // Required: e.g. RedisProcess::url().
    std::string redis_url;
    // Appended to the command line (e.g. "--decision_budget=50ms").
    std::vector<std::string> extra_flags;
    // Start() returns once the health check answers SERVING (Redis up and
    // ruleset loaded); when false, once it answers at all.
    bool wait_serving = true;
    absl::Duration start_timeout = absl::Seconds(20);
    // For channel() and NewChannel(), and the readiness check; null =
    // plaintext (a server started with --tls_cert needs TLS credentials).
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
    // The host of --grpc_listen (e.g. "0.0.0.0" to listen beyond loopback);
    // channels still connect through 127.0.0.1.
    std::string listen_host = "127.0.0.1";
  };

  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(Options options);

  // Kills the process if it is still running.
  ~ServerProcess();

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  pid_t pid() const { return pid_; }

  // A channel shared by callers (one HTTP/2 connection).
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // A channel with a connection of its own (for concurrent clients, so they
  // do not share one HTTP/2 connection).
  std::shared_ptr<grpc::Channel> NewChannel() const;

  // Whether the process is alive (reaps it when it has exited).
  bool running();

  // SIGTERM, then waits for the exit. Yields the exit status (0-255), or
  // 128 + the signal number when a signal ended it; DeadlineExceeded when it
  // did not exit within `timeout` (it is then killed).
  absl::StatusOr<int> Terminate(absl::Duration timeout = absl::Seconds(15));

  // The server's stdout and stderr so far (for failure messages).
  std::string Log() const;

  // grpc.health.v1.Health/Check for `service` ("" = the whole server).
  absl::StatusOr<HealthState> Health(
      absl::string_view service = "",
      absl::Duration timeout = absl::Seconds(1)) const;

  // GET http://<metrics_listen>/metrics: the body of a 200 answer.
  absl::StatusOr<std::string> ScrapeMetrics() const;

 private:
  explicit ServerProcess(Options options);
  absl::Status Spawn();

  Options options_;
  TempDir dir_;
  std::string log_path_;
  std::string grpc_address_;
  std::string metrics_address_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
};

// One unary call with hand-made request bytes (to send what the generated
// code would refuse to build, e.g. a string field that is not UTF-8).
// `method` is the full path, e.g. "/tappa.v1.JourneyService/GetContact".
// Yields the status and the response bytes.
std::pair<grpc::Status, std::string> CallRaw(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& request, absl::Duration timeout);

// GET http://`host_port``path` over HTTP/1.0: the body of a 200 answer;
// Unavailable when the connection fails, Internal for another status.
absl::StatusOr<std::string> HttpGet(const std::string& host_port,
                                    const std::string& path,
                                    absl::Duration timeout = absl::Seconds(5));

// Polls `condition` every `interval` until it holds or `timeout` passes;
// returns whether it held.
template <typename Condition>
bool PollUntil(Condition condition, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(10));

// The source tree (TAPPA_SOURCE_DIR), for rulesets and fixtures.
std::string SourceDir();

template <typename Condition>
bool PollUntil(Condition condition, absl::Duration timeout,
               absl::Duration interval) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
}

}  // namespace tappa::testing

#endif  // TAPPA_TESTS_SERVER_PROCESS_FIXTURE_H_
