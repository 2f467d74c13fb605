#include "rules/cel/types.h"

#include "absl/strings/str_cat.h"

namespace tappa::cel {

struct Type::Rep {
  // kList: params[0] is the element. kMap: params[0] key, params[1] value.
  std::vector<Type> params;
  // kObject.
  std::string name;
  std::vector<std::pair<std::string, Type>> fields;
};

namespace {

const Type& DynType() {
  static const Type* const dyn = new Type();
  return *dyn;
}

}  // namespace

Type::Type() = default;
Type Type::Dyn() { return Type(); }

#define TAPPA_PRIMITIVE_TYPE(Name, KindValue) \
  Type Type::Name() {                         \
    Type t;                                   \
    t.kind_ = Kind::KindValue;                \
    return t;                                 \
  }
TAPPA_PRIMITIVE_TYPE(Null, kNull)
TAPPA_PRIMITIVE_TYPE(Bool, kBool)
TAPPA_PRIMITIVE_TYPE(Int, kInt)
TAPPA_PRIMITIVE_TYPE(Uint, kUint)
TAPPA_PRIMITIVE_TYPE(Double, kDouble)
TAPPA_PRIMITIVE_TYPE(String, kString)
TAPPA_PRIMITIVE_TYPE(Bytes, kBytes)
TAPPA_PRIMITIVE_TYPE(Timestamp, kTimestamp)
TAPPA_PRIMITIVE_TYPE(Duration, kDuration)
TAPPA_PRIMITIVE_TYPE(TypeType, kType)
#undef TAPPA_PRIMITIVE_TYPE

Type Type::List(Type element) {
  Type t;
  t.kind_ = Kind::kList;
  auto rep = std::make_shared<Rep>();
  rep->params.push_back(std::move(element));
  t.rep_ = std::move(rep);
  return t;
}

Type Type::Map(Type key, Type value) {
  Type t;
  t.kind_ = Kind::kMap;
  auto rep = std::make_shared<Rep>();
  rep->params.push_back(std::move(key));
  rep->params.push_back(std::move(value));
  t.rep_ = std::move(rep);
  return t;
}

Type Type::Object(std::string name,
                  std::vector<std::pair<std::string, Type>> fields) {
  Type t;
  t.kind_ = Kind::kObject;
  auto rep = std::make_shared<Rep>();
  rep->name = std::move(name);
  rep->fields = std::move(fields);
  t.rep_ = std::move(rep);
  return t;
}

const Type& Type::element() const {
  return kind_ == Kind::kList ? rep_->params[0] : DynType();
}
const Type& Type::key() const {
  return kind_ == Kind::kMap ? rep_->params[0] : DynType();
}
const Type& Type::value() const {
  return kind_ == Kind::kMap ? rep_->params[1] : DynType();
}

const std::string& Type::object_name() const {
  static const std::string* const empty = new std::string();
  return kind_ == Kind::kObject ? rep_->name : *empty;
}

const Type* Type::FindField(absl::string_view field) const {
  if (kind_ != Kind::kObject) return nullptr;
  for (const auto& [name, type] : rep_->fields) {
    if (name == field) return &type;
  }
  return nullptr;
}

const std::vector<std::pair<std::string, Type>>& Type::fields() const {
  static const auto* const empty =
      new std::vector<std::pair<std::string, Type>>();
  return kind_ == Kind::kObject ? rep_->fields : *empty;
}

std::string Type::DebugString() const {
  switch (kind_) {
    case Kind::kDyn:
      return "dyn";
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTimestamp:
      return "google.protobuf.Timestamp";
    case Kind::kDuration:
      return "google.protobuf.Duration";
    case Kind::kType:
      return "type";
    case Kind::kList:
      return absl::StrCat("list(", element().DebugString(), ")");
    case Kind::kMap:
      return absl::StrCat("map(", key().DebugString(), ", ",
                          value().DebugString(), ")");
    case Kind::kObject:
      return rep_->name;
  }
  return "dyn";
}

bool Type::operator==(const Type& other) const {
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kList:
      return element() == other.element();
    case Kind::kMap:
      return key() == other.key() && value() == other.value();
    case Kind::kObject:
      return rep_->name == other.rep_->name;
    default:
      return true;
  }
}

}  // namespace tappa::cel
