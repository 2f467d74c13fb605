// Parsing of --redis_url: where Redis is and how to log in.
//
//   redis://[[user]:password@]host[:port][/db]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N]
//
// Passwords are kept only in RedisEndpoint::password and never printed:
// RedisEndpoint::Redacted() is the form for logs.
#ifndef TAPPA_SERVER_REDIS_REDIS_URL_H_
#define TAPPA_SERVER_REDIS_REDIS_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tappa::server {

struct RedisEndpoint {
  std::string host;  // empty for unix sockets
  int port = 6379;
  std::string unix_path;  // set for unix://
  std::string user;       // ACL user; empty = "default"
  std::string password;   // empty = no AUTH
  int db = 0;

  bool is_unix() const { return !unix_path.empty(); }
  // "redis://user:***@host:port/db" or "unix:///path": safe to log.
  std::string Redacted() const;
};

// Errors: InvalidArgument naming the part of the URL that is wrong
// ("redis_url: port must be 1-65535"), never echoing the password.
absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_REDIS_REDIS_URL_H_
