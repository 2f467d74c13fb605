// The abstract syntax tree of a parsed expression, after macro expansion.
//
// The tree mirrors CEL's canonical `Expr` message (cel-spec syntax.proto):
// constants, identifiers, field selection, calls (operators are calls with
// the spec's internal names such as "_+_", "_&&_", "_[_]", "@in", "!_",
// "-_", "_?_:_"), list and map literals, and comprehensions. Macros are
// expanded by the parser into the spec's canonical forms:
//   has(e.f)            -> Select{operand: e, field: "f", test_only: true}
//   e.all(x, p)         -> Comprehension (accu "__result__", init true,
//                          condition @not_strictly_false(accu), step accu && p)
//   e.exists(x, p)      -> init false, condition @not_strictly_false(!accu),
//                          step accu || p
//   e.exists_one(x, p)  -> init 0, condition true,
//                          step p ? accu + 1 : accu, result accu == 1
//   e.map(x, t)         -> init [], step accu + [t]
//   e.map(x, p, t)      -> init [], step p ? accu + [t] : accu
//   e.filter(x, p)      -> init [], step p ? accu + [x] : accu
// and `macro` records which macro produced a comprehension so the evaluator
// may use a faster equivalent.
//
// Every node has a unique id (> 0) and the byte offset of its first character
// in the source, for error messages.
#ifndef TAPPA_RULES_CEL_AST_H_
#define TAPPA_RULES_CEL_AST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rules/cel/value.h"

namespace tappa::cel {

enum class ExprKind : uint8_t {
  kConstant,       // constant
  kIdent,          // name
  kSelect,         // operand().name, test_only for has()
  kCall,           // [target.]function(args...)
  kList,           // [elements...]
  kMap,            // {keys[i]: values[i]...}
  kComprehension,  // see above
};

enum class MacroKind : uint8_t {
  kNone,
  kHas,
  kAll,
  kExists,
  kExistsOne,
  kMap,        // two-argument map(x, t)
  kMapFilter,  // three-argument map(x, p, t)
  kFilter,
};

// Internal accumulator name used by macro expansions.
inline constexpr char kAccumulatorName[] = "__result__";

struct Expr {
  ExprKind kind = ExprKind::kConstant;
  int64_t id = 0;
  // Byte offset of the node's first character in the source text.
  int32_t offset = 0;

  // kConstant: the literal's value (never borrowed: strings and bytes are
  // owned by the Value).
  Value constant;

  // kIdent: the identifier. kSelect: the field name. kCall: the function name
  // (operators use internal names, e.g. "_==_").
  std::string name;

  // kSelect: true for has(operand.name).
  bool test_only = false;

  // kCall: true when called receiver-style, target.f(args); the target is
  // then `children[0]` and the arguments follow.
  bool has_target = false;

  // kSelect: children[0] is the operand.
  // kCall: [target,] args...
  // kList: the elements.
  // kMap: keys and values alternate: k0, v0, k1, v1, ...
  // kComprehension: children[0] iter_range, [1] accu_init,
  //   [2] loop_condition, [3] loop_step, [4] result.
  std::vector<std::unique_ptr<Expr>> children;

  // kComprehension only.
  std::string iter_var;
  std::string accu_var;
  MacroKind macro = MacroKind::kNone;

  const Expr& child(size_t i) const { return *children[i]; }
};

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_AST_H_
