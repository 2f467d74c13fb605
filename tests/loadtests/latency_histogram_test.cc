#include "loadtests/latency_histogram.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace tappa::loadtests {
namespace {

// Within the histogram's promised precision (half a bucket: 1/256).
void ExpectNear(int64_t expected, int64_t actual) {
  EXPECT_LE(std::abs(static_cast<double>(actual - expected)),
            expected / 256.0 + 1)
      << "expected ~" << expected << ", got " << actual;
}

TEST(LatencyHistogramTest, EmptyAnswersZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0);
  EXPECT_EQ(h.max(), 0);
}

TEST(LatencyHistogramTest, PercentilesOfAUniformRangeKeepOnePercentPrecision) {
  LatencyHistogram h;
  // 1 .. 100,000 us in ns.
  for (int64_t us = 1; us <= 100000; ++us) h.Record(us * 1000);
  EXPECT_EQ(h.count(), 100000u);
  ExpectNear(50000 * 1000, h.Percentile(50));
  ExpectNear(90000 * 1000, h.Percentile(90));
  ExpectNear(99000 * 1000, h.Percentile(99));
  ExpectNear(99900 * 1000, h.Percentile(99.9));
  EXPECT_EQ(h.max(), 100000 * 1000);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_EQ(h.Percentile(100), h.max());
}

TEST(LatencyHistogramTest, SmallValuesAreExactAndHugeOnesClampButKeepMax) {
  LatencyHistogram h;
  h.Record(7);
  h.Record(-5);                                 // counts as 0
  h.Record(int64_t{100} * 1000 * 1000 * 1000);  // 100 s, beyond the range
  EXPECT_EQ(h.Percentile(1), 0);
  EXPECT_EQ(h.Percentile(50), 7);
  EXPECT_EQ(h.max(), int64_t{100} * 1000 * 1000 * 1000);
  EXPECT_EQ(h.Percentile(100), h.max());
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, all;
  for (int64_t v = 1; v < 5000000; v += 997) {
    (v % 2 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {1.0, 50.0, 99.0, 99.9})
    EXPECT_EQ(a.Percentile(p), all.Percentile(p));
  a.Reset();
  EXPECT_EQ(a.count(), 0u);
}

}  // namespace
}  // namespace tappa::loadtests
