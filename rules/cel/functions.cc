#include "rules/cel/functions.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "rules/cel/operators.h"
#include "rules/cel/stdlib.h"

namespace tappa::cel {
namespace {

using K = Type::Kind;

struct BuiltinInfo {
  const char* name;
  const char* no_overload;
};

#define TAPPA_BUILTIN(name) \
  { name, "no matching overload for '" name "'" }
// Indexed by Builtin; keep in the enum's order.
constexpr BuiltinInfo kBuiltins[] = {
    TAPPA_BUILTIN("_==_"),
    TAPPA_BUILTIN("_!=_"),
    TAPPA_BUILTIN("_<_"),
    TAPPA_BUILTIN("_<=_"),
    TAPPA_BUILTIN("_>_"),
    TAPPA_BUILTIN("_>=_"),
    TAPPA_BUILTIN("_+_"),
    TAPPA_BUILTIN("_-_"),
    TAPPA_BUILTIN("_*_"),
    TAPPA_BUILTIN("_/_"),
    TAPPA_BUILTIN("_%_"),
    TAPPA_BUILTIN("-_"),
    TAPPA_BUILTIN("_[_]"),
    TAPPA_BUILTIN("@in"),
    TAPPA_BUILTIN("size"),
    TAPPA_BUILTIN("contains"),
    TAPPA_BUILTIN("startsWith"),
    TAPPA_BUILTIN("endsWith"),
    TAPPA_BUILTIN("matches"),
    TAPPA_BUILTIN("int"),
    TAPPA_BUILTIN("uint"),
    TAPPA_BUILTIN("double"),
    TAPPA_BUILTIN("string"),
    TAPPA_BUILTIN("bytes"),
    TAPPA_BUILTIN("bool"),
    TAPPA_BUILTIN("timestamp"),
    TAPPA_BUILTIN("duration"),
    TAPPA_BUILTIN("dyn"),
    TAPPA_BUILTIN("type"),
    TAPPA_BUILTIN("getFullYear"),
    TAPPA_BUILTIN("getMonth"),
    TAPPA_BUILTIN("getDate"),
    TAPPA_BUILTIN("getDayOfMonth"),
    TAPPA_BUILTIN("getDayOfWeek"),
    TAPPA_BUILTIN("getDayOfYear"),
    TAPPA_BUILTIN("getHours"),
    TAPPA_BUILTIN("getMinutes"),
    TAPPA_BUILTIN("getSeconds"),
    TAPPA_BUILTIN("getMilliseconds"),
};
#undef TAPPA_BUILTIN
static_assert(sizeof(kBuiltins) / sizeof(kBuiltins[0]) ==
              static_cast<size_t>(Builtin::kGetMilliseconds) + 1);

// How a function may be called. Arities count the receiver.
struct FunctionDecl {
  const char* name;
  bool receiver_style;
  int min_args;
  int max_args;
  Builtin id;
};

constexpr FunctionDecl kFunctions[] = {
    {"_==_", false, 2, 2, Builtin::kEqual},
    {"_!=_", false, 2, 2, Builtin::kNotEqual},
    {"_<_", false, 2, 2, Builtin::kLess},
    {"_<=_", false, 2, 2, Builtin::kLessEqual},
    {"_>_", false, 2, 2, Builtin::kGreater},
    {"_>=_", false, 2, 2, Builtin::kGreaterEqual},
    {"_+_", false, 2, 2, Builtin::kAdd},
    {"_-_", false, 2, 2, Builtin::kSubtract},
    {"_*_", false, 2, 2, Builtin::kMultiply},
    {"_/_", false, 2, 2, Builtin::kDivide},
    {"_%_", false, 2, 2, Builtin::kModulo},
    {"-_", false, 1, 1, Builtin::kNegate},
    {"_[_]", false, 2, 2, Builtin::kIndex},
    {"@in", false, 2, 2, Builtin::kIn},
    {"_in_", false, 2, 2, Builtin::kIn},  // the spec's older spelling
    {"size", false, 1, 1, Builtin::kSize},
    {"size", true, 1, 1, Builtin::kSize},
    {"contains", true, 2, 2, Builtin::kContains},
    {"startsWith", true, 2, 2, Builtin::kStartsWith},
    {"endsWith", true, 2, 2, Builtin::kEndsWith},
    {"matches", true, 2, 2, Builtin::kMatches},
    {"matches", false, 2, 2, Builtin::kMatches},
    {"int", false, 1, 1, Builtin::kInt},
    {"uint", false, 1, 1, Builtin::kUint},
    {"double", false, 1, 1, Builtin::kDouble},
    {"string", false, 1, 1, Builtin::kString},
    {"bytes", false, 1, 1, Builtin::kBytes},
    {"bool", false, 1, 1, Builtin::kBool},
    {"timestamp", false, 1, 1, Builtin::kTimestamp},
    {"duration", false, 1, 1, Builtin::kDuration},
    {"dyn", false, 1, 1, Builtin::kDyn},
    {"type", false, 1, 1, Builtin::kType},
    {"getFullYear", true, 1, 2, Builtin::kGetFullYear},
    {"getMonth", true, 1, 2, Builtin::kGetMonth},
    {"getDate", true, 1, 2, Builtin::kGetDate},
    {"getDayOfMonth", true, 1, 2, Builtin::kGetDayOfMonth},
    {"getDayOfWeek", true, 1, 2, Builtin::kGetDayOfWeek},
    {"getDayOfYear", true, 1, 2, Builtin::kGetDayOfYear},
    {"getHours", true, 1, 2, Builtin::kGetHours},
    {"getMinutes", true, 1, 2, Builtin::kGetMinutes},
    {"getSeconds", true, 1, 2, Builtin::kGetSeconds},
    {"getMilliseconds", true, 1, 2, Builtin::kGetMilliseconds},
};

// A static overload signature: parameter kinds (kDyn accepts anything) and
// the result kind.
struct Sig {
  int arity;
  K params[2];
  K result;
};

constexpr Sig kComparisonSigs[] = {
    {2, {K::kInt, K::kInt}, K::kBool},
    {2, {K::kInt, K::kUint}, K::kBool},
    {2, {K::kInt, K::kDouble}, K::kBool},
    {2, {K::kUint, K::kInt}, K::kBool},
    {2, {K::kUint, K::kUint}, K::kBool},
    {2, {K::kUint, K::kDouble}, K::kBool},
    {2, {K::kDouble, K::kInt}, K::kBool},
    {2, {K::kDouble, K::kUint}, K::kBool},
    {2, {K::kDouble, K::kDouble}, K::kBool},
    {2, {K::kString, K::kString}, K::kBool},
    {2, {K::kBytes, K::kBytes}, K::kBool},
    {2, {K::kBool, K::kBool}, K::kBool},
    {2, {K::kTimestamp, K::kTimestamp}, K::kBool},
    {2, {K::kDuration, K::kDuration}, K::kBool},
};
constexpr Sig kAddSigs[] = {
    {2, {K::kInt, K::kInt}, K::kInt},
    {2, {K::kUint, K::kUint}, K::kUint},
    {2, {K::kDouble, K::kDouble}, K::kDouble},
    {2, {K::kString, K::kString}, K::kString},
    {2, {K::kBytes, K::kBytes}, K::kBytes},
    {2, {K::kList, K::kList}, K::kList},
    {2, {K::kTimestamp, K::kDuration}, K::kTimestamp},
    {2, {K::kDuration, K::kTimestamp}, K::kTimestamp},
    {2, {K::kDuration, K::kDuration}, K::kDuration},
};
constexpr Sig kSubtractSigs[] = {
    {2, {K::kInt, K::kInt}, K::kInt},
    {2, {K::kUint, K::kUint}, K::kUint},
    {2, {K::kDouble, K::kDouble}, K::kDouble},
    {2, {K::kTimestamp, K::kTimestamp}, K::kDuration},
    {2, {K::kTimestamp, K::kDuration}, K::kTimestamp},
    {2, {K::kDuration, K::kDuration}, K::kDuration},
};
constexpr Sig kArithmeticSigs[] = {
    {2, {K::kInt, K::kInt}, K::kInt},
    {2, {K::kUint, K::kUint}, K::kUint},
    {2, {K::kDouble, K::kDouble}, K::kDouble},
};
constexpr Sig kModuloSigs[] = {
    {2, {K::kInt, K::kInt}, K::kInt},
    {2, {K::kUint, K::kUint}, K::kUint},
};
constexpr Sig kNegateSigs[] = {
    {1, {K::kInt}, K::kInt},
    {1, {K::kDouble}, K::kDouble},
};
constexpr Sig kSizeSigs[] = {
    {1, {K::kString}, K::kInt},
    {1, {K::kBytes}, K::kInt},
    {1, {K::kList}, K::kInt},
    {1, {K::kMap}, K::kInt},
};
constexpr Sig kStringPredicateSigs[] = {
    {2, {K::kString, K::kString}, K::kBool},
};
constexpr Sig kIntSigs[] = {
    {1, {K::kInt}, K::kInt},       {1, {K::kUint}, K::kInt},
    {1, {K::kDouble}, K::kInt},    {1, {K::kString}, K::kInt},
    {1, {K::kTimestamp}, K::kInt},
};
constexpr Sig kUintSigs[] = {
    {1, {K::kInt}, K::kUint},
    {1, {K::kUint}, K::kUint},
    {1, {K::kDouble}, K::kUint},
    {1, {K::kString}, K::kUint},
};
constexpr Sig kDoubleSigs[] = {
    {1, {K::kInt}, K::kDouble},
    {1, {K::kUint}, K::kDouble},
    {1, {K::kDouble}, K::kDouble},
    {1, {K::kString}, K::kDouble},
};
constexpr Sig kStringSigs[] = {
    {1, {K::kString}, K::kString},    {1, {K::kInt}, K::kString},
    {1, {K::kUint}, K::kString},      {1, {K::kDouble}, K::kString},
    {1, {K::kBool}, K::kString},      {1, {K::kBytes}, K::kString},
    {1, {K::kTimestamp}, K::kString}, {1, {K::kDuration}, K::kString},
};
constexpr Sig kBytesSigs[] = {
    {1, {K::kBytes}, K::kBytes},
    {1, {K::kString}, K::kBytes},
};
constexpr Sig kBoolSigs[] = {
    {1, {K::kBool}, K::kBool},
    {1, {K::kString}, K::kBool},
};
constexpr Sig kTimestampSigs[] = {
    {1, {K::kTimestamp}, K::kTimestamp},
    {1, {K::kString}, K::kTimestamp},
    {1, {K::kInt}, K::kTimestamp},
};
constexpr Sig kDurationSigs[] = {
    {1, {K::kDuration}, K::kDuration},
    {1, {K::kString}, K::kDuration},
};
constexpr Sig kDateAccessorSigs[] = {
    {1, {K::kTimestamp}, K::kInt},
    {2, {K::kTimestamp, K::kString}, K::kInt},
};
constexpr Sig kTimeAccessorSigs[] = {
    {1, {K::kTimestamp}, K::kInt},
    {2, {K::kTimestamp, K::kString}, K::kInt},
    {1, {K::kDuration}, K::kInt},
};

absl::Span<const Sig> SigsOf(Builtin id) {
  switch (id) {
    case Builtin::kLess:
    case Builtin::kLessEqual:
    case Builtin::kGreater:
    case Builtin::kGreaterEqual:
      return kComparisonSigs;
    case Builtin::kAdd:
      return kAddSigs;
    case Builtin::kSubtract:
      return kSubtractSigs;
    case Builtin::kMultiply:
    case Builtin::kDivide:
      return kArithmeticSigs;
    case Builtin::kModulo:
      return kModuloSigs;
    case Builtin::kNegate:
      return kNegateSigs;
    case Builtin::kSize:
      return kSizeSigs;
    case Builtin::kContains:
    case Builtin::kStartsWith:
    case Builtin::kEndsWith:
    case Builtin::kMatches:
      return kStringPredicateSigs;
    case Builtin::kInt:
      return kIntSigs;
    case Builtin::kUint:
      return kUintSigs;
    case Builtin::kDouble:
      return kDoubleSigs;
    case Builtin::kString:
      return kStringSigs;
    case Builtin::kBytes:
      return kBytesSigs;
    case Builtin::kBool:
      return kBoolSigs;
    case Builtin::kTimestamp:
      return kTimestampSigs;
    case Builtin::kDuration:
      return kDurationSigs;
    case Builtin::kGetFullYear:
    case Builtin::kGetMonth:
    case Builtin::kGetDate:
    case Builtin::kGetDayOfMonth:
    case Builtin::kGetDayOfWeek:
    case Builtin::kGetDayOfYear:
      return kDateAccessorSigs;
    case Builtin::kGetHours:
    case Builtin::kGetMinutes:
    case Builtin::kGetSeconds:
    case Builtin::kGetMilliseconds:
      return kTimeAccessorSigs;
    default:
      return {};
  }
}

// Objects are maps at run time, so they match map parameters.
K RuntimeKind(const Type& t) {
  return t.kind() == K::kObject ? K::kMap : t.kind();
}

bool Accepts(K param, const Type& arg) {
  return param == K::kDyn || arg.IsDyn() || RuntimeKind(arg) == param;
}

bool IsNumeric(K k) { return k == K::kInt || k == K::kUint || k == K::kDouble; }

Type TypeOfKind(K k) {
  switch (k) {
    case K::kNull:
      return Type::Null();
    case K::kBool:
      return Type::Bool();
    case K::kInt:
      return Type::Int();
    case K::kUint:
      return Type::Uint();
    case K::kDouble:
      return Type::Double();
    case K::kString:
      return Type::String();
    case K::kBytes:
      return Type::Bytes();
    case K::kTimestamp:
      return Type::Timestamp();
    case K::kDuration:
      return Type::Duration();
    case K::kList:
      return Type::List(Type::Dyn());
    case K::kMap:
      return Type::Map(Type::Dyn(), Type::Dyn());
    case K::kType:
      return Type::TypeType();
    default:
      return Type::Dyn();
  }
}

bool CheckIndex(const Type& container, const Type& index, Type* result) {
  switch (container.kind()) {
    case K::kDyn:
      *result = Type::Dyn();
      return true;
    case K::kList:
      if (!index.IsDyn() && !IsNumeric(index.kind())) return false;
      *result = container.element();
      return true;
    case K::kMap:
      if (!Comparable(index, container.key())) return false;
      *result = container.value();
      return true;
    case K::kObject:
      if (!index.IsDyn() && index.kind() != K::kString) return false;
      *result = Type::Dyn();
      return true;
    default:
      return false;
  }
}

bool CheckIn(const Type& element, const Type& container) {
  switch (container.kind()) {
    case K::kDyn:
      return true;
    case K::kList:
      return Comparable(element, container.element());
    case K::kMap:
      return Comparable(element, container.key());
    case K::kObject:
      return Comparable(element, Type::String());
    default:
      return false;
  }
}

Value NoOverload(Builtin id) {
  return Value::StaticError(NoOverloadMessage(id));
}

Value CompareResult(Builtin id, const Value& a, const Value& b) {
  const Ordering o = Compare(a, b);
  switch (o) {
    case Ordering::kIncomparable:
      return NoOverload(id);
    case Ordering::kUnordered:
      return Value::Bool(false);
    default:
      break;
  }
  switch (id) {
    case Builtin::kLess:
      return Value::Bool(o == Ordering::kLess);
    case Builtin::kLessEqual:
      return Value::Bool(o != Ordering::kGreater);
    case Builtin::kGreater:
      return Value::Bool(o == Ordering::kGreater);
    default:  // kGreaterEqual
      return Value::Bool(o != Ordering::kLess);
  }
}

// Strings produced by conversions are charged to the budget like
// concatenations.
Value ChargeString(Value v, CostBudget& budget) {
  if ((v.IsString() || v.IsBytes()) &&
      !budget.Charge(static_cast<int64_t>(v.string_value().size()))) {
    return Value::StaticError(kCostLimitExceeded);
  }
  return v;
}

TimeField FieldOf(Builtin id) {
  switch (id) {
    case Builtin::kGetFullYear:
      return TimeField::kFullYear;
    case Builtin::kGetMonth:
      return TimeField::kMonth;
    case Builtin::kGetDate:
      return TimeField::kDate;
    case Builtin::kGetDayOfMonth:
      return TimeField::kDayOfMonth;
    case Builtin::kGetDayOfWeek:
      return TimeField::kDayOfWeek;
    case Builtin::kGetDayOfYear:
      return TimeField::kDayOfYear;
    case Builtin::kGetHours:
      return TimeField::kHours;
    case Builtin::kGetMinutes:
      return TimeField::kMinutes;
    case Builtin::kGetSeconds:
      return TimeField::kSeconds;
    default:
      return TimeField::kMilliseconds;
  }
}

Value CallAccessor(Builtin id, absl::Span<const Value> args) {
  const Value& target = args[0];
  if (target.IsTimestamp()) {
    const Value* tz = args.size() > 1 ? &args[1] : nullptr;
    if (tz != nullptr && !tz->IsString()) return NoOverload(id);
    return TimestampField(FieldOf(id), target.timestamp_value(), tz);
  }
  if (target.IsDuration() && args.size() == 1 &&
      (id == Builtin::kGetHours || id == Builtin::kGetMinutes ||
       id == Builtin::kGetSeconds || id == Builtin::kGetMilliseconds)) {
    return DurationField(FieldOf(id), target.duration_value());
  }
  return NoOverload(id);
}

}  // namespace

absl::string_view BuiltinName(Builtin id) {
  return kBuiltins[static_cast<size_t>(id)].name;
}

absl::string_view NoOverloadMessage(Builtin id) {
  return kBuiltins[static_cast<size_t>(id)].no_overload;
}

Resolution ResolveFunction(absl::string_view name, bool receiver_style,
                           int arg_count, Builtin* id) {
  bool known = false;
  for (const FunctionDecl& f : kFunctions) {
    if (name != f.name) continue;
    known = true;
    if (f.receiver_style == receiver_style && arg_count >= f.min_args &&
        arg_count <= f.max_args) {
      *id = f.id;
      return Resolution::kResolved;
    }
  }
  return known ? Resolution::kNoOverload : Resolution::kUndeclared;
}

bool Comparable(const Type& a, const Type& b) {
  if (a.IsDyn() || b.IsDyn()) return true;
  const K ak = a.kind(), bk = b.kind();
  if (IsNumeric(ak) && IsNumeric(bk)) return true;
  const auto nullable = [](K k) {
    return k == K::kNull || k == K::kMap || k == K::kObject;
  };
  if (ak == K::kNull || bk == K::kNull) return nullable(ak) && nullable(bk);
  if (ak == K::kObject && bk == K::kObject) return a == b;
  if (RuntimeKind(a) != RuntimeKind(b)) return false;
  if (ak == K::kList) return Comparable(a.element(), b.element());
  if (ak == K::kMap && bk == K::kMap) {
    return Comparable(a.key(), b.key()) && Comparable(a.value(), b.value());
  }
  return true;
}

bool CheckBuiltin(Builtin id, absl::Span<const Type> args, Type* result) {
  switch (id) {
    case Builtin::kEqual:
    case Builtin::kNotEqual:
      if (!Comparable(args[0], args[1])) return false;
      *result = Type::Bool();
      return true;
    case Builtin::kIndex:
      return CheckIndex(args[0], args[1], result);
    case Builtin::kIn:
      if (!CheckIn(args[0], args[1])) return false;
      *result = Type::Bool();
      return true;
    case Builtin::kDyn:
      *result = Type::Dyn();
      return true;
    case Builtin::kType:
      *result = Type::TypeType();
      return true;
    default:
      break;
  }
  bool matched = false;
  bool same_result = true;
  K result_kind = K::kDyn;
  for (const Sig& sig : SigsOf(id)) {
    if (sig.arity != static_cast<int>(args.size())) continue;
    bool ok = true;
    for (int i = 0; i < sig.arity && ok; ++i)
      ok = Accepts(sig.params[i], args[i]);
    if (!ok) continue;
    if (matched && sig.result != result_kind) same_result = false;
    matched = true;
    result_kind = sig.result;
  }
  if (!matched) return false;
  if (!same_result) {
    *result = Type::Dyn();
  } else if (result_kind == K::kList && args.size() == 2 &&
             args[0].kind() == K::kList && args[1].kind() == K::kList &&
             args[0].element() == args[1].element()) {
    *result = args[0];  // list(T) + list(T) -> list(T)
  } else {
    *result = TypeOfKind(result_kind);
  }
  return true;
}

std::string NoOverloadIssue(absl::string_view name, bool receiver_style,
                            absl::Span<const Type> args) {
  std::vector<std::string> names;
  for (size_t i = receiver_style ? 1 : 0; i < args.size(); ++i) {
    names.push_back(args[i].DebugString());
  }
  std::string applied = absl::StrCat("(", absl::StrJoin(names, ", "), ")");
  if (receiver_style && !args.empty()) {
    applied = absl::StrCat(args[0].DebugString(), ".", applied);
  }
  return absl::StrCat("found no matching overload for '", name,
                      "' applied to '", applied, "'");
}

Value CallBuiltin(Builtin id, absl::Span<const Value> args,
                  CostBudget& budget) {
  switch (id) {
    case Builtin::kEqual:
      return Value::Bool(Equal(args[0], args[1]));
    case Builtin::kNotEqual:
      return Value::Bool(!Equal(args[0], args[1]));
    case Builtin::kLess:
    case Builtin::kLessEqual:
    case Builtin::kGreater:
    case Builtin::kGreaterEqual:
      return CompareResult(id, args[0], args[1]);
    case Builtin::kAdd:
      return Add(args[0], args[1], budget);
    case Builtin::kSubtract:
      return Subtract(args[0], args[1]);
    case Builtin::kMultiply:
      return Multiply(args[0], args[1]);
    case Builtin::kDivide:
      return Divide(args[0], args[1]);
    case Builtin::kModulo:
      return Modulo(args[0], args[1]);
    case Builtin::kNegate:
      return Negate(args[0]);
    case Builtin::kIndex:
      return Index(args[0], args[1]);
    case Builtin::kIn:
      return In(args[0], args[1]);
    case Builtin::kSize:
      return Size(args[0]);
    case Builtin::kContains:
    case Builtin::kStartsWith:
    case Builtin::kEndsWith:
    case Builtin::kMatches:
      if (!args[0].IsString() || !args[1].IsString()) return NoOverload(id);
      if (id == Builtin::kContains) return Contains(args[0], args[1]);
      if (id == Builtin::kStartsWith) return StartsWith(args[0], args[1]);
      if (id == Builtin::kEndsWith) return EndsWith(args[0], args[1]);
      return Matches(args[0], args[1]);
    case Builtin::kInt:
      return ToInt(args[0]);
    case Builtin::kUint:
      return ToUint(args[0]);
    case Builtin::kDouble:
      return ToDouble(args[0]);
    case Builtin::kString:
      // Identity on strings: no copy, no charge.
      if (args[0].IsString()) return args[0];
      return ChargeString(ToString(args[0]), budget);
    case Builtin::kBytes:
      if (args[0].IsBytes()) return args[0];
      return ChargeString(ToBytes(args[0]), budget);
    case Builtin::kBool:
      return ToBool(args[0]);
    case Builtin::kTimestamp:
      return ToTimestamp(args[0]);
    case Builtin::kDuration:
      return ToDuration(args[0]);
    case Builtin::kDyn:
      return args[0];
    case Builtin::kType:
      return Value::TypeOf(args[0].kind());
    case Builtin::kGetFullYear:
    case Builtin::kGetMonth:
    case Builtin::kGetDate:
    case Builtin::kGetDayOfMonth:
    case Builtin::kGetDayOfWeek:
    case Builtin::kGetDayOfYear:
    case Builtin::kGetHours:
    case Builtin::kGetMinutes:
    case Builtin::kGetSeconds:
    case Builtin::kGetMilliseconds:
      return CallAccessor(id, args);
  }
  return Value::StaticError("unknown function");  // unreachable
}

}  // namespace tappa::cel
