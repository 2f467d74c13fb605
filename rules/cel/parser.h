// Parser for the CEL grammar (cel-spec langdef.md), producing the macro-
// expanded syntax tree of ast.h.
//
// Supported: all literals (int, uint with the u suffix, double, string and
// bytes in every quoting form incl. raw and triple quotes with CEL's escapes,
// bool, null), identifiers with a leading '.', member and index access,
// receiver-style and global calls, list and map literals (trailing commas
// allowed), the operators with the spec's precedence and associativity
// (?: < || < && < relations/in < +,- < *,/,% < unary !,- < member), and the
// macros has, all, exists, exists_one, map, filter. Message construction
// (`T{f: v}`) and optional syntax (`.?f`) are reported as unsupported.
//
// Limits (documented in rules/README.md): source at most kMaxSourceBytes
// bytes, valid UTF-8; nesting depth at most kMaxNestingDepth (parentheses,
// calls, selections, lists, maps and operator chains all count); the parser
// is iterative or depth-guarded so no input can overflow the stack.
#ifndef TAPPA_RULES_CEL_PARSER_H_
#define TAPPA_RULES_CEL_PARSER_H_

#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "rules/cel/ast.h"
#include "rules/cel/source.h"

namespace tappa::cel {

inline constexpr size_t kMaxSourceBytes = 100 * 1024;
inline constexpr int kMaxNestingDepth = 250;

struct ParseOptions {
  // When false, has/all/exists/exists_one/map/filter are ordinary calls.
  bool enable_macros = true;
};

struct ParseResult {
  // Non-null when parsing succeeded (issues is then empty).
  std::unique_ptr<Expr> expr;
  // Every syntax error found (at least one when expr is null), in source
  // order, each with its position; messages say what was expected, e.g.
  // "unexpected token ')'", "unterminated string literal",
  // "integer literal out of range", "invalid UTF-8 in source".
  std::vector<Issue> issues;
};

// Thread-safe; allocates only the result.
ParseResult Parse(absl::string_view source, const ParseOptions& options = {});

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_PARSER_H_
