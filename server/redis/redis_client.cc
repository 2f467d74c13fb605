#include "server/redis/redis_client.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"

namespace tappa::server {
namespace {

RedisReply CopyReply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(CopyReply(r->element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

timeval DurationToTimeval(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  return absl::ToTimeval(d);
}

// How long a connection may have commands outstanding without any reply
// before it is considered dead (a peer that vanished without a reset).
constexpr absl::Duration kStallTimeout = absl::Seconds(3);
constexpr absl::Duration kWatchdogPeriod = absl::Milliseconds(250);

}  // namespace

class RedisClient::Impl {
 public:
  // One Command() or Pipeline() call in flight.
  struct Request {
    Impl* impl = nullptr;
    std::vector<std::vector<std::string>> commands;
    absl::Time deadline;
    absl::Time start;
    bool is_pipeline = false;
    Callback single;
    PipelineCallback multi;
    std::vector<RedisReply> replies;
    bool finished = false;  // the user's callback has run
    int outstanding = 0;    // hiredis callbacks still to come
    event* timer = nullptr;
    // Commands with the same affinity go to the same connection while it
    // is up (RedisClient::CommandInOrder); nullopt: any.
    std::optional<uint64_t> affinity;
  };

  struct Connection {
    Impl* impl = nullptr;
    int index = 0;
    redisAsyncContext* ac = nullptr;
    enum class State {
      kIdle,
      kConnecting,
      kAuthenticating,
      kReady
    } state = State::kIdle;
    event* retry_timer = nullptr;
    event* connect_timer = nullptr;
    absl::Duration backoff;
    int outstanding = 0;
    absl::Time last_reply;
  };

  // `connections` of its own, served by its own loop thread.
  Impl(RedisClient* owner, Options options, int connections)
      : owner_(owner),
        options_(std::move(options)),
        connection_count_(connections) {}

  absl::Status Init() {
    static absl::once_flag once;
    absl::call_once(once, [] { evthread_use_pthreads(); });
    base_ = event_base_new();
    if (base_ == nullptr) return absl::InternalError("event_base_new failed");
    wake_ = event_new(base_, -1, 0, &Impl::OnWake, this);
    watchdog_ = event_new(base_, -1, EV_PERSIST, &Impl::OnWatchdog, this);
    timeval period = DurationToTimeval(kWatchdogPeriod);
    event_add(watchdog_, &period);
    for (int i = 0; i < connection_count_; ++i) {
      auto c = std::make_unique<Connection>();
      c->impl = this;
      c->index = i;
      c->backoff = options_.initial_backoff;
      c->retry_timer = event_new(base_, -1, 0, &Impl::OnRetry, c.get());
      c->connect_timer =
          event_new(base_, -1, 0, &Impl::OnConnectTimeout, c.get());
      connections_.push_back(std::move(c));
    }
    for (auto& c : connections_) Connect(c.get());
    thread_ = std::thread(
        [this] { event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY); });
    // Named for operators (top -H, perf) and for per-thread measurements.
    pthread_setname_np(thread_.native_handle(), "redis-loop");
    return absl::OkStatus();
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (base_ != nullptr) {
      event_base_loopbreak(base_);
      if (thread_.joinable()) thread_.join();
    }
    // The loop is stopped: everything below runs on this thread alone.
    for (auto& c : connections_) {
      if (c->ac != nullptr) {
        redisAsyncContext* ac = c->ac;
        c->ac = nullptr;
        redisAsyncFree(ac);  // pending callbacks see a null reply
      }
      event_free(c->retry_timer);
      event_free(c->connect_timer);
    }
    std::deque<Request*> queued;
    {
      absl::MutexLock lock(&mu_);
      queued.swap(queue_);
    }
    for (Request* r : queued)
      Fail(r, absl::UnavailableError("Redis client stopped"));
    if (wake_ != nullptr) event_free(wake_);
    if (watchdog_ != nullptr) event_free(watchdog_);
    if (base_ != nullptr) event_base_free(base_);
  }

  void Submit(Request* r) {
    r->impl = this;
    r->start = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_) {
        queue_.push_back(r);
        r = nullptr;
      }
    }
    if (r != nullptr) {
      Fail(r, absl::UnavailableError("Redis client stopped"));
      return;
    }
    event_active(wake_, 0, 0);
  }

