// A non-blocking Redis client: hiredis' async interface on libevent loops,
// each running on a thread of its own, with what hiredis 0.14 lacks built on
// the loops' timers: per-command deadlines, connect timeouts, and
// reconnection with exponential backoff.
//
// Commands may be submitted from any thread. Each callback is invoked exactly
// once, on the loop thread of the connection the command went to, with the
// reply or an error:
//   * Unavailable: not connected (commands fail fast while Redis is down, so
//     callers can fall back at once), or the connection was lost before the
//     reply arrived (the command may or may not have been applied);
//   * DeadlineExceeded: no reply before the deadline (ditto);
//   * a reply of type kError is not a Status error: callers inspect it.
// Callbacks must never block: they run on a loop that serves many other
// commands. They may do real work (a decision runs on the loop thread that
// read its contact): with several loops, that work spreads over the cores.
//
// Commands are spread over `loops` loop threads round-robin, and within a
// loop over its share of the `connections` pipelined connections; the
// commands of one Pipeline() call go to the same connection, back to back,
// and so are applied in order with nothing interleaved from this client.
// Two separate calls have no order between them.
//
// Thread safety: all public methods are thread-safe.
#ifndef TAPPA_SERVER_REDIS_REDIS_CLIENT_H_
#define TAPPA_SERVER_REDIS_REDIS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/redis/redis_url.h"

namespace tappa::server {

// An owned copy of a hiredis reply.
struct RedisReply {
  enum class Type : uint8_t {
    kString,
    kArray,
    kInteger,
    kNil,
    kStatus,
    kError
  };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;                   // kString, kStatus, kError
  std::vector<RedisReply> elements;  // kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
};

// Observes every command's latency and outcome (metrics); called on the loop
// thread. `command` is the command's first word, upper-cased by the caller's
// convention (e.g. "EVALSHA").
using RedisObserver = std::function<void(absl::string_view command,
                                         absl::Duration latency, bool ok)>;

class RedisClient {
 public:
  struct Options {
    RedisEndpoint endpoint;
    int connections = 2;  // in all; at least one per loop
    int loops = 1;        // loop threads
    absl::Duration connect_timeout = absl::Seconds(1);
    absl::Duration initial_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    RedisObserver observer;  // optional
  };

  using Callback = absl::AnyInvocable<void(absl::StatusOr<RedisReply>)>;
  using PipelineCallback =
      absl::AnyInvocable<void(absl::StatusOr<std::vector<RedisReply>>)>;

  // Starts the loop thread and begins connecting; returns at once (use
  // WaitConnected() to wait). Fails only when the loop cannot be created.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Start(Options options);

  // Stops the loop: pending callbacks get Unavailable("client stopped").
  ~RedisClient();

  // Sends one command. `deadline` bounds the wait for the reply.
  void Command(std::vector<std::string> args, absl::Time deadline,
               Callback done);

  // Sends one command on the connection `affinity` names: commands with the
  // same affinity reach Redis, and are answered, in the order they were
  // sent (from one thread, or ordered by the caller), as long as that
  // connection stays up; when it is down they go to another, and the
  // order holds no more.
  void CommandInOrder(uint64_t affinity, std::vector<std::string> args,
                      absl::Time deadline, Callback done);

  // Sends several commands back to back on one connection; `done` receives
  // every reply in order, or one error Status when any transport failure
  // happens (replies of type kError are returned as replies). An empty
  // pipeline completes at once, on the calling thread.
  void Pipeline(std::vector<std::vector<std::string>> commands,
                absl::Time deadline, PipelineCallback done);

  // True when at least one connection is up (and authenticated).
  bool connected() const { return connected_count_.load() > 0; }

  // How many connections are up (and authenticated), over every loop.
  int connections_up() const { return connected_count_.load(); }

  // Blocks until a connection is up or `timeout` passes. For start-up and
  // tests only: never call on a request path.
  bool WaitConnected(absl::Duration timeout) const;

  // The last connection error (e.g. "Redis refused authentication: WRONGPASS
  // ..."), or OK; for health checks and start-up messages.
  absl::Status last_error() const;

  class Impl;

 private:
  RedisClient();
  // The loop the next command goes to (round-robin).
  Impl& NextLoop();

  std::vector<std::unique_ptr<Impl>> loops_;
  std::atomic<size_t> next_loop_{0};
  std::atomic<int> connected_count_{0};
  friend class Impl;
};

// Blocking helpers for tests and tools (not for request paths): runs one
// command through `client` and waits for the reply.
absl::StatusOr<RedisReply> RedisCommandSync(
    RedisClient& client, std::vector<std::string> args,
    absl::Duration timeout = absl::Seconds(5));

}  // namespace tappa::server

#endif  // TAPPA_SERVER_REDIS_REDIS_CLIENT_H_
