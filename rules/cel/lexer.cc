#include "rules/cel/lexer.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tappa::cel {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHexDigit(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsOctalDigit(char c) { return c >= '0' && c <= '7'; }
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsIdentChar(char c) { return IsIdentStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool IsSurrogate(uint32_t cp) { return cp >= 0xD800 && cp <= 0xDFFF; }

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length in bytes of the UTF-8 sequence starting with lead byte `c` (the
// source is known to be valid UTF-8).
size_t Utf8Length(char c) {
  const auto b = static_cast<unsigned char>(c);
  if (b < 0x80) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

}  // namespace

int64_t FindInvalidUtf8(absl::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b == 0xE0) {
      len = 3, lo = 0xA0;  // no overlong forms
    } else if (b == 0xED) {
      len = 3, hi = 0x9F;  // no surrogates
    } else if (b >= 0xE1 && b <= 0xEF) {
      len = 3;
    } else if (b == 0xF0) {
      len = 4, lo = 0x90;  // no overlong forms
    } else if (b >= 0xF1 && b <= 0xF3) {
      len = 4;
    } else if (b == 0xF4) {
      len = 4, hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return static_cast<int64_t>(i);
    }
    if (i + len > n) return static_cast<int64_t>(i);
    if (p[i + 1] < lo || p[i + 1] > hi) return static_cast<int64_t>(i);
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return static_cast<int64_t>(i);
    }
    i += len;
  }
  return -1;
}

bool IsHostReservedWord(absl::string_view word) {
  static constexpr absl::string_view kWords[] = {
      "as",        "break",  "const",  "continue", "else", "for",
      "function",  "if",     "import", "let",      "loop", "package",
      "namespace", "return", "var",    "void",     "while"};
  for (absl::string_view w : kWords) {
    if (w == word) return true;
  }
  return false;
}

std::string DescribeToken(absl::string_view source, const Token& token) {
  if (token.kind == TokenKind::kEnd) return "end of expression";
  absl::string_view text = source.substr(token.offset, token.size);
  constexpr size_t kMaxShown = 24;
  if (text.size() > kMaxShown) {
    // Cut at a character boundary so the message stays valid UTF-8.
    size_t cut = kMaxShown;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    return absl::StrCat("'", text.substr(0, cut), "...'");
  }
  return absl::StrCat("'", text, "'");
}

Lexer::Lexer(absl::string_view source, std::vector<LexError>* errors)
    : source_(source), errors_(errors) {}

void Lexer::Error(int32_t offset, std::string message) {
  // A pathological input (thousands of bad escapes) must not turn into
  // thousands of messages; the parser shows only the first few anyway.
  constexpr size_t kMaxErrors = 64;
  if (errors_->size() >= kMaxErrors) return;
  errors_->push_back({offset, std::move(message)});
}

void Lexer::SkipWhitespaceAndComments() {
  const size_t n = source_.size();
  while (pos_ < n) {
    const char c = source_[pos_];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      ++pos_;
    } else if (c == '/' && pos_ + 1 < n && source_[pos_ + 1] == '/') {
      while (pos_ < n && source_[pos_] != '\n' && source_[pos_] != '\r') ++pos_;
    } else {
      return;
    }
  }
}

