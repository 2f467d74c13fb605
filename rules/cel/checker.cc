#include "rules/cel/checker.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"
#include "rules/cel/evaluator.h"
#include "rules/cel/functions.h"
#include "rules/cel/stdlib.h"

namespace tappa::cel {
namespace {

// Folding runs the evaluator at compile time; a sub-expression too expensive
// to fold within this budget is left for run time, where the caller's budget
// applies.
constexpr int64_t kFoldCostLimit = 1'000'000;
// `x in [...]` over this many constant strings uses a hash set.
constexpr size_t kStringSetThreshold = 8;
// The value of a sub-expression that failed to check; never evaluated, since
// a program with issues is not built.
constexpr char kInvalidExpression[] = "invalid expression";

using TK = Type::Kind;

Type TypeOfValue(const Value& v) {
  switch (v.kind()) {
    case Kind::kNull:
      return Type::Null();
    case Kind::kBool:
      return Type::Bool();
    case Kind::kInt:
      return Type::Int();
    case Kind::kUint:
      return Type::Uint();
    case Kind::kDouble:
      return Type::Double();
    case Kind::kString:
      return Type::String();
    case Kind::kBytes:
      return Type::Bytes();
    case Kind::kList:
      return Type::List(Type::Dyn());
    case Kind::kMap:
      return Type::Map(Type::Dyn(), Type::Dyn());
    case Kind::kTimestamp:
      return Type::Timestamp();
    case Kind::kDuration:
      return Type::Duration();
    case Kind::kType:
      return Type::TypeType();
    case Kind::kError:
      return Type::Dyn();
  }
  return Type::Dyn();
}

// The type identifiers are the names KindName gives (all kinds but error).
bool FindTypeName(absl::string_view name, Kind* kind) {
  for (int k = 0; k <= static_cast<int>(Kind::kType); ++k) {
    if (KindName(static_cast<Kind>(k)) == name) {
      *kind = static_cast<Kind>(k);
      return true;
    }
  }
  return false;
}

bool IsBoolOrDyn(const Type& t) { return t.IsDyn() || t.kind() == TK::kBool; }

// The common type of several expressions: theirs if they all agree, else dyn.
Type CommonType(const std::vector<const Type*>& types) {
  if (types.empty()) return Type::Dyn();
  for (const Type* t : types) {
    if (!(*t == *types[0])) return Type::Dyn();
  }
  return *types[0];
}

bool IsCall(const Expr& e, absl::string_view name, size_t args) {
  return e.kind == ExprKind::kCall && !e.has_target && e.name == name &&
         e.children.size() == args;
}

bool IsIdent(const Expr& e, absl::string_view name) {
  return e.kind == ExprKind::kIdent && e.name == name;
}

// The element t of a macro step `accu + [t]`, or null.
const Expr* AppendedElement(const Expr& step, absl::string_view accu) {
  if (!IsCall(step, "_+_", 2) || !IsIdent(step.child(0), accu)) return nullptr;
  const Expr& list = step.child(1);
  if (list.kind != ExprKind::kList || list.children.size() != 1) return nullptr;
  return &list.child(0);
}

// The parts of a macro expansion the evaluator's fast paths need, recognized
// from the step's shape (ast.h); anything unexpected takes the general path.
struct MacroParts {
  Op op = Op::kComprehension;
  const Expr* predicate = nullptr;
  const Expr* transform = nullptr;
};

MacroParts RecognizeMacro(const Expr& e) {
  MacroParts parts;
  const Expr& step = e.child(3);
  const std::string& accu = e.accu_var;
  switch (e.macro) {
    case MacroKind::kAll:
    case MacroKind::kExists: {
      const bool all = e.macro == MacroKind::kAll;
      if (IsCall(step, all ? "_&&_" : "_||_", 2) &&
          IsIdent(step.child(0), accu)) {
        parts.op = all ? Op::kAll : Op::kExists;
        parts.predicate = &step.child(1);
      }
      break;
    }
    case MacroKind::kExistsOne:
      if (IsCall(step, "_?_:_", 3) && IsIdent(step.child(2), accu)) {
        parts.op = Op::kExistsOne;
        parts.predicate = &step.child(0);
      }
      break;
    case MacroKind::kMap:
      if ((parts.transform = AppendedElement(step, accu)) != nullptr) {
        parts.op = Op::kMapMacro;
      }
      break;
    case MacroKind::kMapFilter:
    case MacroKind::kFilter:
      if (IsCall(step, "_?_:_", 3) && IsIdent(step.child(2), accu)) {
        const Expr* element = AppendedElement(step.child(1), accu);
        if (element == nullptr) break;
        if (e.macro == MacroKind::kMapFilter) {
          parts.op = Op::kMapMacro;
          parts.transform = element;
        } else if (IsIdent(*element, e.iter_var)) {
          parts.op = Op::kFilter;
        } else {
          break;
        }
        parts.predicate = &step.child(0);
      }
      break;
    default:
      break;
  }
  return parts;
}

class Checker {
 public:
  Checker(absl::string_view source, const Environment& env)
      : source_(source), env_(env) {}

