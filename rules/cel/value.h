// Runtime values of the expression language (a subset of Google's Common
// Expression Language, CEL).
//
// A Value is a small (32-byte) tagged union. Scalars (null, bool, int, uint,
// double, timestamp, duration, type) are stored inline. Strings, bytes, lists,
// maps and errors are either
//   * borrowed: the Value points at data owned by someone else (a compiled
//     program's constants, the caller's bindings) and copying it costs nothing;
//     the data must outlive every borrowed Value that refers to it, or
//   * owned: the Value holds a reference on a RefCounted object created during
//     evaluation, released when the last Value referring to it is destroyed.
// Evaluation of the common path (comparisons, field access, `in`) produces
// only inline or borrowed values and so never touches the heap.
//
// Thread safety: a Value is immutable after construction; distinct Values may
// be used from different threads even when they share an owned object (the
// reference count is atomic). Value::Own() makes a copy that borrows nothing.
#ifndef TAPPA_RULES_CEL_VALUE_H_
#define TAPPA_RULES_CEL_VALUE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace tappa::cel {

// The kinds of CEL values. kType is the value of `type(x)` and of the type
// identifiers (`int`, `string`, ...). kError is CEL's error value: it
// propagates through most operators and is absorbed by `&&`, `||`, `?:` and
// the comprehension macros where the other operand decides the result.
enum class Kind : uint8_t {
  kNull,
  kBool,
  kInt,
  kUint,
  kDouble,
  kString,
  kBytes,
  kList,
  kMap,
  kTimestamp,
  kDuration,
  kType,
  kError,
};

// The CEL name of a kind: "null_type", "bool", "int", "uint", "double",
// "string", "bytes", "list", "map", "google.protobuf.Timestamp",
// "google.protobuf.Duration", "type", "error".
absl::string_view KindName(Kind kind);

// Base of heap objects shared by owned Values. The count starts at zero; the
// first Value that adopts the object takes the first reference.
class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void Ref() const { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() const {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // True when exactly one reference exists: the holder may mutate in place.
  bool IsUnique() const { return refs_.load(std::memory_order_acquire) == 1; }

 protected:
  virtual ~RefCounted() = default;

 private:
  mutable std::atomic<int32_t> refs_{0};
};

class Value;
class ListValue;
class MapValue;

// A point in time: seconds since the Unix epoch plus nanoseconds in
// [0, 999999999]. CEL's valid range is 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z; operations leaving it produce errors.
struct Timestamp {
  int64_t seconds = 0;
  int32_t nanos = 0;
  friend bool operator==(const Timestamp&, const Timestamp&) = default;
};

// A signed span of time: seconds plus nanoseconds with the same sign as
// seconds (or zero), |nanos| <= 999999999. CEL's valid range is cel-go's
// (Go's time.Duration): whatever fits in int64 nanoseconds,
// [kMinDurationNanos, kMaxDurationNanos], about +-292 years, i.e.
// -9223372036.854775808s to 9223372036.854775807s. This is narrower than
// google.protobuf.Duration's +-315576000000s: the difference of the two
// extreme timestamps (about 9999 years) is "duration out of range".
struct Duration {
  int64_t seconds = 0;
  int32_t nanos = 0;
  friend bool operator==(const Duration&, const Duration&) = default;
};

inline constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31
// The valid duration range in nanoseconds, inclusive (see Duration):
// -9223372036.854775808s and 9223372036.854775807s.
inline constexpr int64_t kMinDurationNanos = INT64_MIN;
inline constexpr int64_t kMaxDurationNanos = INT64_MAX;
// The largest whole number of seconds in range, of either sign:
// +-kMaxDurationSeconds (9223372036s) are valid, one more second is not. The
// exact bounds are the nanosecond constants above.
inline constexpr int64_t kMaxDurationSeconds = kMaxDurationNanos / 1000000000;

class Value {
 public:
  // Null.
  Value() : kind_(Kind::kNull) { u_.i = 0; }
  ~Value() {
    if (owner_ != nullptr) owner_->Unref();
  }
  Value(const Value& other)
      : kind_(other.kind_), u_(other.u_), owner_(other.owner_) {
    if (owner_ != nullptr) owner_->Ref();
  }
  Value(Value&& other) noexcept
      : kind_(other.kind_), u_(other.u_), owner_(other.owner_) {
    other.owner_ = nullptr;
    other.kind_ = Kind::kNull;
  }
  Value& operator=(const Value& other) {
    if (other.owner_ != nullptr) other.owner_->Ref();
    if (owner_ != nullptr) owner_->Unref();
    kind_ = other.kind_;
    u_ = other.u_;
    owner_ = other.owner_;
    return *this;
  }
  Value& operator=(Value&& other) noexcept {
    if (this != &other) {
      if (owner_ != nullptr) owner_->Unref();
      kind_ = other.kind_;
      u_ = other.u_;
      owner_ = other.owner_;
      other.owner_ = nullptr;
      other.kind_ = Kind::kNull;
    }
    return *this;
  }

