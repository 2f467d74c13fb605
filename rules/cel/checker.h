// The checker: turns a parsed, macro-expanded expression (ast.h) into an
// evaluation plan (plan.h), reporting every problem it finds.
//
// It resolves names with CEL's qualified-name rules (`a.b.c` is the variable
// or constant "a.b.c" if declared, else "a.b" then field c, else "a" then
// fields b and c; a leading `.` skips comprehension variables), with
// comprehension variables lexically scoped and shadowing outer names; the
// type identifiers (`int`, `string`, `google.protobuf.Timestamp`, ...) are
// type values. Calls resolve to builtins by name, arity and call style.
// Types are inferred bottom-up where known (dyn elsewhere) and calls whose
// known argument types match no overload are rejected, as are selections of
// undeclared fields of object types. Sub-expressions that read no binding are
// evaluated once, here, and replaced by their value (an error value included:
// `1/0` is a runtime error, not a check error); constant regular expressions
// are compiled, and an invalid one is a check error.
//
// Issues carry the source position of the offending expression; messages
// follow CEL's checker: "undeclared reference to 'x'", "undefined field 'f'
// on type 'contact'", "found no matching overload for '_+_' applied to
// '(string, int)'".
//
// Thread safety: Check is reentrant; it reads `env` only.
#ifndef TAPPA_RULES_CEL_CHECKER_H_
#define TAPPA_RULES_CEL_CHECKER_H_

#include <memory>
#include <vector>

#include "absl/strings/string_view.h"
#include "rules/cel/ast.h"
#include "rules/cel/plan.h"
#include "rules/cel/program.h"
#include "rules/cel/source.h"

namespace tappa::cel {

// The nesting depth of an expression the checker (and so the evaluator) will
// recurse into; deeper expressions are an issue. The parser's own limit
// (kMaxNestingDepth) is lower, so this guards hand-built trees.
inline constexpr int kMaxCheckDepth = 1000;

struct CheckResult {
  // Null when issues is not empty.
  std::unique_ptr<Node> plan;
  // Frame slots the plan's comprehensions use (<= kMaxFrameSlots).
  int frame_slots = 0;
  std::vector<Issue> issues;
};

// `source` is the text `expr` was parsed from (for issue positions).
CheckResult Check(const Expr& expr, absl::string_view source,
                  const Environment& env);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_CHECKER_H_
