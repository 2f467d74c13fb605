#include "rules/ruleset/conjuncts.h"

#include "absl/strings/ascii.h"
#include "rules/cel/lexer.h"

namespace tappa::ruleset {

std::vector<std::string> SplitConjuncts(absl::string_view source) {
  std::vector<cel::LexError> errors;
  cel::Lexer lexer(source, &errors);
  std::vector<int32_t> cuts;  // offsets of top-level `&&` tokens
  int depth = 0;
  for (cel::Token t = lexer.Next(); t.kind != cel::TokenKind::kEnd;
       t = lexer.Next()) {
    switch (t.kind) {
      case cel::TokenKind::kLParen:
      case cel::TokenKind::kLBracket:
      case cel::TokenKind::kLBrace:
        ++depth;
        break;
      case cel::TokenKind::kRParen:
      case cel::TokenKind::kRBracket:
      case cel::TokenKind::kRBrace:
        --depth;
        break;
      case cel::TokenKind::kOrOr:
      case cel::TokenKind::kQuestion:
        if (depth == 0) return {};
        break;
      case cel::TokenKind::kAndAnd:
        if (depth == 0) cuts.push_back(t.offset);
        break;
      case cel::TokenKind::kError:
        return {};
      default:
        break;
    }
  }
  if (cuts.empty() || !errors.empty()) return {};
  std::vector<std::string> parts;
  size_t begin = 0;
  for (int32_t cut : cuts) {
    parts.emplace_back(
        absl::StripAsciiWhitespace(source.substr(begin, cut - begin)));
    begin = cut + 2;
  }
  parts.emplace_back(absl::StripAsciiWhitespace(source.substr(begin)));
  for (const std::string& p : parts) {
    if (p.empty()) return {};
  }
  return parts;
}

}  // namespace tappa::ruleset
