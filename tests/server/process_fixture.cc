#include "tests/server/process_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "hiredis/hiredis.h"

#ifndef TAPPA_SERVER_PATH
#error "TAPPA_SERVER_PATH must name the tappa-server binary"
#endif
#ifndef TAPPA_SOURCE_DIR
#error "TAPPA_SOURCE_DIR must name the source tree"
#endif

namespace tappa::testing {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(10);
constexpr int kStartAttempts =
    3;  // new ports each time, when a child cannot listen

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The tail of a log, for error messages that stay readable.
std::string Tail(const std::string& text, size_t max = 2000) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

// Starts `argv` with stdout and stderr appended to `log_path`. Everything the
// child runs between fork and exec is async-signal-safe (the test binary has
// gRPC threads), so argv is prepared before forking.
absl::StatusOr<pid_t> SpawnProcess(const std::vector<std::string>& argv,
                                   const std::string& log_path) {
  int log_fd =
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open ", log_path, ": ", strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // Die with the test binary, whatever happens to it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // The child inherits the forking thread's mask and ignored signals;
    // give it a clean slate so SIGTERM means what it means in production.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, nullptr);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execv(args[0], args.data());
    static const char kMessage[] = "process_fixture: execv failed\n";
    (void)!write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    _exit(127);
  }
  close(log_fd);
  return pid;
}

// Exit status as a shell reports it: the code, or 128 + the signal.
int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Polls for the exit of `pid`; the exit status, or nullopt on timeout.
std::optional<int> WaitExit(pid_t pid, absl::Duration timeout) {
  std::optional<int> result;
  PollUntil(
      [&] {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
          result = DecodeWaitStatus(status);
          return true;
        }
        if (r < 0 && errno == ECHILD) {
          result = -1;  // already reaped elsewhere
          return true;
        }
        return false;
      },
      timeout, absl::Milliseconds(5));
  return result;
}

// Whether `pid` still runs; reaps it (and sets *pid = -1) when it has exited.
bool ChildRunning(pid_t* pid) {
  if (*pid <= 0) return false;
  int status = 0;
  pid_t r = waitpid(*pid, &status, WNOHANG);
  if (r == 0) return true;
  *pid = -1;
  return false;
}

void KillChild(pid_t* pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGKILL);
  WaitExit(*pid, absl::Seconds(10));
  *pid = -1;
}

SyncRedisReply CopyReply(const redisReply* r) {
  SyncRedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = SyncRedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = SyncRedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = SyncRedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = SyncRedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = SyncRedisReply::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i)
        out.elements.push_back(CopyReply(r->element[i]));
      break;
    default:
      out.type = SyncRedisReply::Type::kNil;
  }
  return out;
}

std::shared_ptr<grpc::Channel> MakeChannel(
    const std::string& address, bool own_connection,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  // Servers start (and restart) during tests: retry connecting within tens
  // of milliseconds instead of gRPC's default backoff of a second or more.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  // Channels with equal arguments share connections through gRPC's global
  // subchannel pool; a local pool gives this channel a connection of its own.
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(
      address,
      credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(),
      args);
}

