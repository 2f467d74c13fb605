#include "rules/cel/evaluator.h"

#include <new>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "rules/cel/containers.h"
#include "rules/cel/functions.h"
#include "rules/cel/operators.h"
#include "rules/cel/stdlib.h"

namespace tappa::cel {
namespace {

constexpr char kNoAnd[] = "no matching overload for '_&&_'";
constexpr char kNoOr[] = "no matching overload for '_||_'";
constexpr char kNoNot[] = "no matching overload for '!_'";
constexpr char kNoTernary[] = "no matching overload for '_?_:_'";
constexpr char kNoMatches[] = "no matching overload for 'matches'";
constexpr char kBadRange[] = "comprehension range must be a list or a map";
constexpr char kUnboundVariable[] = "no value bound for a declared variable";

struct Context {
  absl::Span<const Value> bindings;
  Value* frame;
  CostBudget budget;
};

Value Eval(const Node& node, Context& ctx);

// A non-bool operand of a logical operator: errors propagate as themselves,
// anything else is the operator's "no matching overload".
Value NonBool(const Value& v, const char* no_overload) {
  return v.IsError() ? v : Value::StaticError(no_overload);
}

Value EvalAnd(const Node& node, Context& ctx) {
  Value left = Eval(*node.children[0], ctx);
  if (left.IsBool() && !left.bool_value()) return left;
  Value right = Eval(*node.children[1], ctx);
  if (right.IsBool()) {
    // false absorbs whatever the left side was (commutative absorption).
    if (!right.bool_value() || left.IsBool()) return right;
    return NonBool(left, kNoAnd);
  }
  if (left.IsBool()) return NonBool(right, kNoAnd);  // left is true
  return NonBool(left, kNoAnd);                      // both fail: the first
}

Value EvalOr(const Node& node, Context& ctx) {
  Value left = Eval(*node.children[0], ctx);
  if (left.IsBool() && left.bool_value()) return left;
  Value right = Eval(*node.children[1], ctx);
  if (right.IsBool()) {
    if (right.bool_value() || left.IsBool()) return right;
    return NonBool(left, kNoOr);
  }
  if (left.IsBool()) return NonBool(right, kNoOr);
  return NonBool(left, kNoOr);
}

// A field of a map. When the map is not owned by a temporary (it is borrowed
// from the bindings or the program, which outlive the evaluation) and the
// field is a Value the map stores, the result borrows it: no reference count
// is touched.
Value SelectField(const Value& operand, absl::string_view field,
                  absl::string_view missing_key) {
  Value scratch;
  const Value* found = operand.map_value().FindStringRef(field, &scratch);
  if (found == nullptr) return Value::StaticError(missing_key);
  if (found == &scratch) return scratch;
  return operand.IsOwned() ? *found : BorrowedView(*found);
}

Value EvalSelect(const Node& node, Context& ctx) {
  Value operand = Eval(*node.children[0], ctx);
  if (operand.IsMap()) {
    if (node.op == Op::kSelect) {
      return SelectField(operand, node.field, node.missing_key);
    }
    Value scratch;
    return Value::Bool(
        operand.map_value().FindStringRef(node.field, &scratch) != nullptr);
  }
  if (operand.IsError()) return operand;
  return Value::StaticError(kInvalidSelect);
}

Value EvalSelectPath(const Node& node, Context& ctx) {
  if (static_cast<size_t>(node.slot) >= ctx.bindings.size()) {
    return Value::StaticError(kUnboundVariable);
  }
  const Value& root = ctx.bindings[node.slot];
  if (!root.IsMap()) {
    return root.IsError() ? BorrowedView(root)
                          : Value::StaticError(kInvalidSelect);
  }
  // While every step finds a Value stored in a map reachable from the
  // binding, everything stays alive without references: the walk borrows.
  // A map that computes its values hands out a copy, which `holder` keeps
  // alive from then on.
  const MapValue* map = &root.map_value();
  bool stored = true;
  Value holder;
  const size_t n = node.path.size();
  for (size_t i = 0;; ++i) {
    Value scratch;
    const Value* found = map->FindStringRef(node.path[i], &scratch);
    if (found == nullptr) return Value::StaticError(node.missing_keys[i]);
    if (found == &scratch) stored = false;
    if (i + 1 == n) return stored ? BorrowedView(*found) : Value(*found);
    if (!found->IsMap()) {
      if (found->IsError())
        return stored ? BorrowedView(*found) : Value(*found);
      return Value::StaticError(kInvalidSelect);
    }
    if (stored) {
      map = &found->map_value();
    } else {
      // Copy before assigning: `found` may live inside the map `holder`
      // releases.
      Value next = *found;
      holder = std::move(next);
      map = &holder.map_value();
    }
  }
}

Value EvalCall(const Node& node, Context& ctx) {
  // Builtins take at most two arguments; strictness: the leftmost error wins
  // and later arguments need not be evaluated.
  Value args[2];
  const size_t n = node.children.size();
  for (size_t i = 0; i < n; ++i) {
    args[i] = Eval(*node.children[i], ctx);
    if (args[i].IsError()) return std::move(args[i]);
  }
  return CallBuiltin(node.builtin, absl::Span<const Value>(args, n),
                     ctx.budget);
}

// Equal() with the overwhelmingly common same-kind cases inline.
inline bool FastEqual(const Value& a, const Value& b) {
  if (a.kind() == b.kind()) {
    if (a.IsString()) return a.string_value() == b.string_value();
    if (a.IsInt()) return a.int_value() == b.int_value();
  }
  return Equal(a, b);
}

Value EvalCompareConstant(const Node& node, Context& ctx) {
  Value v = Eval(*node.children[0], ctx);
  if (v.IsError()) return v;
  const Value& c = node.value;
  switch (node.builtin) {
    case Builtin::kEqual:
      return Value::Bool(FastEqual(v, c));
    case Builtin::kNotEqual:
      return Value::Bool(!FastEqual(v, c));
    default:
      break;
  }
  Ordering o;
  if (v.IsInt() && c.IsInt()) {
    o = v.int_value() < c.int_value()
            ? Ordering::kLess
            : (v.int_value() > c.int_value() ? Ordering::kGreater
                                             : Ordering::kEqual);
  } else {
    o = Compare(v, c);
    if (o == Ordering::kIncomparable) {
      return Value::StaticError(NoOverloadMessage(node.builtin));
    }
    if (o == Ordering::kUnordered) return Value::Bool(false);
  }
  switch (node.builtin) {
    case Builtin::kLess:
      return Value::Bool(o == Ordering::kLess);
    case Builtin::kLessEqual:
      return Value::Bool(o != Ordering::kGreater);
    case Builtin::kGreater:
      return Value::Bool(o == Ordering::kGreater);
    default:
      return Value::Bool(o != Ordering::kLess);
  }
}

Value EvalInConstantList(const Node& node, Context& ctx) {
  Value element = Eval(*node.children[0], ctx);
  if (element.IsError()) return element;
  if (node.string_set != nullptr) {
    // Every element is a string, and nothing else equals a string.
    return Value::Bool(element.IsString() &&
                       node.string_set->contains(element.string_value()));
  }
  for (const Value& candidate : node.elements) {
    if (FastEqual(element, candidate)) return Value::Bool(true);
  }
  return Value::Bool(false);
}

// Building lists, maps and comprehensions is kept out of line so that Eval,
// which recurses once per node, keeps a small stack frame on the hot path.
ABSL_ATTRIBUTE_NOINLINE Value EvalList(const Node& node, Context& ctx) {
  const size_t n = node.children.size();
  if (!ctx.budget.Charge(static_cast<int64_t>(n))) {
    return Value::StaticError(kCostLimitExceeded);
  }
  std::vector<Value> elements;
  elements.reserve(n);
  for (const auto& child : node.children) {
    Value v = Eval(*child, ctx);
    if (v.IsError()) return v;
    elements.push_back(std::move(v));
  }
  return Value::OwnedList(new VectorList(std::move(elements)));
}

ABSL_ATTRIBUTE_NOINLINE Value EvalMap(const Node& node, Context& ctx) {
  const size_t n = node.children.size() / 2;
  if (!ctx.budget.Charge(static_cast<int64_t>(n))) {
    return Value::StaticError(kCostLimitExceeded);
  }
  auto* map = new VectorMap();
  Value result = Value::OwnedMap(map);  // frees the map on an early return
  for (size_t i = 0; i < n; ++i) {
    Value key = Eval(*node.children[2 * i], ctx);
    if (key.IsError()) return key;
    Value value = Eval(*node.children[2 * i + 1], ctx);
    if (value.IsError()) return value;
    absl::Status status = map->Insert(std::move(key), std::move(value));
    if (!status.ok()) return Value::Error(status.message());
  }
  return result;
}

// The range of a comprehension: a list's elements or a map's keys.
class Range {
 public:
  explicit Range(const Value& v)
      : list_(v.IsList() ? &v.list_value() : nullptr),
        map_(v.IsMap() ? &v.map_value() : nullptr) {}
  bool valid() const { return list_ != nullptr || map_ != nullptr; }
  size_t size() const {
    return list_ != nullptr ? list_->size() : map_->size();
  }
  Value Get(size_t i) const {
    return list_ != nullptr ? list_->Get(i) : map_->KeyAt(i);
  }