  std::unique_ptr<Node> Plan(const Expr& e) {
    if (depth_ >= kMaxCheckDepth) {
      if (!too_deep_) {
        too_deep_ = true;
        AddIssue(e.offset, absl::StrCat("expression nested more than ",
                                        kMaxCheckDepth, " levels deep"));
      }
      return Invalid(e.offset);
    }
    ++depth_;
    std::unique_ptr<Node> node = PlanExpr(e);
    --depth_;
    return node;
  }

  int frame_slots() const { return frame_slots_; }
  std::vector<Issue> TakeIssues() { return std::move(issues_); }

 private:
  struct Local {
    std::string name;
    int slot;
    Type type;
  };

  void AddIssue(int32_t offset, std::string message) {
    issues_.push_back(Issue{PositionOf(source_, offset), std::move(message)});
  }

  static std::unique_ptr<Node> Constant(Value owned, Type type,
                                        int32_t offset) {
    auto node = std::make_unique<Node>();
    node->op = Op::kConstant;
    node->offset = offset;
    node->value = BorrowedView(owned);
    node->owned = std::move(owned);
    node->type = std::move(type);
    return node;
  }

  static std::unique_ptr<Node> Invalid(int32_t offset) {
    return Constant(Value::StaticError(kInvalidExpression), Type::Dyn(),
                    offset);
  }

  static std::unique_ptr<Node> NewNode(Op op, int32_t offset, Type type) {
    auto node = std::make_unique<Node>();
    node->op = op;
    node->offset = offset;
    node->type = std::move(type);
    return node;
  }

  static void Adopt(Node& parent, std::unique_ptr<Node> child) {
    parent.reads_bindings |= child->reads_bindings;
    parent.free_slots |= child->free_slots;
    parent.children.push_back(std::move(child));
  }

  // Replaces a sub-expression that reads no binding and no enclosing
  // comprehension variable by its value.
  std::unique_ptr<Node> Fold(std::unique_ptr<Node> node) {
    if (node->op == Op::kConstant || node->reads_bindings ||
        node->free_slots != 0 || !issues_.empty()) {
      return node;
    }
    bool exhausted = false;
    Value v =
        EvaluatePlan(*node, kMaxFrameSlots, {}, kFoldCostLimit, &exhausted);
    if (exhausted) return node;
    // The value may borrow from the nodes being discarded: own it.
    return Constant(v.Own(), node->type, node->offset);
  }