  absl::Status last_error() const {
    absl::MutexLock lock(&mu_);
    return last_error_;
  }

  // True when one of this loop's connections is up.
  bool ready() const { return ready_.load(std::memory_order_relaxed) > 0; }

 private:
  // ---- Submission (loop thread) ------------------------------------------
  static void OnWake(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    std::deque<Request*> batch;
    {
      absl::MutexLock lock(&self->mu_);
      batch.swap(self->queue_);
    }
    for (Request* r : batch) self->Dispatch(r);
  }

  Connection* PickConnection() {
    size_t n = connections_.size();
    for (size_t i = 0; i < n; ++i) {
      Connection* c = connections_[(next_ + i) % n].get();
      if (c->state == Connection::State::kReady) {
        next_ = (next_ + i + 1) % n;
        return c;
      }
    }
    return nullptr;
  }

  void Dispatch(Request* r) {
    absl::Time now = absl::Now();
    if (now >= r->deadline) {
      Fail(r,
           absl::DeadlineExceededError("Redis deadline passed before sending"));
      return;
    }
    Connection* c = nullptr;
    if (r->affinity.has_value()) {
      Connection* mine = connections_[*r->affinity % connections_.size()].get();
      if (mine->state == Connection::State::kReady) c = mine;
    }
    if (c == nullptr) c = PickConnection();
    if (c == nullptr) {
      Fail(r, absl::UnavailableError("Redis is not connected"));
      return;
    }
    Send(c, r, r->deadline - now, "Redis connection failed while sending");
  }

  // Arms the request's deadline timer and writes its commands back to back
  // on `c`; fails the request with `failure` if the context is broken (what
  // was already sent gets null replies later).
  void Send(Connection* c, Request* r, absl::Duration timeout,
            absl::string_view failure) {
    r->timer = evtimer_new(base_, &Impl::OnRequestTimeout, r);
    timeval tv = DurationToTimeval(timeout);
    evtimer_add(r->timer, &tv);
    r->replies.resize(r->commands.size());
    for (size_t i = 0; i < r->commands.size(); ++i) {
      if (!SendOne(c, r, i)) {
        Fail(r, absl::UnavailableError(failure));
        return;
      }
    }
  }

  // The hiredis privdata of one sub-command: the request and the index.
  struct SubCommand {
    Request* request;
    size_t index;
    Connection* connection;
  };

  bool SendOne(Connection* c, Request* r, size_t index) {
    const std::vector<std::string>& args = r->commands[index];
    std::vector<const char*> argv(args.size());
    std::vector<size_t> argvlen(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      argv[i] = args[i].data();
      argvlen[i] = args[i].size();
    }
    auto* sub = new SubCommand{r, index, c};
    if (redisAsyncCommandArgv(c->ac, &Impl::OnReply, sub,
                              static_cast<int>(args.size()), argv.data(),
                              argvlen.data()) != REDIS_OK) {
      delete sub;
      return false;
    }
    ++r->outstanding;
    if (c->outstanding++ == 0) c->last_reply = absl::Now();
    return true;
  }

  static void OnReply(redisAsyncContext*, void* reply, void* privdata) {
    auto* sub = static_cast<SubCommand*>(privdata);
    Request* r = sub->request;
    Impl* self = r->impl;
    Connection* c = sub->connection;
    size_t index = sub->index;
    delete sub;
    // After a reconnect the count restarted at zero: late null replies of the
    // old context must not drive it negative.
    if (c->outstanding > 0) --c->outstanding;
    --r->outstanding;
    if (reply == nullptr) {
      self->Fail(r, absl::UnavailableError("Redis connection lost"));
      return;
    }
    c->last_reply = absl::Now();
    if (!r->finished) {
      r->replies[index] = CopyReply(static_cast<redisReply*>(reply));
      // Replies arrive in order on one connection: the last one completes.
      if (index == r->replies.size() - 1) self->Succeed(r);
    }
    self->MaybeDelete(r);
  }