  // ---- Construction -------------------------------------------------------
  static Value Null() { return Value(); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.u_.b = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.u_.i = i;
    return v;
  }
  static Value Uint(uint64_t u) {
    Value v(Kind::kUint);
    v.u_.u = u;
    return v;
  }
  static Value Double(double d) {
    Value v(Kind::kDouble);
    v.u_.d = d;
    return v;
  }
  // Timestamps and durations are not range-checked here; callers producing
  // them from arithmetic check the range and produce errors instead.
  static Value FromTimestamp(Timestamp t) {
    Value v(Kind::kTimestamp);
    v.u_.time.seconds = t.seconds;
    v.u_.time.nanos = t.nanos;
    return v;
  }
  static Value FromDuration(Duration d) {
    Value v(Kind::kDuration);
    v.u_.time.seconds = d.seconds;
    v.u_.time.nanos = d.nanos;
    return v;
  }
  // A type value; `name` must be one of the static names of KindName() (or
  // another string with static storage duration).
  static Value Type(absl::string_view name) {
    Value v(Kind::kType);
    v.u_.str.data = name.data();
    v.u_.str.size = name.size();
    return v;
  }
  static Value TypeOf(Kind kind) { return Type(KindName(kind)); }

  // Borrowed strings and bytes: `s` must outlive the Value and its copies.
  // The string is expected to be valid UTF-8 (not checked here).
  static Value BorrowedString(absl::string_view s) {
    return Value(Kind::kString, s.data(), s.size(), nullptr);
  }
  static Value BorrowedBytes(absl::string_view b) {
    return Value(Kind::kBytes, b.data(), b.size(), nullptr);
  }
  // Owned strings and bytes: copies `s` into a heap object (allocates).
  static Value String(absl::string_view s);
  static Value Bytes(absl::string_view b);
  static Value String(std::string&& s);
  static Value Bytes(std::string&& b);
  static Value String(const char* s) { return String(absl::string_view(s)); }
  static Value Bytes(const char* b) { return Bytes(absl::string_view(b)); }

  // Borrowed containers: `list` / `map` must outlive the Value and its copies.
  static Value BorrowedList(const ListValue* list);
  static Value BorrowedMap(const MapValue* map);
  // Owned containers: the Value takes a reference on the object, which must
  // have been allocated with `new` (it is deleted with the last reference).
  static Value OwnedList(const ListValue* list);
  static Value OwnedMap(const MapValue* map);

  // An error with a message (allocates). Messages follow CEL's wording where
  // the specification has one: "no such key: k", "division by zero",
  // "return error for overflow", "no matching overload for 'f'".
  static Value Error(absl::string_view message);
  // An error whose message has static storage duration (does not allocate).
  static Value StaticError(absl::string_view message) {
    return Value(Kind::kError, message.data(), message.size(), nullptr);
  }

  // ---- Inspection ---------------------------------------------------------
  Kind kind() const { return kind_; }
  bool IsNull() const { return kind_ == Kind::kNull; }
  bool IsBool() const { return kind_ == Kind::kBool; }
  bool IsInt() const { return kind_ == Kind::kInt; }
  bool IsUint() const { return kind_ == Kind::kUint; }
  bool IsDouble() const { return kind_ == Kind::kDouble; }
  bool IsString() const { return kind_ == Kind::kString; }
  bool IsBytes() const { return kind_ == Kind::kBytes; }
  bool IsList() const { return kind_ == Kind::kList; }
  bool IsMap() const { return kind_ == Kind::kMap; }
  bool IsTimestamp() const { return kind_ == Kind::kTimestamp; }
  bool IsDuration() const { return kind_ == Kind::kDuration; }
  bool IsType() const { return kind_ == Kind::kType; }
  bool IsError() const { return kind_ == Kind::kError; }
  bool IsNumber() const {
    return kind_ == Kind::kInt || kind_ == Kind::kUint ||
           kind_ == Kind::kDouble;
  }

