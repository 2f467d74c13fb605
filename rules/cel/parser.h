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
// Concretely: every tree Parse returns is at most kMaxNestingDepth levels
// deep (as a tree: a macro expansion adds two levels), so recursive walks
// over it need bounded stack; Parse itself needs under 256 KiB of stack
// (about 0.8 KiB per nesting level in an optimized build). `||` and `&&`
// chains are built as balanced trees, so long ones stay shallow.
#ifndef TAPPA_RULES_CEL_PARSER_H_
#define TAPPA_RULES_CEL_PARSER_H_

#include <memory>
#include <string>
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

// Thread-safe: calls share no state. Allocates the tree and some scratch
// proportional to the source.
ParseResult Parse(absl::string_view source, const ParseOptions& options = {});

// A compact, unambiguous rendering of a tree for tests and diagnostics:
// operators and functions as calls (`_+_(a, 1)`, `x.f(y)` for receiver
// calls), selections as `a.f` (`@has(a.f)` when test_only, so
// it differs from a plain call of a function named has), lists and maps as
// literals, comprehensions as
// `comprehension(iter_var, range, accu_var, init, condition, step, result)`,
// constants as CEL literals (1, 2u, 1.5, "s", b"\x00", true, null).
// Recursive: meant for trees from Parse, whose depth is bounded.
std::string DebugString(const Expr& expr);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_PARSER_H_