  std::unique_ptr<Node> PlanExpr(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kConstant:
        return Constant(e.constant, TypeOfValue(e.constant), e.offset);
      case ExprKind::kIdent:
        return PlanName(e);
      case ExprKind::kSelect:
        if (!e.test_only) return PlanName(e);
        return PlanSelect(Plan(e.child(0)), e);
      case ExprKind::kCall:
        return PlanCall(e);
      case ExprKind::kList:
        return PlanList(e);
      case ExprKind::kMap:
        return PlanMap(e);
      case ExprKind::kComprehension:
        return PlanComprehension(e);
    }
    return Invalid(e.offset);
  }

  const Local* FindLocal(absl::string_view name) const {
    for (auto it = locals_.rbegin(); it != locals_.rend(); ++it) {
      if (it->name == name) return &*it;
    }
    return nullptr;
  }

  // A declared variable or constant, or a type identifier, named `name`.
  std::unique_ptr<Node> LookupGlobal(const std::string& name, int32_t offset) {
    const int index = env_.FindVariable(name);
    if (index >= 0) {
      auto node = NewNode(Op::kVariable, offset, env_.variables()[index].type);
      node->slot = index;
      node->reads_bindings = true;
      return node;
    }
    if (const Value* constant = env_.FindConstant(name)) {
      return Constant(*constant, TypeOfValue(*constant), offset);
    }
    Kind kind;
    if (FindTypeName(name, &kind)) {
      return Constant(Value::TypeOf(kind), Type::TypeType(), offset);
    }
    return nullptr;
  }

  // An identifier or a chain of field selections ending in one: CEL's
  // qualified-name resolution, longest declared prefix first.
  std::unique_ptr<Node> PlanName(const Expr& e) {
    std::vector<const Expr*> selects;  // outermost first
    const Expr* root = &e;
    while (root->kind == ExprKind::kSelect && !root->test_only) {
      selects.push_back(root);
      root = &root->child(0);
    }
    // segment j >= 1 is added by selects[selects.size() - j].
    const auto select_for = [&](size_t j) -> const Expr& {
      return *selects[selects.size() - j];
    };
    if (root->kind != ExprKind::kIdent) {
      std::unique_ptr<Node> node = Plan(*root);
      for (size_t j = 1; j <= selects.size(); ++j) {
        node = PlanSelect(std::move(node), select_for(j));
      }
      return node;
    }

    absl::string_view first = root->name;
    const bool rooted = absl::StartsWith(first, ".");
    if (rooted) first.remove_prefix(1);
    std::vector<absl::string_view> segments = {first};
    for (size_t j = 1; j <= selects.size(); ++j) {
      segments.push_back(select_for(j).name);
    }

    std::unique_ptr<Node> node;
    size_t used = 0;
    if (!rooted) {
      if (const Local* local = FindLocal(first)) {
        node = NewNode(Op::kLocal, root->offset, local->type);
        node->slot = local->slot;
        node->free_slots = 1u << local->slot;
        used = 1;
      }
    }
    for (size_t k = segments.size(); node == nullptr && k >= 1; --k) {
      node = LookupGlobal(
          absl::StrJoin(segments.begin(), segments.begin() + k, "."),
          root->offset);
      used = k;
    }
    if (node == nullptr) {
      std::string message =
          absl::StrCat("undeclared reference to '", first, "'");
      if (env_.allow_undeclared()) {
        return Constant(Value::Error(message), Type::Dyn(), root->offset);
      }
      AddIssue(root->offset, std::move(message));
      return Invalid(root->offset);
    }
    for (size_t j = used; j < segments.size(); ++j) {
      node = PlanSelect(std::move(node), select_for(j));
    }
    return node;
  }