Token Lexer::Next() {
  SkipWhitespaceAndComments();
  const int32_t start = static_cast<int32_t>(pos_);
  Token tok;
  tok.offset = start;
  const size_t n = source_.size();
  if (pos_ >= n) {
    tok.kind = TokenKind::kEnd;
    return tok;
  }
  const char c = source_[pos_];
  const char next = pos_ + 1 < n ? source_[pos_ + 1] : '\0';

  if (IsDigit(c) || (c == '.' && IsDigit(next))) return LexNumber(start);
  if (c == '"' || c == '\'') return LexQuoted(start, /*raw=*/false, false);
  if (IsIdentStart(c)) return LexIdentOrKeyword(start);

  auto single = [&](TokenKind kind) {
    ++pos_;
    tok.kind = kind;
    tok.size = 1;
    return tok;
  };
  auto pair = [&](TokenKind kind) {
    pos_ += 2;
    tok.kind = kind;
    tok.size = 2;
    return tok;
  };
  switch (c) {
    case '(':
      return single(TokenKind::kLParen);
    case ')':
      return single(TokenKind::kRParen);
    case '[':
      return single(TokenKind::kLBracket);
    case ']':
      return single(TokenKind::kRBracket);
    case '{':
      return single(TokenKind::kLBrace);
    case '}':
      return single(TokenKind::kRBrace);
    case '.':
      return single(TokenKind::kDot);
    case ',':
      return single(TokenKind::kComma);
    case ':':
      return single(TokenKind::kColon);
    case '?':
      return single(TokenKind::kQuestion);
    case '+':
      return single(TokenKind::kPlus);
    case '-':
      return single(TokenKind::kMinus);
    case '*':
      return single(TokenKind::kStar);
    case '/':
      return single(TokenKind::kSlash);
    case '%':
      return single(TokenKind::kPercent);
    case '<':
      return next == '=' ? pair(TokenKind::kLessEqual)
                         : single(TokenKind::kLess);
    case '>':
      return next == '=' ? pair(TokenKind::kGreaterEqual)
                         : single(TokenKind::kGreater);
    case '!':
      return next == '=' ? pair(TokenKind::kNotEqual)
                         : single(TokenKind::kBang);
    case '=':
      if (next == '=') return pair(TokenKind::kEqual);
      Error(start, "unexpected character '='; did you mean '=='?");
      return single(TokenKind::kError);
    case '&':
      if (next == '&') return pair(TokenKind::kAndAnd);
      Error(start, "unexpected character '&'; did you mean '&&'?");
      return single(TokenKind::kError);
    case '|':
      if (next == '|') return pair(TokenKind::kOrOr);
      Error(start, "unexpected character '|'; did you mean '||'?");
      return single(TokenKind::kError);
    default:
      break;
  }
  // Anything else starts no token: report it and skip the whole character.
  const size_t len = std::min(Utf8Length(c), n - pos_);
  const auto b = static_cast<unsigned char>(c);
  if (b >= 0x20 && b < 0x7F) {
    Error(start,
          absl::StrCat("unexpected character '", std::string(1, c), "'"));
  } else if (b < 0x80) {
    Error(start, absl::StrFormat("unexpected character '\\x%02X'", b));
  } else {
    uint32_t cp = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < len; ++i) {
      cp = (cp << 6) | (static_cast<unsigned char>(source_[pos_ + i]) & 0x3F);
    }
    Error(start, absl::StrFormat("unexpected character '%s' (U+%04X)",
                                 source_.substr(pos_, len), cp));
  }
  pos_ += len;
  tok.kind = TokenKind::kError;
  tok.size = static_cast<int32_t>(len);
  return tok;
}

Token Lexer::LexIdentOrKeyword(int32_t start) {
  const size_t n = source_.size();
  auto is_quote = [&](size_t i) {
    return i < n && (source_[i] == '"' || source_[i] == '\'');
  };
  const char c = source_[pos_];
  // String prefixes: r"..." (raw), b"..." (bytes), br"..." (raw bytes).
  if ((c == 'r' || c == 'R') && is_quote(pos_ + 1)) {
    ++pos_;
    return LexQuoted(start, /*raw=*/true, /*bytes=*/false);
  }
  if (c == 'b' || c == 'B') {
    if (is_quote(pos_ + 1)) {
      ++pos_;
      return LexQuoted(start, /*raw=*/false, /*bytes=*/true);
    }
    if (pos_ + 1 < n &&
        (source_[pos_ + 1] == 'r' || source_[pos_ + 1] == 'R') &&
        is_quote(pos_ + 2)) {
      pos_ += 2;
      return LexQuoted(start, /*raw=*/true, /*bytes=*/true);
    }
  }
  size_t end = pos_;
  while (end < n && IsIdentChar(source_[end])) ++end;
  absl::string_view word = source_.substr(pos_, end - pos_);
  pos_ = end;
  Token tok;
  tok.offset = start;
  tok.size = static_cast<int32_t>(word.size());
  if (word == "true") {
    tok.kind = TokenKind::kTrue;
  } else if (word == "false") {
    tok.kind = TokenKind::kFalse;
  } else if (word == "null") {
    tok.kind = TokenKind::kNull;
  } else if (word == "in") {
    tok.kind = TokenKind::kIn;
  } else {
    tok.kind = TokenKind::kIdent;
    tok.text = std::string(word);
  }
  return tok;
}

