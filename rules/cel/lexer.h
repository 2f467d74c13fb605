// Lexer for CEL source text (cel-spec langdef.md, "lexis").
//
// The lexer turns source text into tokens on demand. Literal tokens carry
// their decoded values: escapes in strings and bytes are interpreted here
// (with CEL's rules: in strings, \x and octal escapes denote code points; in
// bytes they denote octets and \u, \U are not allowed; surrogate code points
// are invalid), and numeric literals are converted.
//
// Lexical errors never stop the lexer. Each error is reported once through
// the error sink with its byte offset; the lexer then produces either a
// kError token (for characters that start no token) or the literal token with
// a best-effort value (for a bad escape or an out-of-range number), so the
// parser can carry on without reporting the same problem again.
//
// Thread safety: a Lexer is used by one thread; distinct Lexers are
// independent.
#ifndef TAPPA_RULES_CEL_LEXER_H_
#define TAPPA_RULES_CEL_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tappa::cel {

enum class TokenKind : uint8_t {
  kEnd,    // end of input
  kError,  // characters that start no token (already reported)

  kIdent,   // identifier, including the host-reserved words (as, if, ...)
  kInt,     // decimal or hex integer; magnitude in Token::int_value
  kUint,    // integer with the u/U suffix
  kDouble,  // floating-point literal
  kString,  // string literal, decoded into Token::text
  kBytes,   // bytes literal, decoded into Token::text
  kTrue,
  kFalse,
  kNull,
  kIn,  // the `in` operator

  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kColon,
  kQuestion,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kPercent,
  kBang,
  kLess,
  kLessEqual,
  kGreater,
  kGreaterEqual,
  kEqual,     // ==
  kNotEqual,  // !=
  kAndAnd,
  kOrOr,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  // Byte offset of the token's first character, and its length in bytes.
  int32_t offset = 0;
  int32_t size = 0;
  // kInt: the literal's magnitude, which may exceed INT64_MAX (the parser
  // decides, knowing whether the literal is negated). kUint: the value.
  uint64_t int_value = 0;
  // kDouble: the value.
  double double_value = 0;
  // kString: the decoded UTF-8 text. kBytes: the decoded octets.
  // kIdent: the identifier.
  std::string text;
};

// A lexical error at a byte offset.
struct LexError {
  int32_t offset = 0;
  std::string message;
};

// Returns the byte offset of the first byte of `s` that is not part of a
// well-formed UTF-8 sequence (overlong forms, surrogates and code points
// above U+10FFFF are ill-formed), or -1 when `s` is valid UTF-8.
int64_t FindInvalidUtf8(absl::string_view s);

// True for the words the spec reserves for embedding CEL in host languages
// ("as", "break", ..., "while"): they lex as identifiers but may not be used
// as identifiers or global function names.
bool IsHostReservedWord(absl::string_view word);

class Lexer {
 public:
  // `source` must be valid UTF-8 and shorter than 2 GiB; it must outlive the
  // Lexer. `errors` receives lexical errors in source order.
  Lexer(absl::string_view source, std::vector<LexError>* errors);

  // Returns the next token; after the end, returns kEnd tokens forever.
  Token Next();

 private:
  void SkipWhitespaceAndComments();
  Token LexNumber(int32_t start);
  Token LexQuoted(int32_t start, bool raw, bool bytes);
  Token LexIdentOrKeyword(int32_t start);
  void Error(int32_t offset, std::string message);

  absl::string_view source_;
  size_t pos_ = 0;
  std::vector<LexError>* errors_;
};

// A short quoted rendering of a token for messages: "')'", "'foo'",
// "end of expression". Long tokens are abbreviated.
std::string DescribeToken(absl::string_view source, const Token& token);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_LEXER_H_