  // operand.field, or has(operand.field) when e.test_only.
  std::unique_ptr<Node> PlanSelect(std::unique_ptr<Node> operand,
                                   const Expr& e) {
    const Type& t = operand->type;
    Type result = Type::Dyn();
    switch (t.kind()) {
      case TK::kDyn:
        break;
      case TK::kObject:
        if (const Type* field = t.FindField(e.name)) {
          result = *field;
        } else {
          AddIssue(e.offset, absl::StrCat("undefined field '", e.name,
                                          "' on type '", t.object_name(), "'"));
          return Invalid(e.offset);
        }
        break;
      case TK::kMap:
        if (t.key().IsDyn() || t.key().kind() == TK::kString) {
          result = t.value();
          break;
        }
        [[fallthrough]];
      default:
        AddIssue(e.offset, absl::StrCat("type '", t.DebugString(),
                                        "' does not support field selection"));
        return Invalid(e.offset);
    }
    if (!e.test_only &&
        (operand->op == Op::kVariable || operand->op == Op::kSelectPath)) {
      // Fuse selections from a binding into one node: one dispatch and no
      // intermediate copies for `contact.counts.product_view_7d`.
      operand->op = Op::kSelectPath;
      operand->offset = e.offset;
      operand->type = std::move(result);
      operand->path.push_back(e.name);
      operand->missing_keys.push_back(absl::StrCat("no such key: ", e.name));
      return operand;
    }
    auto node = NewNode(e.test_only ? Op::kHas : Op::kSelect, e.offset,
                        e.test_only ? Type::Bool() : std::move(result));
    node->field = e.name;
    node->missing_key = absl::StrCat("no such key: ", e.name);
    Adopt(*node, std::move(operand));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanCall(const Expr& e) {
    const std::string& name = e.name;
    const size_t argc = e.children.size();
    if (!e.has_target) {
      if ((name == "_&&_" || name == "_||_") && argc == 2)
        return PlanLogical(e);
      if (name == "!_" && argc == 1) return PlanNot(e);
      if (name == "_?_:_" && argc == 3) return PlanTernary(e);
      if ((name == "@not_strictly_false" || name == "__not_strictly_false__") &&
          argc == 1) {
        auto node = NewNode(Op::kNotStrictlyFalse, e.offset, Type::Bool());
        Adopt(*node, Plan(e.child(0)));
        return Fold(std::move(node));
      }
    }

    std::vector<std::unique_ptr<Node>> args;
    std::vector<Type> types;
    for (const auto& child : e.children) {
      args.push_back(Plan(*child));
      types.push_back(args.back()->type);
    }
    Builtin id;
    switch (ResolveFunction(name, e.has_target, static_cast<int>(argc), &id)) {
      case Resolution::kUndeclared:
        AddIssue(e.offset,
                 absl::StrCat("undeclared reference to '", name, "'"));
        return Invalid(e.offset);
      case Resolution::kNoOverload:
        AddIssue(e.offset, NoOverloadIssue(name, e.has_target, types));
        return Invalid(e.offset);
      case Resolution::kResolved:
        break;
    }
    Type result;
    if (!CheckBuiltin(id, types, &result)) {
      AddIssue(e.offset, NoOverloadIssue(name, e.has_target, types));
      return Invalid(e.offset);
    }
    if (id == Builtin::kDyn) {
      // dyn(x) only erases the static type.
      args[0]->type = Type::Dyn();
      return std::move(args[0]);
    }
    if (id == Builtin::kMatches && args[1]->op == Op::kConstant &&
        args[1]->value.IsString()) {
      auto regex = CompileRegex(args[1]->value.string_value());
      if (!regex.ok()) {
        AddIssue(args[1]->offset, std::string(regex.status().message()));
        return Invalid(e.offset);
      }
      auto node = NewNode(Op::kMatchesCompiled, e.offset, Type::Bool());
      node->regex = std::shared_ptr<const re2::RE2>(std::move(*regex));
      Adopt(*node, std::move(args[0]));
      return Fold(std::move(node));
    }
    if (id == Builtin::kIn && args[0]->op != Op::kConstant &&
        args[1]->op == Op::kConstant && args[1]->value.IsList()) {
      return PlanInConstantList(e, std::move(args[0]), *args[1]);
    }
    if (id == Builtin::kIndex && args[0]->op != Op::kConstant &&
        args[1]->op == Op::kConstant && args[1]->value.IsString()) {
      auto node = NewNode(Op::kIndexString, e.offset, std::move(result));
      node->field = std::string(args[1]->value.string_value());
      node->missing_key = absl::StrCat("no such key: ", node->field);
      Adopt(*node, std::move(args[0]));
      return node;
    }
    if (IsComparison(id) &&
        (args[0]->op == Op::kConstant) != (args[1]->op == Op::kConstant) &&
        !args[0]->value.IsError() && !args[1]->value.IsError()) {
      return PlanCompareConstant(e, id, std::move(args), std::move(result));
    }
    auto node = NewNode(Op::kCall, e.offset, std::move(result));
    node->builtin = id;
    for (auto& arg : args) Adopt(*node, std::move(arg));
    return Fold(std::move(node));
  }

  static bool IsComparison(Builtin id) {
    return id == Builtin::kEqual || id == Builtin::kNotEqual ||
           id == Builtin::kLess || id == Builtin::kLessEqual ||
           id == Builtin::kGreater || id == Builtin::kGreaterEqual;
  }

  // `x op c` or `c op x` with c constant: the most common shape of a rule
  // condition, evaluated without a call or an argument array.
  std::unique_ptr<Node> PlanCompareConstant(
      const Expr& e, Builtin id, std::vector<std::unique_ptr<Node>> args,
      Type result) {
    const bool swap = args[0]->op == Op::kConstant;
    std::unique_ptr<Node>& constant = args[swap ? 0 : 1];
    std::unique_ptr<Node>& operand = args[swap ? 1 : 0];
    if (swap) {
      switch (id) {
        case Builtin::kLess:
          id = Builtin::kGreater;
          break;
        case Builtin::kLessEqual:
          id = Builtin::kGreaterEqual;
          break;
        case Builtin::kGreater:
          id = Builtin::kLess;
          break;
        case Builtin::kGreaterEqual:
          id = Builtin::kLessEqual;
          break;
        default:
          break;
      }
    }
    auto node = NewNode(Op::kCompareConstant, e.offset, std::move(result));
    node->builtin = id;
    node->value = constant->value;
    node->owned = constant->owned;
    Adopt(*node, std::move(operand));
    return node;
  }

  std::unique_ptr<Node> PlanInConstantList(const Expr& e,
                                           std::unique_ptr<Node> element,
                                           const Node& list_node) {
    auto node = NewNode(Op::kInConstantList, e.offset, Type::Bool());
    node->owned = list_node.owned;  // keeps the elements' storage alive
    const ListValue& list = list_node.value.list_value();
    bool all_strings = true;
    for (size_t i = 0; i < list.size(); ++i) {
      node->elements.push_back(list.Get(i));
      all_strings &= node->elements.back().IsString();
    }
    if (all_strings && node->elements.size() >= kStringSetThreshold) {
      node->string_set = std::make_unique<absl::flat_hash_set<std::string>>();
      for (const Value& v : node->elements) {
        node->string_set->emplace(v.string_value());
      }
    }
    Adopt(*node, std::move(element));
    return node;
  }

  std::unique_ptr<Node> PlanLogical(const Expr& e) {
    const bool is_and = e.name == "_&&_";
    std::unique_ptr<Node> left = Plan(e.child(0));
    std::unique_ptr<Node> right = Plan(e.child(1));
    if (!IsBoolOrDyn(left->type) || !IsBoolOrDyn(right->type)) {
      AddIssue(e.offset,
               NoOverloadIssue(e.name, false, {left->type, right->type}));
      return Invalid(e.offset);
    }
    const auto is_constant = [](const Node& n, bool b) {
      return n.op == Op::kConstant && n.value.IsBool() &&
             n.value.bool_value() == b;
    };
    // false && x and x && false are false whatever x is, error included
    // (dually for ||): nothing to evaluate.
    if (is_constant(*left, !is_and)) return left;
    if (is_constant(*right, !is_and)) return right;
    // true && x is x when x is statically a bool (otherwise && must still
    // turn a non-bool into an error).
    if (is_constant(*left, is_and) && right->type.kind() == TK::kBool)
      return right;
    if (is_constant(*right, is_and) && left->type.kind() == TK::kBool)
      return left;
    auto node = NewNode(is_and ? Op::kAnd : Op::kOr, e.offset, Type::Bool());
    Adopt(*node, std::move(left));
    Adopt(*node, std::move(right));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanNot(const Expr& e) {
    std::unique_ptr<Node> operand = Plan(e.child(0));
    if (!IsBoolOrDyn(operand->type)) {
      AddIssue(e.offset, NoOverloadIssue(e.name, false, {operand->type}));
      return Invalid(e.offset);
    }
    auto node = NewNode(Op::kNot, e.offset, Type::Bool());
    Adopt(*node, std::move(operand));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanTernary(const Expr& e) {
    std::unique_ptr<Node> condition = Plan(e.child(0));
    std::unique_ptr<Node> if_true = Plan(e.child(1));
    std::unique_ptr<Node> if_false = Plan(e.child(2));
    if (!IsBoolOrDyn(condition->type)) {
      AddIssue(e.offset, NoOverloadIssue(
                             e.name, false,
                             {condition->type, if_true->type, if_false->type}));
      return Invalid(e.offset);
    }
    if (condition->op == Op::kConstant && condition->value.IsBool()) {
      return condition->value.bool_value() ? std::move(if_true)
                                           : std::move(if_false);
    }
    Type type = CommonType({&if_true->type, &if_false->type});
    auto node = NewNode(Op::kTernary, e.offset, std::move(type));
    Adopt(*node, std::move(condition));
    Adopt(*node, std::move(if_true));
    Adopt(*node, std::move(if_false));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanList(const Expr& e) {
    std::vector<std::unique_ptr<Node>> elements;
    std::vector<const Type*> types;
    for (const auto& child : e.children) {
      elements.push_back(Plan(*child));
      types.push_back(&elements.back()->type);
    }
    auto node = NewNode(Op::kList, e.offset, Type::List(CommonType(types)));
    for (auto& element : elements) Adopt(*node, std::move(element));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanMap(const Expr& e) {
    std::vector<std::unique_ptr<Node>> entries;
    std::vector<const Type*> key_types, value_types;
    for (size_t i = 0; i < e.children.size(); ++i) {
      entries.push_back(Plan(e.child(i)));
      (i % 2 == 0 ? key_types : value_types).push_back(&entries.back()->type);
    }
    auto node =
        NewNode(Op::kMap, e.offset,
                Type::Map(CommonType(key_types), CommonType(value_types)));
    for (auto& entry : entries) Adopt(*node, std::move(entry));
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanComprehension(const Expr& e) {
    if (comprehension_depth_ >= kMaxComprehensionDepth) {
      if (!too_many_comprehensions_) {
        too_many_comprehensions_ = true;
        AddIssue(e.offset, absl::StrCat("comprehensions nested more than ",
                                        kMaxComprehensionDepth, " deep"));
      }
      return Invalid(e.offset);
    }
    std::unique_ptr<Node> range = Plan(e.child(0));
    Type element = Type::Dyn();
    switch (range->type.kind()) {
      case TK::kDyn:
        break;
      case TK::kList:
        element = range->type.element();
        break;
      case TK::kMap:
        element = range->type.key();
        break;
      case TK::kObject:
        element = Type::String();
        break;
      default:
        AddIssue(e.child(0).offset,
                 absl::StrCat("expression of type '", range->type.DebugString(),
                              "' cannot be the range of a comprehension (must "
                              "be list, map, or dynamic)"));
        return Invalid(e.offset);
    }
    // Ranges and initial values are evaluated before the loop starts, so a
    // comprehension inside them may reuse this level's slots.
    const int slot = 2 * comprehension_depth_;
    frame_slots_ = std::max(frame_slots_, slot + 2);

    const MacroParts parts = RecognizeMacro(e);
    std::unique_ptr<Node> node;
    if (parts.op != Op::kComprehension) {
      node = PlanMacro(e, parts, std::move(range), element, slot);
    } else {
      std::unique_ptr<Node> init = Plan(e.child(1));
      ++comprehension_depth_;
      locals_.push_back(Local{e.accu_var, slot + 1, Type::Dyn()});
      locals_.push_back(Local{e.iter_var, slot, element});
      std::unique_ptr<Node> condition = Plan(e.child(2));
      std::unique_ptr<Node> step = Plan(e.child(3));
      locals_.pop_back();
      std::unique_ptr<Node> result = Plan(e.child(4));
      locals_.pop_back();
      --comprehension_depth_;
      node = NewNode(Op::kComprehension, e.offset, result->type);
      Adopt(*node, std::move(range));
      Adopt(*node, std::move(init));
      Adopt(*node, std::move(condition));
      Adopt(*node, std::move(step));
      Adopt(*node, std::move(result));
    }
    if (node->op == Op::kConstant) return node;  // an issue
    node->slot = slot;
    node->free_slots &= ~(3u << slot);
    return Fold(std::move(node));
  }

  std::unique_ptr<Node> PlanMacro(const Expr& e, const MacroParts& parts,
                                  std::unique_ptr<Node> range,
                                  const Type& element, int slot) {
    ++comprehension_depth_;
    locals_.push_back(Local{e.accu_var, slot + 1, Type::Dyn()});
    locals_.push_back(Local{e.iter_var, slot, element});
    std::unique_ptr<Node> predicate, transform;
    if (parts.predicate != nullptr) predicate = Plan(*parts.predicate);
    if (parts.transform != nullptr) transform = Plan(*parts.transform);
    locals_.pop_back();
    locals_.pop_back();
    --comprehension_depth_;

    Type type = Type::Bool();
    if (parts.op == Op::kMapMacro) type = Type::List(transform->type);
    if (parts.op == Op::kFilter) type = Type::List(element);
    if (predicate != nullptr && !IsBoolOrDyn(predicate->type)) {
      const bool all = parts.op == Op::kAll, exists = parts.op == Op::kExists;
      const std::string op = all ? "_&&_" : (exists ? "_||_" : "_?_:_");
      std::vector<Type> types = {predicate->type};
      if (all || exists) types.insert(types.begin(), Type::Bool());
      if (!all && !exists) types.insert(types.end(), 2, type);
      AddIssue(parts.predicate->offset, NoOverloadIssue(op, false, types));
      return Invalid(e.offset);
    }
    auto node = NewNode(parts.op, e.offset, std::move(type));
    node->has_predicate = predicate != nullptr;
    Adopt(*node, std::move(range));
    if (predicate != nullptr) Adopt(*node, std::move(predicate));
    if (transform != nullptr) Adopt(*node, std::move(transform));
    return node;
  }

  absl::string_view source_;
  const Environment& env_;
  std::vector<Issue> issues_;
  std::vector<Local> locals_;
  int depth_ = 0;
  bool too_deep_ = false;
  int comprehension_depth_ = 0;
  bool too_many_comprehensions_ = false;
  int frame_slots_ = 0;
};

}  // namespace

CheckResult Check(const Expr& expr, absl::string_view source,
                  const Environment& env) {
  Checker checker(source, env);
  CheckResult result;
  std::unique_ptr<Node> plan = checker.Plan(expr);
  result.issues = checker.TakeIssues();
  if (result.issues.empty()) {
    result.plan = std::move(plan);
    result.frame_slots = checker.frame_slots();
  }
  return result;
}

}  // namespace tappa::cel