 private:
  const ListValue* list_;
  const MapValue* map_;
};

ABSL_ATTRIBUTE_NOINLINE Value EvalComprehension(const Node& node,
                                                Context& ctx) {
  Value range_value = Eval(*node.children[0], ctx);
  if (range_value.IsError()) return range_value;
  const Range range(range_value);
  if (!range.valid()) return Value::StaticError(kBadRange);
  Value& iter = ctx.frame[node.slot];
  Value& accu = ctx.frame[node.slot + 1];
  const size_t n = range.size();

  switch (node.op) {
    case Op::kComprehension: {
      accu = Eval(*node.children[1], ctx);
      for (size_t i = 0; i < n; ++i) {
        if (!ctx.budget.Charge(1))
          return Value::StaticError(kCostLimitExceeded);
        iter = range.Get(i);
        Value condition = Eval(*node.children[2], ctx);
        if (condition.IsBool() && !condition.bool_value()) break;
        accu = Eval(*node.children[3], ctx);
      }
      return Eval(*node.children[4], ctx);
    }
    case Op::kAll:
    case Op::kExists: {
      // all: accu && p, stopping at the first false; an error or non-bool
      // is remembered and returned unless a later false decides. exists is
      // the dual.
      const bool decisive = node.op == Op::kExists;
      Value first_error;
      bool failed = false;
      for (size_t i = 0; i < n; ++i) {
        if (!ctx.budget.Charge(1))
          return Value::StaticError(kCostLimitExceeded);
        iter = range.Get(i);
        Value p = Eval(*node.children[1], ctx);
        if (p.IsBool()) {
          if (p.bool_value() == decisive) return p;
        } else if (!failed) {
          failed = true;
          first_error = NonBool(p, decisive ? kNoOr : kNoAnd);
        }
      }
      return failed ? first_error : Value::Bool(!decisive);
    }
    case Op::kExistsOne: {
      // p ? accu + 1 : accu, then accu == 1: any failing step makes the
      // accumulator an error for good, so the first one is the result.
      int64_t count = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!ctx.budget.Charge(1))
          return Value::StaticError(kCostLimitExceeded);
        iter = range.Get(i);
        Value p = Eval(*node.children[1], ctx);
        if (!p.IsBool()) return NonBool(p, kNoTernary);
        count += p.bool_value();
      }
      return Value::Bool(count == 1);
    }
    case Op::kMapMacro:
    case Op::kFilter: {
      auto* list = new VectorList();
      Value result = Value::OwnedList(list);  // sole owner: append in place
      list->Reserve(n);
      const Node* predicate = (node.op == Op::kFilter || node.has_predicate)
                                  ? node.children[1].get()
                                  : nullptr;
      const Node* transform =
          node.op == Op::kMapMacro ? node.children.back().get() : nullptr;
      for (size_t i = 0; i < n; ++i) {
        if (!ctx.budget.Charge(1))
          return Value::StaticError(kCostLimitExceeded);
        iter = range.Get(i);
        if (predicate != nullptr) {
          Value p = Eval(*predicate, ctx);
          if (!p.IsBool()) return NonBool(p, kNoTernary);
          if (!p.bool_value()) continue;
        }
        // The element built costs one more unit.
        if (!ctx.budget.Charge(1))
          return Value::StaticError(kCostLimitExceeded);
        if (transform == nullptr) {
          list->Append(iter);
          continue;
        }
        Value t = Eval(*transform, ctx);
        if (t.IsError()) return t;
        list->Append(std::move(t));
      }
      return result;
    }
    default:
      return Value::StaticError(kBadRange);
  }
}

