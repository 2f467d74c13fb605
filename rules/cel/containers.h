// Concrete list and map values built during evaluation, by list and map
// literals, and by hosts that hand data to expressions (tappactl's JSON
// bindings, contact snapshots in tests).
#ifndef TAPPA_RULES_CEL_CONTAINERS_H_
#define TAPPA_RULES_CEL_CONTAINERS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "rules/cel/value.h"

namespace tappa::cel {

// A list backed by a vector. Not thread-safe while being built; immutable
// (and so thread-safe) once wrapped in a Value.
class VectorList final : public ListValue {
 public:
  VectorList() = default;
  explicit VectorList(std::vector<Value> elements)
      : elements_(std::move(elements)) {}

  size_t size() const override { return elements_.size(); }
  Value Get(size_t index) const override { return elements_[index]; }

  // Only before the list is shared (or while IsUnique()): the evaluator uses
  // this to build map()/filter() results in place.
  void Append(Value v) { elements_.push_back(std::move(v)); }
  void Reserve(size_t n) { elements_.reserve(n); }
  std::vector<Value>& mutable_elements() { return elements_; }

 private:
  std::vector<Value> elements_;
};

// A map backed by a vector of entries in insertion order, with a hash index
// for lookups. Keys must be bool, int, uint or string values.
class VectorMap final : public MapValue {
 public:
  VectorMap() = default;

  // Adds an entry. Returns an InvalidArgument error for an unsupported key
  // kind ("unsupported key type") or a key equal (in CEL's heterogeneous
  // sense) to an existing one ("Failed with repeated key").
  absl::Status Insert(Value key, Value value);

  size_t size() const override { return keys_.size(); }
  bool Find(const Value& key, Value* value) const override;
  bool FindString(absl::string_view key, Value* value) const override;
  // Never uses `scratch`: returns the address of the stored value.
  const Value* FindStringRef(absl::string_view key,
                             Value* scratch) const override;
  Value KeyAt(size_t index) const override { return keys_[index]; }
  Value ValueAt(size_t index) const override { return values_[index]; }

 private:
  std::vector<Value> keys_;
  std::vector<Value> values_;
  // Small maps (the common case) are searched linearly; larger ones get an
  // index built on Insert. Implementation detail of containers.cc.
  std::vector<uint32_t> index_;
};

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_CONTAINERS_H_