std::pair<grpc::Status, std::string> CallRawImpl(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& request, absl::Duration timeout, bool wait_for_ready) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(wait_for_ready);
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  std::promise<grpc::Status> done;
  stub.UnaryCall(
      &context, method, grpc::StubOptions(), &request_buffer, &response_buffer,
      [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = done.get_future().get();
  std::string response;
  if (status.ok()) {
    std::vector<grpc::Slice> slices;
    (void)response_buffer.Dump(&slices);
    for (const grpc::Slice& s : slices) {
      response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  return {status, response};
}

// grpc.health.v1.HealthCheckRequest { string service = 1; }, by hand: the
// health proto is not installed on this machine, and the message is tiny.
std::string EncodeHealthRequest(absl::string_view service) {
  std::string out;
  if (service.empty()) return out;
  out.push_back(0x0a);  // field 1, length-delimited
  for (size_t n = service.size();; n >>= 7) {
    if (n < 0x80) {
      out.push_back(static_cast<char>(n));
      break;
    }
    out.push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  out.append(service.data(), service.size());
  return out;
}

// HealthCheckResponse { ServingStatus status = 1; }: the varint of field 1
// (0 when absent, proto3's default).
absl::StatusOr<int> DecodeHealthResponse(const std::string& bytes) {
  size_t i = 0;
  int status = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      uint8_t b = static_cast<uint8_t>(bytes[i++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    uint64_t tag = 0, value = 0;
    if (!varint(&tag)) return absl::InternalError("bad health response");
    if ((tag & 7) == 0) {
      if (!varint(&value)) return absl::InternalError("bad health response");
      if ((tag >> 3) == 1) status = static_cast<int>(value);
    } else if ((tag & 7) == 2) {
      if (!varint(&value) || i + value > bytes.size()) {
        return absl::InternalError("bad health response");
      }
      i += value;
    } else {
      return absl::InternalError("unexpected wire type in health response");
    }
  }
  return status;
}

std::string DecodeChunked(const std::string& body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t size =
        std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
    if (size == 0) break;
    out.append(body, eol + 2, size);
    pos = eol + 2 + size + 2;
  }
  return out;
}

}  // namespace

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string SourceDir() { return TAPPA_SOURCE_DIR; }

// ---- TempDir ----

TempDir::TempDir(absl::string_view prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string templ = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, "-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    std::cerr << "process_fixture: mkdtemp(" << templ
              << "): " << strerror(errno) << "\n";
    abort();
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

// ---- RedisConnection ----

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisConnection::Connect(
    int port, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr)
    return absl::UnavailableError("redisConnect: out of memory");
  if (c->err != 0) {
    std::string error = c->errstr;
    redisFree(c);
    return absl::UnavailableError(
        absl::StrCat("connect to Redis :", port, ": ", error));
  }
  redisSetTimeout(c, tv);
  return std::unique_ptr<RedisConnection>(new RedisConnection(c));
}

RedisConnection::~RedisConnection() { redisFree(context_); }

absl::StatusOr<SyncRedisReply> RedisConnection::Command(
    const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  void* raw = redisCommandArgv(context_, static_cast<int>(args.size()),
                               argv.data(), lengths.data());
  if (raw == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "Redis ", args.empty() ? "" : args[0], ": ", context_->errstr));
  }
  SyncRedisReply reply = CopyReply(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return reply;
}

absl::StatusOr<SyncRedisReply> RedisConnection::ReadReply() {
  void* raw = nullptr;
  if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("Redis read: ", context_->errstr));
  }
  SyncRedisReply reply = CopyReply(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return reply;
}

// ---- RedisProcess ----

RedisProcess::RedisProcess(Options options, int port)
    : options_(std::move(options)), dir_("tappa-redis"), port_(port) {}

RedisProcess::~RedisProcess() {
  {
    absl::MutexLock lock(&mu_);
    connection_.reset();
  }
  KillChild(&pid_);
}

std::string RedisProcess::url() const {
  return absl::StrCat("redis://127.0.0.1:", port_);
}

bool RedisProcess::running() { return ChildRunning(&pid_); }

std::string RedisProcess::Log() const {
  return ReadFile(dir_.path() + "/redis.log");
}

absl::Status RedisProcess::Spawn() {
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--port",
                                   absl::StrCat(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_.path(),
                                   "--appendonly",
                                   "yes",
                                   "--appendfsync",
                                   "everysec",
                                   "--save",
                                   "",
                                   "--maxmemory-policy",
                                   "noeviction",
                                   "--daemonize",
                                   "no"};
  for (const std::string& a : options_.extra_args) argv.push_back(a);
  absl::StatusOr<pid_t> pid = SpawnProcess(argv, dir_.path() + "/redis.log");
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  // Ready = answers PING with PONG (while it loads its append-only file it
  // answers -LOADING instead).
  bool ready = PollUntil(
      [&] {
        if (!running()) return true;
        absl::StatusOr<std::unique_ptr<RedisConnection>> c =
            RedisConnection::Connect(port_, absl::Milliseconds(200));
        if (!c.ok()) return false;
        absl::StatusOr<SyncRedisReply> pong = (*c)->Command({"PING"});
        return pong.ok() && pong->str == "PONG";
      },
      options_.start_timeout, kPollInterval);
  if (!running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("redis-server exited at start:\n", Tail(Log())));
  }
  if (!ready) {
    KillChild(&pid_);
    return absl::DeadlineExceededError(
        absl::StrCat("redis-server did not answer PING:\n", Tail(Log())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RedisProcess>> RedisProcess::Start(
    Options options) {
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<RedisProcess> redis(
        new RedisProcess(options, PickFreePort()));
    last = redis->Spawn();
    if (last.ok()) return redis;
    // A port taken between PickFreePort() and the bind: try another one.
    if (!absl::StrContains(last.message(), "Address already in use")) break;
  }
  return last;
}

absl::Status RedisProcess::Shutdown(absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    connection_.reset();
  }
  if (pid_ <= 0)
    return absl::FailedPreconditionError("redis-server is not running");
  absl::StatusOr<std::unique_ptr<RedisConnection>> c = Connect();
  if (!c.ok()) return c.status();
  // SHUTDOWN answers nothing when it succeeds: the connection just closes.
  absl::StatusOr<SyncRedisReply> reply = (*c)->Command({"SHUTDOWN"});
  if (reply.ok() && reply->is_error()) {
    return absl::InternalError(absl::StrCat("SHUTDOWN: ", reply->str));
  }
  std::optional<int> status = WaitExit(pid_, timeout);
  if (!status.has_value()) {
    KillChild(&pid_);
    return absl::DeadlineExceededError(
        "redis-server did not exit after SHUTDOWN");
  }
  pid_ = -1;
  return absl::OkStatus();
}

void RedisProcess::Kill() {
  {
    absl::MutexLock lock(&mu_);
    connection_.reset();
  }
  KillChild(&pid_);
}

absl::Status RedisProcess::Restart() {
  if (running())
    return absl::FailedPreconditionError("redis-server is still running");
  {
    absl::MutexLock lock(&mu_);
    connection_.reset();
  }
  return Spawn();
}

absl::StatusOr<std::unique_ptr<RedisConnection>> RedisProcess::Connect() const {
  return RedisConnection::Connect(port_);
}

absl::StatusOr<SyncRedisReply> RedisProcess::Command(
    const std::vector<std::string>& args) {
  absl::MutexLock lock(&mu_);
  if (connection_ == nullptr) {
    absl::StatusOr<std::unique_ptr<RedisConnection>> c = Connect();
    if (!c.ok()) return c.status();
    connection_ = *std::move(c);
  }
  absl::StatusOr<SyncRedisReply> reply = connection_->Command(args);
  // A transport error leaves hiredis' context unusable: reconnect next time.
  if (!reply.ok()) connection_.reset();
  return reply;
}

// ---- ServerProcess ----

ServerProcess::ServerProcess(Options options)
    : options_(std::move(options)),
      dir_("tappa-server"),
      log_path_(dir_.path() + "/server.log") {}

ServerProcess::~ServerProcess() { KillChild(&pid_); }

bool ServerProcess::running() { return ChildRunning(&pid_); }

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

std::shared_ptr<grpc::Channel> ServerProcess::NewChannel() const {
  return MakeChannel(grpc_address_, /*own_connection=*/true,
                     options_.channel_credentials);
}

absl::Status ServerProcess::Spawn() {
  const int grpc_port = PickFreePort();
  grpc_address_ = absl::StrCat("127.0.0.1:", grpc_port);
  metrics_address_ = absl::StrCat("127.0.0.1:", PickFreePort());
  std::vector<std::string> argv = {
      TAPPA_SERVER_PATH, absl::StrCat("--rules=", options_.rules_path),
      absl::StrCat("--redis_url=", options_.redis_url),
      absl::StrCat("--grpc_listen=", options_.listen_host, ":", grpc_port),
      absl::StrCat("--metrics_listen=", metrics_address_)};
  for (const std::string& f : options_.extra_flags) argv.push_back(f);
  absl::StatusOr<pid_t> pid = SpawnProcess(argv, log_path_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  channel_ = MakeChannel(grpc_address_, /*own_connection=*/false,
                         options_.channel_credentials);
  bool ready = PollUntil(
      [&] {
        if (!running()) return true;
        auto [status, bytes] = CallRawImpl(
            channel_, "/grpc.health.v1.Health/Check", EncodeHealthRequest(""),
            absl::Milliseconds(200), /*wait_for_ready=*/true);
        if (!status.ok()) return false;
        if (!options_.wait_serving) return true;
        absl::StatusOr<int> state = DecodeHealthResponse(bytes);
        return state.ok() && *state == static_cast<int>(HealthState::kServing);
      },
      options_.start_timeout, kPollInterval);
  if (!running()) {
    return absl::FailedPreconditionError(
        absl::StrCat("tappa-server exited at start:\n", Tail(Log())));
  }
  if (!ready) {
    KillChild(&pid_);
    return absl::DeadlineExceededError(absl::StrCat(
        "tappa-server did not become ",
        options_.wait_serving ? "SERVING" : "reachable", " within ",
        absl::FormatDuration(options_.start_timeout), ":\n", Tail(Log())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    Options options) {
  if (options.rules_path.empty()) {
    options.rules_path = SourceDir() + "/rules/examples/retail.yaml";
  }
  absl::Status last;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<ServerProcess> server(new ServerProcess(options));
    last = server->Spawn();
    if (last.ok()) return server;
    // A port taken between PickFreePort() and the bind: try other ports.
    if (!absl::StrContains(last.message(), "cannot listen") &&
        !absl::StrContains(last.message(), "cannot serve metrics")) {
      break;
    }
  }
  return last;
}

absl::StatusOr<int> ServerProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0)
    return absl::FailedPreconditionError("tappa-server is not running");
  kill(pid_, SIGTERM);
  std::optional<int> status = WaitExit(pid_, timeout);
  if (!status.has_value()) {
    KillChild(&pid_);
    return absl::DeadlineExceededError(
        absl::StrCat("tappa-server did not exit within ",
                     absl::FormatDuration(timeout), " of SIGTERM"));
  }
  pid_ = -1;
  return *status;
}

absl::StatusOr<HealthState> ServerProcess::Health(
    absl::string_view service, absl::Duration timeout) const {
  auto [status, bytes] = CallRawImpl(channel_, "/grpc.health.v1.Health/Check",
                                     EncodeHealthRequest(service), timeout,
                                     /*wait_for_ready=*/false);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND)
    return HealthState::kServiceUnknown;
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("health check: ", status.error_message()));
  }
  absl::StatusOr<int> state = DecodeHealthResponse(bytes);
  if (!state.ok()) return state.status();
  if (*state < 0 || *state > 3)
    return absl::InternalError("unknown health state");
  return static_cast<HealthState>(*state);
}

absl::StatusOr<std::string> ServerProcess::ScrapeMetrics() const {
  return HttpGet(metrics_address_, "/metrics");
}

// ---- free functions ----

std::pair<grpc::Status, std::string> CallRaw(
    const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
    const std::string& request, absl::Duration timeout) {
  return CallRawImpl(channel, method, request, timeout,
                     /*wait_for_ready=*/false);
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port,
                                    const std::string& path,
                                    absl::Duration timeout) {
  std::vector<std::string> parts = absl::StrSplit(host_port, ':');
  int port = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not host:port: ", host_port));
  }
  sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, parts[0].c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: ", parts[0]));
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::string error = strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect ", host_port, ": ", error));
  }
  // HTTP/1.0 so the server closes the connection after the answer: reading
  // to EOF is then the whole response.
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  std::string response;
  char buffer[16384];
  while (true) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      response.append(buffer, n);
    } else {
      if (n < 0) {
        std::string error = strerror(errno);
        close(fd);
        return absl::UnavailableError(absl::StrCat("recv: ", error));
      }
      break;
    }
  }
  close(fd);
  size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::InternalError(
        absl::StrCat("no HTTP header in: ", Tail(response, 200)));
  }
  std::string header = response.substr(0, header_end);
  std::string body = response.substr(header_end + 4);
  if (!absl::StartsWith(header, "HTTP/1.0 200") &&
      !absl::StartsWith(header, "HTTP/1.1 200")) {
    return absl::InternalError(
        absl::StrCat("HTTP answer: ", header.substr(0, header.find('\r'))));
  }
  if (absl::StrContains(absl::AsciiStrToLower(header),
                        "transfer-encoding: chunked")) {
    body = DecodeChunked(body);
  }
  return body;
}

}  // namespace tappa::testing