  static void OnRequestTimeout(evutil_socket_t, short, void* arg) {
    auto* r = static_cast<Request*>(arg);
    r->impl->Fail(r, absl::DeadlineExceededError(
                         "Redis did not answer before the deadline"));
  }

  void Observe(Request* r, bool ok) {
    if (options_.observer && !r->commands.empty() && !r->commands[0].empty()) {
      options_.observer(r->commands[0][0], absl::Now() - r->start, ok);
    }
  }

  void Succeed(Request* r) {
    r->finished = true;
    bool ok = true;
    for (const RedisReply& reply : r->replies) ok = ok && !reply.is_error();
    Observe(r, ok);
    if (r->is_pipeline) {
      r->multi(std::move(r->replies));
    } else {
      r->single(std::move(r->replies[0]));
    }
    r->single = nullptr;
    r->multi = nullptr;
  }

  void Fail(Request* r, absl::Status status) {
    if (!r->finished) {
      r->finished = true;
      Observe(r, false);
      if (r->is_pipeline) {
        r->multi(status);
      } else {
        r->single(status);
      }
      r->single = nullptr;
      r->multi = nullptr;
    }
    MaybeDelete(r);
  }

  void MaybeDelete(Request* r) {
    if (!r->finished || r->outstanding > 0) return;
    if (r->timer != nullptr) event_free(r->timer);
    delete r;
  }

  // ---- Connections (loop thread) -----------------------------------------
  void SetError(absl::Status status) {
    absl::MutexLock lock(&mu_);
    last_error_ = std::move(status);
  }

  void Connect(Connection* c) {
    const RedisEndpoint& ep = options_.endpoint;
    redisAsyncContext* ac = ep.is_unix()
                                ? redisAsyncConnectUnix(ep.unix_path.c_str())
                                : redisAsyncConnect(ep.host.c_str(), ep.port);
    if (ac == nullptr || ac->err) {
      SetError(absl::UnavailableError(
          absl::StrCat("cannot connect to Redis at ", ep.Redacted(), ": ",
                       ac != nullptr ? ac->errstr : "out of memory")));
      if (ac != nullptr) redisAsyncFree(ac);
      ScheduleRetry(c);
      return;
    }
    ac->data = c;
    c->ac = ac;
    c->state = Connection::State::kConnecting;
    redisLibeventAttach(ac, base_);
    redisAsyncSetConnectCallback(ac, &Impl::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnect);
    timeval tv = DurationToTimeval(options_.connect_timeout);
    evtimer_add(c->connect_timer, &tv);
  }

  static void OnConnect(const redisAsyncContext* ac, int status) {
    auto* c = static_cast<Connection*>(ac->data);
    Impl* self = c->impl;
    evtimer_del(c->connect_timer);
    if (status != REDIS_OK) {
      self->SetError(absl::UnavailableError(
          absl::StrCat("cannot connect to Redis at ",
                       self->options_.endpoint.Redacted(), ": ", ac->errstr)));
      c->ac = nullptr;  // hiredis frees the context after this callback
      c->state = Connection::State::kIdle;
      self->ScheduleRetry(c);
      return;
    }
    self->Handshake(c);
  }

