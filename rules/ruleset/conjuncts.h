// Splitting a condition into its top-level conjuncts, so an explanation can
// say which part of `a && b && c` was false.
#ifndef TAPPA_RULES_RULESET_CONJUNCTS_H_
#define TAPPA_RULES_RULESET_CONJUNCTS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace tappa::ruleset {

// The operands of the top-level `&&` chain of `source`, trimmed, in source
// order; empty when the expression is not such a chain (no top-level `&&`,
// or a top-level `||` or `?:`, which bind looser than `&&`). Tokens are
// found with the CEL lexer, so `&&` inside strings, parentheses, lists and
// calls does not split. `source` must be valid UTF-8.
std::vector<std::string> SplitConjuncts(absl::string_view source);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_CONJUNCTS_H_
