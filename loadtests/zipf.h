// Zipf-distributed ranks: rank k in [0, n) is drawn with probability
// proportional to 1 / (k + 1)^s. With s near 1 (YCSB uses 0.99) a few
// contacts are very popular and most are rarely seen, as on a real site.
//
// Sampling inverts a precomputed cumulative distribution (8 bytes per rank,
// 800 KB for 100,000 contacts) by binary search: exact, and cheap next to a
// gRPC call.
//
// Thread safety: Sample() is const and may be called concurrently, each
// caller with its own random engine.
#ifndef TAPPA_LOADTESTS_ZIPF_H_
#define TAPPA_LOADTESTS_ZIPF_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace tappa::loadtests {

class ZipfDistribution {
 public:
  // `n` >= 1; `s` >= 0 (0 is uniform).
  ZipfDistribution(int64_t n, double s) : cdf_(n) {
    double total = 0;
    for (int64_t k = 0; k < n; ++k) {
      total += 1.0 / std::pow(static_cast<double>(k + 1), s);
      cdf_[k] = total;
    }
    for (double& c : cdf_) c /= total;
  }

  template <typename Engine>
  int64_t Sample(Engine& engine) const {
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    auto it = std::lower_bound(cdf_.begin(), cdf_.end(), u);
    if (it == cdf_.end()) --it;
    return it - cdf_.begin();
  }

  int64_t size() const { return static_cast<int64_t>(cdf_.size()); }

 private:
  std::vector<double> cdf_;
};

}  // namespace tappa::loadtests

#endif  // TAPPA_LOADTESTS_ZIPF_H_
