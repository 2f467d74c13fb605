#include "server/redis/redis_url.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace tappa::server {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("redis_url: ", what));
}

// Decodes %XX escapes (passwords may contain '@' or ':').
absl::StatusOr<std::string> PercentDecode(absl::string_view s,
                                          absl::string_view part) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= s.size()) {
      return Bad(absl::StrCat(part, ": bad percent escape"));
    }
    for (int k = 1; k <= 2; ++k) {
      char c = s[i + k];
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= c - '0';
      else if (c >= 'a' && c <= 'f')
        value |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        value |= c - 'A' + 10;
      else
        return Bad(absl::StrCat(part, ": bad percent escape"));
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

// Splits "[user[:password]@]rest" off `s`.
absl::Status TakeCredentials(absl::string_view* s, RedisEndpoint* ep) {
  size_t at = s->rfind('@');
  if (at == absl::string_view::npos) return absl::OkStatus();
  absl::string_view creds = s->substr(0, at);
  *s = s->substr(at + 1);
  size_t colon = creds.find(':');
  absl::string_view user =
      colon == absl::string_view::npos ? creds : creds.substr(0, colon);
  absl::StatusOr<std::string> u = PercentDecode(user, "user");
  if (!u.ok()) return u.status();
  ep->user = *u;
  if (colon != absl::string_view::npos) {
    absl::StatusOr<std::string> p =
        PercentDecode(creds.substr(colon + 1), "password");
    if (!p.ok()) return p.status();
    ep->password = *p;
  } else if (!ep->user.empty()) {
    // "redis://secret@host" is the legacy password-only form.
    ep->password = ep->user;
    ep->user.clear();
  }
  return absl::OkStatus();
}

}  // namespace

std::string RedisEndpoint::Redacted() const {
  std::string creds;
  if (!user.empty() || !password.empty()) {
    creds = absl::StrCat(user, password.empty() ? "" : ":***", "@");
  }
  if (is_unix()) {
    return absl::StrCat("unix://", creds, unix_path,
                        db != 0 ? absl::StrCat("?db=", db) : "");
  }
  return absl::StrCat("redis://", creds, host, ":", port,
                      db != 0 ? absl::StrCat("/", db) : "");
}

absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url) {
  RedisEndpoint ep;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "unix://")) {
    if (absl::Status s = TakeCredentials(&rest, &ep); !s.ok()) return s;
    size_t q = rest.find('?');
    absl::string_view query;
    if (q != absl::string_view::npos) {
      query = rest.substr(q + 1);
      rest = rest.substr(0, q);
    }
    if (rest.empty() || rest[0] != '/')
      return Bad("unix socket path must be absolute");
    ep.unix_path = std::string(rest);
    if (!query.empty()) {
      if (!absl::ConsumePrefix(&query, "db=") ||
          !absl::SimpleAtoi(query, &ep.db) || ep.db < 0) {
        return Bad("unix URL query must be db=N");
      }
    }
    return ep;
  }
  if (!absl::ConsumePrefix(&rest, "redis://")) {
    return Bad("must start with redis:// or unix://");
  }
  if (absl::Status s = TakeCredentials(&rest, &ep); !s.ok()) return s;
  size_t slash = rest.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && (!absl::SimpleAtoi(db, &ep.db) || ep.db < 0)) {
      return Bad("database must be a non-negative integer");
    }
  }
  absl::string_view host = rest;
  if (!rest.empty() && rest[0] == '[') {  // [::1]:6379
    size_t close = rest.find(']');
    if (close == absl::string_view::npos)
      return Bad("unterminated IPv6 address");
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && !absl::ConsumePrefix(&rest, ":"))
      return Bad("bad port");
  } else {
    size_t colon = rest.rfind(':');
    if (colon != absl::string_view::npos) {
      host = rest.substr(0, colon);
      rest = rest.substr(colon + 1);
    } else {
      rest = "";
    }
  }
  if (host.empty()) return Bad("missing host");
  ep.host = std::string(host);
  if (!rest.empty() &&
      (!absl::SimpleAtoi(rest, &ep.port) || ep.port < 1 || ep.port > 65535)) {
    return Bad("port must be 1-65535");
  }
  return ep;
}

}  // namespace tappa::server