  // AUTH and SELECT before the connection takes traffic.
  void Handshake(Connection* c) {
    c->state = Connection::State::kAuthenticating;
    const RedisEndpoint& ep = options_.endpoint;
    std::vector<std::vector<std::string>> cmds;
    if (!ep.password.empty()) {
      if (ep.user.empty()) {
        cmds.push_back({"AUTH", ep.password});
      } else {
        cmds.push_back({"AUTH", ep.user, ep.password});
      }
    }
    if (ep.db != 0) cmds.push_back({"SELECT", std::to_string(ep.db)});
    cmds.push_back({"PING"});
    auto* r = new Request();
    r->impl = this;
    r->start = absl::Now();
    r->deadline = r->start + options_.connect_timeout;
    r->commands = std::move(cmds);
    r->is_pipeline = true;
    r->multi = [this, c](absl::StatusOr<std::vector<RedisReply>> replies) {
      if (c->ac == nullptr) return;
      absl::Status problem;
      if (!replies.ok()) {
        problem = replies.status();
      } else {
        for (const RedisReply& reply : *replies) {
          if (reply.is_error()) {
            bool auth = absl::StartsWith(reply.str, "WRONGPASS") ||
                        absl::StartsWith(reply.str, "NOAUTH") ||
                        absl::StrContains(reply.str, "AUTH");
            problem = absl::UnauthenticatedError(
                absl::StrCat(auth ? "Redis refused authentication: "
                                  : "Redis handshake failed: ",
                             reply.str));
            break;
          }
        }
      }
      if (!problem.ok()) {
        SetError(problem);
        redisAsyncContext* ac = c->ac;
        c->ac = nullptr;
        c->state = Connection::State::kIdle;
        ac->data = nullptr;
        redisAsyncDisconnect(ac);
        ScheduleRetry(c);
        return;
      }
      c->state = Connection::State::kReady;
      c->backoff = options_.initial_backoff;
      SetError(absl::OkStatus());
      ready_.fetch_add(1);
      owner_->connected_count_.fetch_add(1);
    };
    Send(c, r, options_.connect_timeout,
         "Redis connection failed during handshake");
  }

  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    auto* c = static_cast<Connection*>(ac->data);
    if (c == nullptr) return;  // we dropped it on purpose (handshake failure)
    Impl* self = c->impl;
    if (c->state == Connection::State::kReady) {
      self->ready_.fetch_sub(1);
      self->owner_->connected_count_.fetch_sub(1);
    }
    c->ac = nullptr;
    c->state = Connection::State::kIdle;
    c->outstanding = 0;
    {
      absl::MutexLock lock(&self->mu_);
      if (self->stopping_) return;
    }
    self->SetError(absl::UnavailableError(absl::StrCat(
        "lost the connection to Redis at ", self->options_.endpoint.Redacted(),
        status == REDIS_OK ? "" : absl::StrCat(": ", ac->errstr))));
    self->ScheduleRetry(c);
  }

  static void OnConnectTimeout(evutil_socket_t, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    Impl* self = c->impl;
    if (c->state != Connection::State::kConnecting || c->ac == nullptr) return;
    self->SetError(absl::UnavailableError(
        absl::StrCat("timed out connecting to Redis at ",
                     self->options_.endpoint.Redacted())));
    redisAsyncContext* ac = c->ac;
    c->ac = nullptr;
    c->state = Connection::State::kIdle;
    ac->data = nullptr;
    redisAsyncFree(ac);
    self->ScheduleRetry(c);
  }

  void ScheduleRetry(Connection* c) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    timeval tv = DurationToTimeval(c->backoff);
    evtimer_add(c->retry_timer, &tv);
    c->backoff = std::min(c->backoff * 2, options_.max_backoff);
  }

  static void OnRetry(evutil_socket_t, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    if (c->ac == nullptr) c->impl->Connect(c);
  }

  // Drops connections that stopped answering without being closed.
  static void OnWatchdog(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    absl::Time now = absl::Now();
    for (auto& c : self->connections_) {
      if (c->ac != nullptr && c->outstanding > 0 &&
          now - c->last_reply > kStallTimeout) {
        self->SetError(
            absl::UnavailableError("Redis stopped answering; reconnecting"));
        // Free, not Disconnect: Disconnect would wait for the missing
        // replies. Pending callbacks get null replies; OnDisconnect retries.
        redisAsyncFree(c->ac);
      }
    }
  }

  RedisClient* owner_;
  Options options_;
  const int connection_count_;
  std::atomic<int> ready_{0};  // connections up (kReady)
  event_base* base_ = nullptr;
  event* wake_ = nullptr;
  event* watchdog_ = nullptr;
  std::thread thread_;
  std::vector<std::unique_ptr<Connection>> connections_;
  size_t next_ = 0;

  mutable absl::Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);

  friend class RedisClient;
};

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Start(
    Options options) {
  std::unique_ptr<RedisClient> client(new RedisClient());
  const int loops = std::max(1, options.loops);
  const int connections = std::max(loops, options.connections);
  for (int i = 0; i < loops; ++i) {
    // The connections split as evenly as they go.
    int mine = connections / loops + (i < connections % loops ? 1 : 0);
    auto impl = std::make_unique<Impl>(client.get(), options, mine);
    if (absl::Status s = impl->Init(); !s.ok()) return s;
    client->loops_.push_back(std::move(impl));
  }
  return client;
}

