// The evaluation budget that keeps every expression bounded in time and
// memory (issue: "no expression can run away").
//
// One unit is charged for each comprehension iteration, each list or map
// element built and each string or bytes byte produced. Once the budget is
// spent, evaluation stops as soon as possible and the program's result is the
// error kCostLimitExceeded, whatever `&&`, `||` or `?:` would otherwise have
// absorbed: a result computed from a truncated evaluation would be a lie.
//
// Independently of the budget, no single string, bytes or list produced by
// concatenation may exceed kMaxConcatBytes / kMaxConcatElements, so even a
// program evaluated with an unlimited budget cannot exhaust memory through
// repeated doubling.
//
// Thread safety: a CostBudget belongs to one evaluation (it lives on the
// evaluating thread's stack).
#ifndef TAPPA_RULES_CEL_COST_H_
#define TAPPA_RULES_CEL_COST_H_

#include <cstddef>
#include <cstdint>

namespace tappa::cel {

inline constexpr char kCostLimitExceeded[] = "evaluation cost limit exceeded";
inline constexpr char kResultTooLarge[] = "result size limit exceeded";
inline constexpr size_t kMaxConcatBytes = size_t{16} << 20;    // 16 MiB
inline constexpr size_t kMaxConcatElements = size_t{1} << 20;  // 1 Mi

class CostBudget {
 public:
  explicit CostBudget(int64_t limit) : remaining_(limit) {}

  // Spends `units`; returns false (and stays exhausted) when the budget does
  // not cover them. Callers then return Value::StaticError(kCostLimitExceeded).
  bool Charge(int64_t units) {
    if (units > remaining_) {
      exhausted_ = true;
      remaining_ = 0;
      return false;
    }
    remaining_ -= units;
    return true;
  }

  bool exhausted() const { return exhausted_; }
  int64_t remaining() const { return remaining_; }

 private:
  int64_t remaining_;
  bool exhausted_ = false;
};

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_COST_H_