Token Lexer::LexNumber(int32_t start) {
  const size_t n = source_.size();
  auto at = [&](size_t i) { return i < n ? source_[i] : '\0'; };
  Token tok;
  tok.offset = start;

  auto finish_integer = [&](uint64_t value, bool overflow) {
    if (at(pos_) == 'u' || at(pos_) == 'U') {
      ++pos_;
      tok.kind = TokenKind::kUint;
    } else {
      tok.kind = TokenKind::kInt;
    }
    tok.size = static_cast<int32_t>(pos_ - start);
    tok.int_value = value;
    if (overflow) Error(start, "integer literal out of range");
    return tok;
  };

  // Hexadecimal: 0x followed by at least one hex digit (lowercase x only, as
  // in the spec).
  if (at(pos_) == '0' && at(pos_ + 1) == 'x' && IsHexDigit(at(pos_ + 2))) {
    pos_ += 2;
    uint64_t value = 0;
    bool overflow = false;
    while (IsHexDigit(at(pos_))) {
      if (value > (UINT64_MAX >> 4)) overflow = true;
      value = (value << 4) | static_cast<uint64_t>(HexValue(at(pos_)));
      ++pos_;
    }
    return finish_integer(overflow ? 0 : value, overflow);
  }

  const size_t digits_start = pos_;
  while (IsDigit(at(pos_))) ++pos_;
  bool is_double = false;
  if (at(pos_) == '.' && IsDigit(at(pos_ + 1))) {
    is_double = true;
    ++pos_;
    while (IsDigit(at(pos_))) ++pos_;
  }
  // An exponent only when digits follow; otherwise `1e` is 1 then `e`.
  if (at(pos_) == 'e' || at(pos_) == 'E') {
    size_t k = pos_ + 1;
    if (at(k) == '+' || at(k) == '-') ++k;
    if (IsDigit(at(k))) {
      is_double = true;
      pos_ = k;
      while (IsDigit(at(pos_))) ++pos_;
    }
  }

  if (!is_double) {
    uint64_t value = 0;
    bool overflow = false;
    for (size_t i = digits_start; i < pos_; ++i) {
      const uint64_t d = static_cast<uint64_t>(source_[i] - '0');
      if (value > (UINT64_MAX - d) / 10) overflow = true;
      if (!overflow) value = value * 10 + d;
    }
    return finish_integer(overflow ? 0 : value, overflow);
  }

  tok.kind = TokenKind::kDouble;
  tok.size = static_cast<int32_t>(pos_ - start);
  absl::string_view text = source_.substr(start, pos_ - start);
  double value = 0;
  const auto [ptr, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) {
    // from_chars reports both overflow and underflow; strtod tells them
    // apart (underflow to zero or a denormal is a valid literal, as in
    // cel-go). The text has only digits, '.', 'e' and a sign, so the locale's
    // decimal separator is the only concern, and it is '.' in the C locale
    // that a server runs in.
    const std::string copy(text);
    value = std::strtod(copy.c_str(), nullptr);
    if (std::isinf(value)) {
      Error(start, "double literal out of range");
      value = 0;
    }
  } else if (ec != std::errc() || ptr != text.data() + text.size()) {
    Error(start, "invalid double literal");
    value = 0;
  }
  tok.double_value = value;
  return tok;
}

