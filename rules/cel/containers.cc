#include "rules/cel/containers.h"

#include <cmath>
#include <cstring>

#include "absl/hash/hash.h"
#include "absl/status/status.h"

namespace tappa::cel {
namespace {

// Map keys normalised so that CEL's heterogeneous key equality becomes plain
// equality: 1, 1u and 1.0 all become {kNonNegative, 1}.
struct KeyRep {
  enum Tag : uint8_t { kNone, kBool, kNonNegative, kNegative, kString };
  Tag tag = kNone;
  uint64_t bits = 0;
  absl::string_view str;

  bool operator==(const KeyRep& o) const {
    return tag == o.tag && bits == o.bits && str == o.str;
  }
  template <typename H>
  friend H AbslHashValue(H h, const KeyRep& k) {
    return H::combine(std::move(h), k.tag, k.bits, k.str);
  }
};

// Returns a key with tag kNone when `v` cannot be (or cannot equal) a key.
KeyRep ToKeyRep(const Value& v) {
  KeyRep k;
  switch (v.kind()) {
    case Kind::kBool:
      k.tag = KeyRep::kBool;
      k.bits = v.bool_value() ? 1 : 0;
      break;
    case Kind::kInt:
      if (v.int_value() >= 0) {
        k.tag = KeyRep::kNonNegative;
        k.bits = static_cast<uint64_t>(v.int_value());
      } else {
        k.tag = KeyRep::kNegative;
        k.bits = static_cast<uint64_t>(v.int_value());
      }
      break;
    case Kind::kUint:
      k.tag = KeyRep::kNonNegative;
      k.bits = v.uint_value();
      break;
    case Kind::kDouble: {
      // A double finds an integer key of equal value (lookups only: doubles
      // are not valid keys themselves).
      double d = v.double_value();
      if (std::trunc(d) != d) break;
      if (d >= 0 && d < 18446744073709551616.0) {
        k.tag = KeyRep::kNonNegative;
        k.bits = static_cast<uint64_t>(d);
      } else if (d < 0 && d >= -9223372036854775808.0) {
        k.tag = KeyRep::kNegative;
        k.bits = static_cast<uint64_t>(static_cast<int64_t>(d));
      }
      break;
    }
    case Kind::kString:
      k.tag = KeyRep::kString;
      k.str = v.string_value();
      break;
    default:
      break;
  }
  return k;
}

constexpr size_t kLinearSearchMax = 8;

// memcmp(a, b, n) == 0 without a library call for the short strings field
// names are: two overlapping word loads per side cover 4..16 bytes.
inline bool ShortBytesEqual(const char* a, const char* b, size_t n) {
  if (n > 16) return std::memcmp(a, b, n) == 0;
  if (n >= 8) {
    uint64_t a1, b1, a2, b2;
    std::memcpy(&a1, a, 8);
    std::memcpy(&b1, b, 8);
    std::memcpy(&a2, a + n - 8, 8);
    std::memcpy(&b2, b + n - 8, 8);
    return ((a1 ^ b1) | (a2 ^ b2)) == 0;
  }
  if (n >= 4) {
    uint32_t a1, b1, a2, b2;
    std::memcpy(&a1, a, 4);
    std::memcpy(&b1, b, 4);
    std::memcpy(&a2, a + n - 4, 4);
    std::memcpy(&b2, b + n - 4, 4);
    return ((a1 ^ b1) | (a2 ^ b2)) == 0;
  }
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

}  // namespace

absl::Status VectorMap::Insert(Value key, Value value) {
  Kind kind = key.kind();
  if (kind != Kind::kBool && kind != Kind::kInt && kind != Kind::kUint &&
      kind != Kind::kString) {
    return absl::InvalidArgumentError("unsupported key type");
  }
  Value existing;
  if (Find(key, &existing)) {
    return absl::InvalidArgumentError("Failed with repeated key");
  }
  keys_.push_back(std::move(key));
  values_.push_back(std::move(value));
  if (keys_.size() > kLinearSearchMax) {
    // Open addressing over positions + 1 (0 = empty), load factor <= 1/2.
    size_t capacity = index_.size();
    if (keys_.size() * 2 > capacity) {
      capacity = 32;
      while (capacity < keys_.size() * 2) capacity *= 2;
      index_.assign(capacity, 0);
      for (size_t i = 0; i < keys_.size(); ++i) {
        size_t slot = absl::HashOf(ToKeyRep(keys_[i])) & (capacity - 1);
        while (index_[slot] != 0) slot = (slot + 1) & (capacity - 1);
        index_[slot] = static_cast<uint32_t>(i + 1);
      }
    } else {
      size_t slot = absl::HashOf(ToKeyRep(keys_.back())) & (capacity - 1);
      while (index_[slot] != 0) slot = (slot + 1) & (capacity - 1);
      index_[slot] = static_cast<uint32_t>(keys_.size());
    }
  }
  return absl::OkStatus();
}

bool VectorMap::Find(const Value& key, Value* value) const {
  KeyRep want = ToKeyRep(key);
  if (want.tag == KeyRep::kNone) return false;
  if (index_.empty()) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (ToKeyRep(keys_[i]) == want) {
        *value = values_[i];
        return true;
      }
    }
    return false;
  }
  size_t mask = index_.size() - 1;
  for (size_t slot = absl::HashOf(want) & mask; index_[slot] != 0;
       slot = (slot + 1) & mask) {
    size_t i = index_[slot] - 1;
    if (ToKeyRep(keys_[i]) == want) {
      *value = values_[i];
      return true;
    }
  }
  return false;
}

bool VectorMap::FindString(absl::string_view key, Value* value) const {
  const Value* found = FindStringRef(key, nullptr);
  if (found == nullptr) return false;
  *value = *found;
  return true;
}

const Value* VectorMap::FindStringRef(absl::string_view key, Value*) const {
  if (index_.empty()) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      const Value& k = keys_[i];
      if (!k.IsString()) continue;
      const absl::string_view s = k.string_value();
      if (s.size() == key.size() &&
          ShortBytesEqual(s.data(), key.data(), s.size())) {
        return &values_[i];
      }
    }
    return nullptr;
  }
  const KeyRep want = ToKeyRep(Value::BorrowedString(key));
  size_t mask = index_.size() - 1;
  for (size_t slot = absl::HashOf(want) & mask; index_[slot] != 0;
       slot = (slot + 1) & mask) {
    size_t i = index_[slot] - 1;
    if (ToKeyRep(keys_[i]) == want) return &values_[i];
  }
  return nullptr;
}

}  // namespace tappa::cel