Value Eval(const Node& node, Context& ctx) {
  switch (node.op) {
    case Op::kConstant:
      return node.value;
    case Op::kVariable:
      if (static_cast<size_t>(node.slot) >= ctx.bindings.size()) {
        return Value::StaticError(kUnboundVariable);
      }
      // Bindings outlive the evaluation: borrow, touching no reference count.
      return BorrowedView(ctx.bindings[node.slot]);
    case Op::kSelectPath:
      return EvalSelectPath(node, ctx);
    case Op::kIndexString: {
      Value operand = Eval(*node.children[0], ctx);
      if (operand.IsMap()) {
        return SelectField(operand, node.field, node.missing_key);
      }
      if (operand.IsError()) return operand;
      return Index(operand, Value::BorrowedString(node.field));
    }
    case Op::kLocal:
      return ctx.frame[node.slot];
    case Op::kSelect:
    case Op::kHas:
      return EvalSelect(node, ctx);
    case Op::kAnd:
      return EvalAnd(node, ctx);
    case Op::kOr:
      return EvalOr(node, ctx);
    case Op::kNot: {
      Value v = Eval(*node.children[0], ctx);
      if (v.IsBool()) return Value::Bool(!v.bool_value());
      return NonBool(v, kNoNot);
    }
    case Op::kTernary: {
      Value condition = Eval(*node.children[0], ctx);
      if (condition.IsBool()) {
        return Eval(*node.children[condition.bool_value() ? 1 : 2], ctx);
      }
      return NonBool(condition, kNoTernary);
    }
    case Op::kNotStrictlyFalse: {
      Value v = Eval(*node.children[0], ctx);
      if (v.IsBool()) return v;
      return Value::Bool(true);
    }
    case Op::kCall:
      return EvalCall(node, ctx);
    case Op::kCompareConstant:
      return EvalCompareConstant(node, ctx);
    case Op::kMatchesCompiled: {
      Value s = Eval(*node.children[0], ctx);
      if (s.IsError()) return s;
      if (!s.IsString()) return Value::StaticError(kNoMatches);
      return MatchesCompiled(s, *node.regex);
    }
    case Op::kInConstantList:
      return EvalInConstantList(node, ctx);
    case Op::kList:
      return EvalList(node, ctx);
    case Op::kMap:
      return EvalMap(node, ctx);
    case Op::kComprehension:
    case Op::kAll:
    case Op::kExists:
    case Op::kExistsOne:
    case Op::kMapMacro:
    case Op::kFilter:
      return EvalComprehension(node, ctx);
  }
  return Value::StaticError(kBadRange);
}

}  // namespace

Value EvaluatePlan(const Node& root, int frame_slots,
                   absl::Span<const Value> bindings, int64_t cost_limit,
                   bool* exhausted) {
  // The frame lives on this stack; only the slots the plan uses are
  // constructed (a Value's constructor is a couple of stores).
  alignas(Value) unsigned char storage[sizeof(Value) * kMaxFrameSlots];
  Value* frame = std::launder(reinterpret_cast<Value*>(storage));
  for (int i = 0; i < frame_slots; ++i) new (&frame[i]) Value();
  Context ctx{bindings, frame, CostBudget(cost_limit)};
  Value result = Eval(root, ctx);
  for (int i = 0; i < frame_slots; ++i) frame[i].~Value();
  if (ctx.budget.exhausted()) {
    // Whatever an operator absorbed after the budget ran out, the result of a
    // truncated evaluation is not trustworthy.
    if (exhausted != nullptr) *exhausted = true;
    return Value::StaticError(kCostLimitExceeded);
  }
  return result;
}

}  // namespace tappa::cel