  // Accessors: calling one for another kind is a programming error (checked
  // by assert in debug builds).
  bool bool_value() const { return u_.b; }
  int64_t int_value() const { return u_.i; }
  uint64_t uint_value() const { return u_.u; }
  double double_value() const { return u_.d; }
  Timestamp timestamp_value() const { return {u_.time.seconds, u_.time.nanos}; }
  Duration duration_value() const { return {u_.time.seconds, u_.time.nanos}; }
  // For kString, kBytes, kType (the type name) and kError (the message).
  absl::string_view string_value() const {
    return absl::string_view(u_.str.data, u_.str.size);
  }
  absl::string_view bytes_value() const { return string_value(); }
  absl::string_view type_name() const { return string_value(); }
  absl::string_view error_message() const { return string_value(); }
  const ListValue& list_value() const { return *u_.list; }
  const MapValue& map_value() const { return *u_.map; }

  // True when this Value holds a reference on a heap object.
  bool IsOwned() const { return owner_ != nullptr; }
  // A deep copy that borrows nothing: safe to keep after the program, the
  // bindings and everything this Value borrows from are gone (allocates when
  // this Value or anything inside it is borrowed).
  Value Own() const;

  // A short human-readable rendering for diagnostics and tests, CEL-literal
  // like: 1, 2u, 1.5, "s", b"\x00", [1, 2], {"a": 1}, timestamp("..."),
  // duration("1.5s"), int, error("message").
  std::string DebugString() const;

 private:
  explicit Value(Kind kind) : kind_(kind) { u_.i = 0; }
  Value(Kind kind, const char* data, size_t size, const RefCounted* owner)
      : kind_(kind), owner_(owner) {
    u_.str.data = data;
    u_.str.size = size;
    if (owner_ != nullptr) owner_->Ref();
  }

  Kind kind_;
  union Payload {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    struct {
      int64_t seconds;
      int32_t nanos;
    } time;
    struct {
      const char* data;
      size_t size;
    } str;
    const ListValue* list;
    const MapValue* map;
  } u_;
  const RefCounted* owner_ = nullptr;
};

// An immutable list. Implementations may compute elements lazily (a view over
// a host data structure) but must return the same element for the same index.
class ListValue : public RefCounted {
 public:
  virtual size_t size() const = 0;
  // Requires index < size(). The result may borrow from this list.
  virtual Value Get(size_t index) const = 0;
};

// An immutable map with keys of kind bool, int, uint or string. Lookups follow
// CEL's heterogeneous key equality: an int key 1, a uint key 1u and a double
// key 1.0 find the same entry.
class MapValue : public RefCounted {
 public:
  virtual size_t size() const = 0;
  // Finds the entry for `key`; returns false when absent. `*value` may borrow
  // from this map.
  virtual bool Find(const Value& key, Value* value) const = 0;
  // Fast path for string keys (field selection `m.f`, `m["f"]`).
  virtual bool FindString(absl::string_view key, Value* value) const {
    return Find(Value::BorrowedString(key), value);
  }
  // Like FindString, but returns the value's address instead of a copy, so
  // the evaluator can select fields without touching reference counts: the
  // address of a Value this map stores (valid while the map lives,
  // unchanged), or `scratch` after FindString filled it (maps that compute
  // their values). Null when absent. Maps storing Values should override it.
  virtual const Value* FindStringRef(absl::string_view key,
                                     Value* scratch) const {
    return FindString(key, scratch) ? scratch : nullptr;
  }
  // Entries in a stable order (insertion order for maps built by literals).
  // Requires index < size().
  virtual Value KeyAt(size_t index) const = 0;
  virtual Value ValueAt(size_t index) const = 0;
};

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_VALUE_H_
