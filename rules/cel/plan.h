// The evaluation plan: what the checker (checker.h) produces from a parsed,
// macro-expanded expression and the evaluator (evaluator.h) runs.
//
// A plan is a tree of Nodes in which every name is already resolved: a
// variable is an index into the bindings, a comprehension variable is a slot
// in the evaluation frame, a call is a Builtin, constant sub-expressions are
// folded to values, constant regular expressions are compiled. Nothing in a
// plan is looked up by name at evaluation time.
//
// Ownership and thread safety: a plan is built once, then never modified; it
// owns every value its nodes hold, so values borrowed from it (constants,
// static error messages) live as long as the plan. Any number of threads may
// evaluate one plan at once.
#ifndef TAPPA_RULES_CEL_PLAN_H_
#define TAPPA_RULES_CEL_PLAN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "rules/cel/functions.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

namespace re2 {
class RE2;
}

namespace tappa::cel {

// Comprehensions may nest at most this deep (each level uses two frame slots:
// the iteration variable and the accumulator), so the frame has a fixed size
// and lives on the evaluating thread's stack.
inline constexpr int kMaxComprehensionDepth = 16;
inline constexpr int kMaxFrameSlots = 2 * kMaxComprehensionDepth;

enum class Op : uint8_t {
  kConstant,          // value
  kVariable,          // bindings[slot]
  kLocal,             // frame[slot]
  kSelect,            // children[0].field; a missing key is missing_key
  kSelectPath,        // bindings[slot].path[0].path[1]...: a fused chain of
                      // selections from a binding (the common case)
  kHas,               // has(children[0].field)
  kIndexString,       // children[0][field]: a constant string index, so a
                      // missing key is missing_key (no allocation)
  kAnd,               // children[0] && children[1]
  kOr,                // children[0] || children[1]
  kNot,               // !children[0]
  kTernary,           // children[0] ? children[1] : children[2]
  kNotStrictlyFalse,  // @not_strictly_false(children[0])
  kCall,              // builtin(children...), strict in errors
  kCompareConstant,   // builtin(children[0], value), builtin one of ==, !=,
                      // <, <=, >, >= (a constant left operand is swapped
                      // to the right, the relation mirrored)
  kMatchesCompiled,   // children[0].matches(<regex>)
  kInConstantList,    // children[0] in <elements>
  kList,              // [children...]
  kMap,               // {children[0]: children[1], ...}
  kComprehension,     // range, init, condition, step, result (ast.h)
  kAll,               // range, predicate
  kExists,            // range, predicate
  kExistsOne,         // range, predicate
  kMapMacro,          // range, [predicate,] transform
  kFilter,            // range, predicate
};

// Fields are ordered by use: evaluation reads the first two cache lines of
// a node (the operation, its slot, its children, its constant or fused
// path) and rarely the rest. A server evaluates conditions of many actions
// per request, mostly from memory rather than from the cache, so the lines
// a node spans are what a condition costs
// (benchmarks/decision_benchmark.cc, BM_DecideAcrossRuleset).
struct Node {
  Op op = Op::kConstant;
  Builtin builtin = Builtin::kEqual;  // kCall
  // kMapMacro: whether children[1] is a predicate (three-argument map).
  bool has_predicate = false;
  // Byte offset in the source of the expression this node came from.
  int32_t offset = 0;
  // kVariable: index into the bindings. kLocal: frame slot. Comprehensions:
  // the iteration variable's slot (the accumulator's is slot + 1).
  int32_t slot = -1;

  // Held in the node itself up to three (every operator): no separate
  // allocation to chase.
  absl::InlinedVector<std::unique_ptr<Node>, 3> children;

  // kConstant: the value, borrowing from `owned` so that evaluation copies
  // no reference counts.
  Value value;

  // kSelectPath: the fields (in the node up to two) and their "no such key:
  // <field>" messages.
  absl::InlinedVector<std::string, 2> path;

  // kInConstantList: the list's elements, plus a hash set when they are all
  // strings and there are enough of them for hashing to beat a scan.
  std::vector<Value> elements;
  std::unique_ptr<absl::flat_hash_set<std::string>> string_set;

  // ---- Read on errors and by the rarer operations ----
  std::vector<std::string> missing_keys;
  Value owned;

  // kSelect, kHas: the field name; kSelect: "no such key: <field>", kept here
  // so that a missing field is an error without allocating.
  std::string field;
  std::string missing_key;

  // kMatchesCompiled.
  std::shared_ptr<const re2::RE2> regex;

  // ---- Checker bookkeeping (not used by the evaluator) ----
  Type type;
  // Whether the subtree reads a binding, and which frame slots it reads that
  // it does not itself define: a subtree reading neither is constant.
  bool reads_bindings = false;
  uint32_t free_slots = 0;
};

// A copy of `v` that borrows what `v` owns (no reference count is touched):
// valid only while `v`, or whatever `v` refers to, lives.
inline Value BorrowedView(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return Value::BorrowedString(v.string_value());
    case Kind::kBytes:
      return Value::BorrowedBytes(v.bytes_value());
    case Kind::kList:
      return Value::BorrowedList(&v.list_value());
    case Kind::kMap:
      return Value::BorrowedMap(&v.map_value());
    case Kind::kError:
      return Value::StaticError(v.error_message());
    default:
      return v;
  }
}

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_PLAN_H_
