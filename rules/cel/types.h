// Static types used by the checker to resolve names and reject expressions
// that cannot succeed (`contact.phase == 3`, `contact.counts.typo`) when a
// ruleset is loaded rather than when a request is served.
//
// The type system is CEL's, simplified: dyn (anything, checked at run time),
// the primitive types, list(T), map(K, V), type, and object types: named
// records with declared fields. At run time an object is a MapValue with
// string keys, one per declared field.
#ifndef TAPPA_RULES_CEL_TYPES_H_
#define TAPPA_RULES_CEL_TYPES_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace tappa::cel {

class Type {
 public:
  enum class Kind : uint8_t {
    kDyn,
    kNull,
    kBool,
    kInt,
    kUint,
    kDouble,
    kString,
    kBytes,
    kTimestamp,
    kDuration,
    kList,
    kMap,
    kObject,
    kType,
  };

  // Dyn.
  Type();
  static Type Dyn();
  static Type Null();
  static Type Bool();
  static Type Int();
  static Type Uint();
  static Type Double();
  static Type String();
  static Type Bytes();
  static Type Timestamp();
  static Type Duration();
  static Type TypeType();
  static Type List(Type element);
  static Type Map(Type key, Type value);
  // A record named `name` ("contact", "event") with the given fields. Select
  // of an undeclared field is a check error.
  static Type Object(std::string name,
                     std::vector<std::pair<std::string, Type>> fields);

  Kind kind() const { return kind_; }
  bool IsDyn() const { return kind_ == Kind::kDyn; }
  // kList: the element type. kMap: the key and value types.
  const Type& element() const;
  const Type& key() const;
  const Type& value() const;
  // kObject: the name and the type of a field (null when undeclared).
  const std::string& object_name() const;
  const Type* FindField(absl::string_view field) const;
  const std::vector<std::pair<std::string, Type>>& fields() const;

  // CEL spelling: "int", "list(string)", "map(string, int)", "dyn",
  // "contact" for objects.
  std::string DebugString() const;

  // Structural equality (objects compare by name).
  bool operator==(const Type& other) const;

 private:
  struct Rep;
  Kind kind_ = Kind::kDyn;
  std::shared_ptr<const Rep> rep_;  // parameters of list, map and object
};

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_TYPES_H_
