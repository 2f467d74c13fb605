// String functions (size, contains, startsWith, endsWith), regular
// expressions (matches) and UTF-8 validation.
//
// Strings are valid UTF-8 by construction, so byte-wise substring, prefix
// and suffix tests give the same answers as code-point-wise ones: a valid
// UTF-8 needle can only match at code-point boundaries of a valid haystack.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

// RE2's memory budget for one compiled pattern (program plus DFA caches).
// Patterns that need more, such as nested counted repetitions
// ("((a{100}){100}){100}"), fail to compile with "pattern too large" instead
// of taking memory from the server. Matching stays linear in the input.
constexpr int64_t kRegexMaxMem = 2 << 20;

// Patterns longer than this are refused before RE2 parses them.
constexpr size_t kRegexMaxPatternBytes = 16 << 10;

// Quotes a pattern for an error message, shortened so that a huge pattern
// does not produce a huge message.
std::string QuotePattern(absl::string_view pattern) {
  constexpr size_t kMax = 64;
  if (pattern.size() <= kMax) {
    return absl::StrCat("'", absl::CHexEscape(pattern), "'");
  }
  return absl::StrCat("'", absl::CHexEscape(pattern.substr(0, kMax)), "...'");
}

}  // namespace

bool IsValidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;         // continuation bytes
    uint32_t min;  // smallest code point for this length (no overlongs)
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;  // overlong, beyond Unicode, or a surrogate
    }
    p += n + 1;
  }
  return true;
}

Value StringSize(const Value& s) {
  if (s.IsBytes())
    return Value::Int(static_cast<int64_t>(s.bytes_value().size()));
  if (!s.IsString()) {
    if (s.IsError()) return s;
    return Value::StaticError("no matching overload for 'size'");
  }
  // Code points are the bytes that do not continue a sequence.
  int64_t n = 0;
  for (char c : s.string_value()) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return Value::Int(n);
}

Value Contains(const Value& s, const Value& sub) {
  if (!s.IsString() || !sub.IsString()) {
    if (s.IsError()) return s;
    if (sub.IsError()) return sub;
    return Value::StaticError("no matching overload for 'contains'");
  }
  return Value::Bool(absl::StrContains(s.string_value(), sub.string_value()));
}

Value StartsWith(const Value& s, const Value& prefix) {
  if (!s.IsString() || !prefix.IsString()) {
    if (s.IsError()) return s;
    if (prefix.IsError()) return prefix;
    return Value::StaticError("no matching overload for 'startsWith'");
  }
  return Value::Bool(absl::StartsWith(s.string_value(), prefix.string_value()));
}

Value EndsWith(const Value& s, const Value& suffix) {
  if (!s.IsString() || !suffix.IsString()) {
    if (s.IsError()) return s;
    if (suffix.IsError()) return suffix;
    return Value::StaticError("no matching overload for 'endsWith'");
  }
  return Value::Bool(absl::EndsWith(s.string_value(), suffix.string_value()));
}

absl::StatusOr<std::unique_ptr<re2::RE2>> CompileRegex(
    absl::string_view pattern) {
  if (pattern.size() > kRegexMaxPatternBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid regular expression ", QuotePattern(pattern),
                     ": longer than ", kRegexMaxPatternBytes, " bytes"));
  }
  re2::RE2::Options options;
  options.set_log_errors(false);  // the error goes to the caller instead
  options.set_max_mem(kRegexMaxMem);
  options.set_encoding(re2::RE2::Options::EncodingUTF8);
  auto re = std::make_unique<re2::RE2>(
      re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid regular expression ", QuotePattern(pattern), ": ",
                     re->error()));
  }
  return re;
}

Value MatchesCompiled(const Value& s, const re2::RE2& pattern) {
  if (!s.IsString()) {
    if (s.IsError()) return s;
    return Value::StaticError("no matching overload for 'matches'");
  }
  absl::string_view text = s.string_value();
  return Value::Bool(re2::RE2::PartialMatch(
      re2::StringPiece(text.data(), text.size()), pattern));
}

Value Matches(const Value& s, const Value& pattern) {
  if (!s.IsString() || !pattern.IsString()) {
    if (s.IsError()) return s;
    if (pattern.IsError()) return pattern;
    return Value::StaticError("no matching overload for 'matches'");
  }
  absl::StatusOr<std::unique_ptr<re2::RE2>> re =
      CompileRegex(pattern.string_value());
  if (!re.ok()) return Value::Error(re.status().message());
  return MatchesCompiled(s, **re);
}

}  // namespace tappa::cel