Token Lexer::LexQuoted(int32_t start, bool raw, bool bytes) {
  const size_t n = source_.size();
  auto at = [&](size_t i) { return i < n ? source_[i] : '\0'; };
  Token tok;
  tok.offset = start;
  tok.kind = bytes ? TokenKind::kBytes : TokenKind::kString;
  const char quote = source_[pos_];
  const bool triple = at(pos_ + 1) == quote && at(pos_ + 2) == quote;
  pos_ += triple ? 3 : 1;
  std::string& out = tok.text;
  const char* what = bytes ? "bytes" : "string";

  // Appends a code point from an escape: in strings it is the character's
  // UTF-8 encoding; in bytes (only \x and octal reach here) it is one octet.
  auto append_code = [&](uint32_t cp) {
    if (bytes) {
      out.push_back(static_cast<char>(cp));
    } else {
      AppendUtf8(cp, &out);
    }
  };

  while (true) {
    if (pos_ >= n) {
      Error(start, absl::StrCat("unterminated ", what, " literal"));
      break;
    }
    const char c = source_[pos_];
    if (c == quote) {
      if (!triple) {
        ++pos_;
        break;
      }
      if (at(pos_ + 1) == quote && at(pos_ + 2) == quote) {
        pos_ += 3;
        break;
      }
    }
    if (!triple && (c == '\n' || c == '\r')) {
      // Single-quoted literals end at the line; the lexer resumes there.
      Error(start, absl::StrCat("unterminated ", what, " literal"));
      break;
    }
    if (c != '\\' || raw) {
      // Verbatim: the source is valid UTF-8, so whole characters are copied
      // (for bytes: their UTF-8 encoding, as the spec says).
      out.push_back(c);
      ++pos_;
      continue;
    }
    // An escape sequence.
    const int32_t esc = static_cast<int32_t>(pos_);
    const char e = at(pos_ + 1);
    if (pos_ + 1 >= n) {
      pos_ = n;  // reported as unterminated above on the next iteration
      continue;
    }
    pos_ += 2;
    switch (e) {
      case 'a':
        out.push_back('\a');
        continue;
      case 'b':
        out.push_back('\b');
        continue;
      case 'f':
        out.push_back('\f');
        continue;
      case 'n':
        out.push_back('\n');
        continue;
      case 'r':
        out.push_back('\r');
        continue;
      case 't':
        out.push_back('\t');
        continue;
      case 'v':
        out.push_back('\v');
        continue;
      case '\\':
      case '?':
      case '"':
      case '\'':
      case '`':
        out.push_back(e);
        continue;
      case 'x':
      case 'X':
      case 'u':
      case 'U': {
        const int digits = (e == 'x' || e == 'X') ? 2 : e == 'u' ? 4 : 8;
        if (bytes && (e == 'u' || e == 'U')) {
          Error(esc, absl::StrCat("\\", std::string(1, e),
                                  " escape is not allowed in bytes literals"));
        }
        uint32_t cp = 0;
        int i = 0;
        for (; i < digits && IsHexDigit(at(pos_)); ++i, ++pos_) {
          cp = (cp << 4) | static_cast<uint32_t>(HexValue(at(pos_)));
        }
        if (i < digits) {
          Error(esc, absl::StrFormat("invalid escape sequence: \\%c needs %d "
                                     "hexadecimal digits",
                                     e, digits));
          continue;
        }
        if (bytes && (e == 'u' || e == 'U')) continue;
        if (IsSurrogate(cp) || cp > 0x10FFFF) {
          Error(esc, absl::StrFormat("invalid escape sequence: U+%04X is not a "
                                     "valid Unicode code point",
                                     cp));
          continue;
        }
        append_code(cp);
        continue;
      }
      default:
        break;
    }
    if (e >= '0' && e <= '3' && IsOctalDigit(at(pos_)) &&
        IsOctalDigit(at(pos_ + 1))) {
      const uint32_t cp = static_cast<uint32_t>(
          (e - '0') * 64 + (at(pos_) - '0') * 8 + (at(pos_ + 1) - '0'));
      pos_ += 2;
      append_code(cp);
      continue;
    }
    if (IsOctalDigit(e)) {
      Error(esc,
            "invalid escape sequence: octal escapes are three digits from "
            "\\000 to \\377");
      while (IsOctalDigit(at(pos_)) && pos_ - esc < 4) ++pos_;
      continue;
    }
    if (e == '\n' || e == '\r') {
      // A backslash at the end of a line: not an escape; let the string end
      // (single quotes) or continue (triple quotes) as usual.
      Error(esc, "invalid escape sequence '\\' at end of line");
      pos_ -= 1;
      continue;
    }
    // Skip the whole (possibly multi-byte) character after the backslash.
    const size_t len = std::min(Utf8Length(e), n - (pos_ - 1));
    const auto eb = static_cast<unsigned char>(e);
    if (eb < 0x20 || eb == 0x7F) {
      Error(esc, absl::StrFormat("invalid escape sequence '\\' before "
                                 "character \\x%02X",
                                 eb));
    } else {
      Error(esc, absl::StrCat("invalid escape sequence '\\",
                              source_.substr(pos_ - 1, len), "'"));
    }
    pos_ += len - 1;
  }
  tok.size = static_cast<int32_t>(pos_ - start);
  return tok;
}

}  // namespace tappa::cel