RedisClient::RedisClient() = default;

RedisClient::~RedisClient() { loops_.clear(); }

RedisClient::Impl& RedisClient::NextLoop() {
  const size_t n = loops_.size();
  if (n == 1) return *loops_[0];
  size_t first = next_loop_.fetch_add(1, std::memory_order_relaxed);
  // A loop whose connections are all down would fail the command while
  // another could serve it.
  for (size_t i = 0; i < n; ++i) {
    Impl& loop = *loops_[(first + i) % n];
    if (loop.ready()) return loop;
  }
  return *loops_[first % n];  // none is up: it fails fast
}

namespace {

RedisClient::Impl::Request* SingleCommand(std::vector<std::string> args,
                                          absl::Time deadline,
                                          RedisClient::Callback done) {
  auto* r = new RedisClient::Impl::Request();
  r->commands.push_back(std::move(args));
  r->deadline = deadline;
  r->single = std::move(done);
  return r;
}

}  // namespace

void RedisClient::Command(std::vector<std::string> args, absl::Time deadline,
                          Callback done) {
  NextLoop().Submit(SingleCommand(std::move(args), deadline, std::move(done)));
}

void RedisClient::CommandInOrder(uint64_t affinity,
                                 std::vector<std::string> args,
                                 absl::Time deadline, Callback done) {
  Impl::Request* r = SingleCommand(std::move(args), deadline, std::move(done));
  const size_t n = loops_.size();
  Impl& loop = *loops_[affinity % n];
  // Within the loop, the affinity picks the connection (Dispatch).
  r->affinity = affinity / n;
  if (loop.ready() || n == 1) {
    loop.Submit(r);
  } else {
    NextLoop().Submit(r);  // its connections are down: order cannot hold
  }
}

void RedisClient::Pipeline(std::vector<std::vector<std::string>> commands,
                           absl::Time deadline, PipelineCallback done) {
  if (commands.empty()) {
    // Nothing to send, nothing to wait for (Redis would never answer).
    done(std::vector<RedisReply>());
    return;
  }
  auto* r = new Impl::Request();
  r->commands = std::move(commands);
  r->deadline = deadline;
  r->is_pipeline = true;
  r->multi = std::move(done);
  NextLoop().Submit(r);
}

bool RedisClient::WaitConnected(absl::Duration timeout) const {
  absl::Time end = absl::Now() + timeout;
  while (!connected()) {
    if (absl::Now() >= end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

absl::Status RedisClient::last_error() const {
  for (const auto& loop : loops_) {
    if (absl::Status s = loop->last_error(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisCommandSync(RedisClient& client,
                                            std::vector<std::string> args,
                                            absl::Duration timeout) {
  absl::Notification done;
  absl::StatusOr<RedisReply> result;
  client.Command(std::move(args), absl::Now() + timeout,
                 [&](absl::StatusOr<RedisReply> reply) {
                   result = std::move(reply);
                   done.Notify();
                 });
  done.WaitForNotification();
  return result;
}

}  // namespace tappa::server
