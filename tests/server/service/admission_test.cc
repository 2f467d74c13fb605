// The adaptive bound of calls in flight: a hard cap, a limit that drops
// while every call of an interval waits longer than the target, and grows
// back once calls are quick again.
#include "server/service/admission.h"

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

Admission::Options FastOptions(int max_inflight) {
  Admission::Options options;
  options.max_inflight = max_inflight;
  options.min_inflight = 4;
  options.target = absl::Milliseconds(2);
  options.interval = absl::Milliseconds(5);
  options.baseline_intervals = 100;  // 0.5 s
  return options;
}

// Quick calls for a few intervals: the baseline (the fastest recent call)
// becomes ~0, so the threshold is the 2 ms target.
void QuickCalls(Admission& admission, absl::Duration how_long) {
  absl::Time end = absl::Now() + how_long;
  while (absl::Now() < end) {
    for (int i = 0; i < 10; ++i) admission.TryEnter();  // released at once
    absl::SleepFor(absl::Milliseconds(1));
  }
}

TEST(AdmissionTest, RefusesBeyondTheBoundAndFreesPlacesOnRelease) {
  Admission admission(FastOptions(3));
  std::vector<std::shared_ptr<Admission::Slot>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(admission.TryEnter());
    ASSERT_NE(held.back(), nullptr);
  }
  EXPECT_EQ(admission.TryEnter(), nullptr);
  EXPECT_EQ(admission.inflight(), 3);
  held.pop_back();
  EXPECT_NE(admission.TryEnter(), nullptr);
  EXPECT_EQ(admission.Overloaded().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(AdmissionTest, NoBoundMeansNoRefusal) {
  Admission admission(0);
  std::vector<std::shared_ptr<Admission::Slot>> held;
  for (int i = 0; i < 5000; ++i) held.push_back(admission.TryEnter());
  for (const auto& slot : held) ASSERT_NE(slot, nullptr);
}

// Calls that all wait longer than the target, interval after interval,
// shrink the limit (down to min_inflight, never below); quick calls
// restore it to max_inflight.
TEST(AdmissionTest, LimitFollowsAStandingQueueAndRecovers) {
  Admission::Options options = FastOptions(100);
  std::atomic<int> reported{-1};
  std::atomic<int> reports{0};
  options.on_limit = [&](int limit) {
    reported = limit;
    ++reports;
  };
  Admission admission(std::move(options));
  EXPECT_EQ(admission.limit(), 100);
  EXPECT_EQ(reported.load(), 100);  // the starting limit
  QuickCalls(admission, absl::Milliseconds(30));
  EXPECT_EQ(admission.limit(), 100);
  // Then every call of every interval takes 3 ms > the 2 ms target.
  for (int round = 0; round < 40; ++round) {
    std::vector<std::shared_ptr<Admission::Slot>> held;
    for (int i = 0; i < 4; ++i) held.push_back(admission.TryEnter());
    absl::SleepFor(absl::Milliseconds(3));
  }
  EXPECT_EQ(admission.limit(), 4);
  EXPECT_EQ(reported.load(), 4);
  // At the lowered limit the fifth call is refused though max is 100.
  {
    std::vector<std::shared_ptr<Admission::Slot>> held;
    for (int i = 0; i < 4; ++i) held.push_back(admission.TryEnter());
    EXPECT_EQ(admission.TryEnter(), nullptr);
  }
  // Quick calls: the limit grows back to the maximum, and stops there.
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (admission.limit() < 100 && absl::Now() < end) {
    for (int i = 0; i < 10; ++i) admission.TryEnter();
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(admission.limit(), 100);
  EXPECT_EQ(reported.load(), 100);
  // At the maximum nothing changes, and nothing more is reported.
  const int reports_at_max = reports.load();
  for (int i = 0; i < 20; ++i) {
    admission.TryEnter();
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(admission.limit(), 100);
  EXPECT_EQ(reports.load(), reports_at_max);
}

// A store that is slow for every call from the start (a remote Redis) is
// the baseline, not a queue: 3 ms calls stay under twice the baseline.
TEST(AdmissionTest, UniformlySlowCallsAreNotAQueue) {
  Admission admission(FastOptions(100));
  for (int round = 0; round < 40; ++round) {
    std::vector<std::shared_ptr<Admission::Slot>> held;
    for (int i = 0; i < 4; ++i) held.push_back(admission.TryEnter());
    absl::SleepFor(absl::Milliseconds(3));
  }
  // Without the baseline it would sit at the floor (4) by now; a sleep
  // overshooting past twice the baseline on a loaded machine may cost a
  // step, which the following intervals give back.
  EXPECT_GE(admission.limit(), 50);
}

// One slow call among quick ones is not a queue: the limit stays.
TEST(AdmissionTest, ASlowCallAloneDoesNotLowerTheLimit) {
  Admission admission(FastOptions(100));
  for (int round = 0; round < 20; ++round) {
    auto slow = admission.TryEnter();
    for (int i = 0; i < 10; ++i) admission.TryEnter();  // released at once
    absl::SleepFor(absl::Milliseconds(3));
  }
  EXPECT_EQ(admission.limit(), 100);
}

}  // namespace
}  // namespace tappa::server
