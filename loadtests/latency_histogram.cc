#include "loadtests/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tappa::loadtests {
namespace {

// 2^7 = 128 buckets per power of two: the precision (1/128) is the width of
// a bucket relative to its lower bound.
constexpr int kSubBits = 7;
constexpr int64_t kSubBuckets = int64_t{1} << kSubBits;

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(BucketOf(kMaxValue) + 1, 0) {}

// Values below 2 * 128 get a bucket each (exact); above, the bucket is the
// power of two (`shift`) and the 7 bits below the leading one.
int LatencyHistogram::BucketOf(int64_t value) {
  if (value < 2 * kSubBuckets) return static_cast<int>(value);
  int msb = 63 - std::countl_zero(static_cast<uint64_t>(value));
  int shift = msb - kSubBits;
  return static_cast<int>((shift + 1) * kSubBuckets +
                          ((value >> shift) - kSubBuckets));
}

int64_t LatencyHistogram::BucketMidpoint(int bucket) {
  if (bucket < 2 * kSubBuckets) return bucket;
  int shift = static_cast<int>(bucket / kSubBuckets) - 1;
  int64_t sub = bucket % kSubBuckets;
  int64_t lower = (kSubBuckets + sub) << shift;
  return lower + ((int64_t{1} << shift) >> 1);
}

void LatencyHistogram::Record(int64_t nanos) {
  if (nanos < 0) nanos = 0;
  if (count_ == 0 || nanos < min_) min_ = nanos;
  if (nanos > max_) max_ = nanos;
  ++count_;
  sum_ += nanos;
  ++counts_[BucketOf(std::min(nanos, kMaxValue))];
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = 0;
  max_ = 0;
  sum_ = 0;
}

int64_t LatencyHistogram::Percentile(double percentile) const {
  if (count_ == 0) return 0;
  // The rank of the value asked for, 1-based: p99 of 1,000 values is the
  // 990th smallest.
  uint64_t rank = static_cast<uint64_t>(
      std::ceil(std::clamp(percentile, 0.0, 100.0) / 100.0 * count_));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  // The largest value is known exactly: p100 (and p99.9 of under 1,000
  // values) is the true maximum, not its bucket's midpoint.
  if (rank == count_) return max_;
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::clamp(BucketMidpoint(static_cast<int>(i)), min_, max_);
    }
  }
  return max_;
}

}  // namespace tappa::loadtests
