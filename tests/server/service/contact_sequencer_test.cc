// ContactSequencer: one contact's tasks run one at a time in submission
// order, other contacts' at once, and at most `max_waiting` wait per contact.
#include "server/service/contact_sequencer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

using ::testing::ElementsAre;

constexpr auto kAlways = [](size_t) { return true; };

TEST(ContactSequencerTest, RunsInOrderAndBoundsTheWait) {
  ContactSequencer sequencer(2);
  std::vector<std::string> ran;
  auto task = [&ran](std::string name) {
    return [&ran, name] { ran.push_back(name); };
  };
  EXPECT_TRUE(sequencer.Run("a", task("a1")));   // runs at once
  EXPECT_TRUE(sequencer.Run("a", task("a2")));   // waits
  EXPECT_TRUE(sequencer.Run("a", task("a3")));   // waits
  EXPECT_FALSE(sequencer.Run("a", task("a4")));  // two wait already
  EXPECT_TRUE(sequencer.Run("b", task("b1")));   // another contact: at once
  EXPECT_THAT(ran, ElementsAre("a1", "b1"));
  sequencer.Done("a");  // a1 finished: a2 starts
  EXPECT_THAT(ran, ElementsAre("a1", "b1", "a2"));
  EXPECT_TRUE(sequencer.Run("a", task("a5")));  // one waits again: room
  sequencer.Done("a");
  sequencer.Done("a");
  sequencer.Done("a");  // a5 finished: the contact is idle
  sequencer.Done("b");
  EXPECT_THAT(ran, ElementsAre("a1", "b1", "a2", "a3", "a5"));
  EXPECT_TRUE(sequencer.Run("a", task("a6")));  // idle: at once
  EXPECT_THAT(ran, ElementsAre("a1", "b1", "a2", "a3", "a5", "a6"));
}

TEST(ContactSequencerTest, TheCallerMayRefuseToWait) {
  ContactSequencer sequencer(100);
  int ran = 0;
  std::vector<size_t> asked;
  auto may_wait = [&asked](size_t waiting) {
    asked.push_back(waiting);
    return waiting < 1;
  };
  auto task = [&ran] { ++ran; };
  EXPECT_TRUE(sequencer.Run("a", task, may_wait));   // idle: not asked
  EXPECT_TRUE(sequencer.Run("a", task, may_wait));   // none waits: may
  EXPECT_FALSE(sequencer.Run("a", task, may_wait));  // one waits: may not
  EXPECT_THAT(asked, ElementsAre(0, 1));
  EXPECT_EQ(ran, 1);
  sequencer.Done("a");
  sequencer.Done("a");
  EXPECT_EQ(ran, 2);
}

// Events refused without a round trip finish inside the task that Done()
// started: the next one must start after it returns, not on top of it, or a
// queue of 256 such events would be 256 nested frames.
TEST(ContactSequencerTest, TasksThatFinishAtOnceDoNotNest) {
  ContactSequencer sequencer(1000);
  int depth = 0, deepest = 0, ran = 0;
  auto task = [&] {
    ++depth;
    deepest = std::max(deepest, depth);
    ++ran;
    sequencer.Done("a");  // finished without waiting for anything
    --depth;
  };
  // The first runs once the others are queued behind a running one.
  bool first = true;
  EXPECT_TRUE(sequencer.Run("a", [&] { first = false; }));
  for (int i = 0; i < 500; ++i) EXPECT_TRUE(sequencer.Run("a", task));
  EXPECT_FALSE(first);
  EXPECT_EQ(ran, 0);
  sequencer.Done("a");  // the first finished: all 500 run, one at a time
  EXPECT_EQ(ran, 500);
  EXPECT_EQ(deepest, 1);
  EXPECT_TRUE(sequencer.Run("a", task));  // idle again: runs at once
  EXPECT_EQ(ran, 501);
}

// A released task stays in flight while the next ones start, at most
// `max_in_flight` at once; a break stops new starts until nothing is in
// flight; then the queue moves on in order.
TEST(ContactSequencerTest, ReleasedTasksLetTheNextStartUntilABreak) {
  ContactSequencer sequencer(100, /*max_in_flight=*/2);
  std::vector<std::string> ran;
  auto task = [&ran](std::string name) {
    return [&ran, name] { ran.push_back(name); };
  };
  EXPECT_TRUE(sequencer.Run("a", task("a1")));
  EXPECT_TRUE(sequencer.Run("a", task("a2")));
  EXPECT_TRUE(sequencer.Run("a", task("a3")));
  EXPECT_TRUE(sequencer.Run("a", task("a4")));
  EXPECT_THAT(ran, ElementsAre("a1"));
  sequencer.AddInFlight("a");
  sequencer.Release("a");  // a1 in flight: a2 starts
  EXPECT_THAT(ran, ElementsAre("a1", "a2"));
  sequencer.AddInFlight("a");
  sequencer.Release("a");  // two in flight: a3 waits
  EXPECT_THAT(ran, ElementsAre("a1", "a2"));
  sequencer.Done("a", /*released=*/true);  // a1 done: a3 starts
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3"));
  sequencer.AddInFlight("a");
  sequencer.Release("a");                  // a2 and a3 in flight
  sequencer.Break("a");                    // a2's write failed
  sequencer.Done("a", /*released=*/true);  // a2 done; a3 still in flight
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3"));
  EXPECT_TRUE(sequencer.Run("a", task("a5")));  // queued behind a4
  sequencer.Done("a", /*released=*/true);       // nothing in flight: a4 starts
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3", "a4"));
  sequencer.Done("a");  // a4 finished without releasing: a5 starts
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3", "a4", "a5"));
  sequencer.AddInFlight("a");
  sequencer.Release("a");
  // With one in flight and room behind it, a new task starts at once.
  EXPECT_TRUE(sequencer.Run("a", task("a6")));
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3", "a4", "a5", "a6"));
  sequencer.Done("a");
  sequencer.Done("a", /*released=*/true);
  EXPECT_TRUE(sequencer.Run("a", task("a7")));  // free again: at once
  EXPECT_EQ(ran.back(), "a7");
}

// Tasks deferred out of a pipeline run again in the contact's order (not
// the order they were deferred in), before the tasks that never started,
// one at a time; the oldest, deferred again, stays first, and alone in
// flight it may retry at once.
TEST(ContactSequencerTest, DeferredTasksRunAgainInOrderOneAtATime) {
  ContactSequencer sequencer(100, /*max_in_flight=*/4);
  std::vector<std::string> ran;
  auto task = [&ran](std::string name) {
    return [&ran, name] { ran.push_back(name); };
  };
  uint64_t seq[6];
  EXPECT_TRUE(sequencer.Run("a", task("a1"), kAlways, &seq[1]));
  for (int i : {2, 3}) {
    sequencer.AddInFlight("a");
    sequencer.Release("a");  // the running one is in flight: the next starts
    EXPECT_TRUE(
        sequencer.Run("a", task(absl::StrCat("a", i)), kAlways, &seq[i]));
  }
  sequencer.AddInFlight("a");
  sequencer.Release("a");  // a1, a2, a3 in flight
  EXPECT_FALSE(sequencer.AloneInFlight("a", seq[1]));
  EXPECT_TRUE(sequencer.Run("a", task("a4"), kAlways, &seq[4]));  // starts
  EXPECT_TRUE(sequencer.Run("a", task("a5"), kAlways, &seq[5]));  // waits
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3", "a4"));
  EXPECT_LT(seq[1], seq[2]);
  EXPECT_LT(seq[4], seq[5]);
  sequencer.Defer("a", seq[1], task("a1 again"), /*released=*/true);
  sequencer.Defer("a", seq[2], task("a2 again"), /*released=*/true);
  // a4, still running, is deferred before a3's write fails.
  sequencer.Defer("a", seq[4], task("a4 again"), /*released=*/false);
  EXPECT_EQ(sequencer.InFlight("a"), 1);  // a3
  EXPECT_THAT(ran, ElementsAre("a1", "a2", "a3", "a4"));
  sequencer.Defer("a", seq[3], task("a3 again"), /*released=*/true);
  // Nothing in flight: the oldest deferred starts.
  EXPECT_EQ(ran.back(), "a1 again");
  sequencer.AddInFlight("a");
  EXPECT_TRUE(sequencer.AloneInFlight("a", seq[1]));
  sequencer.Release("a");  // one at a time: nothing else starts
  EXPECT_EQ(ran.back(), "a1 again");
  sequencer.Defer("a", seq[1], task("a1 third"), /*released=*/true);
  EXPECT_EQ(ran.back(), "a1 third");  // still first
  for (const char* next : {"a2 again", "a3 again", "a4 again", "a5"}) {
    sequencer.Done("a");
    EXPECT_EQ(ran.back(), next);
  }
  // The deferred are through: pipelining again.
  sequencer.AddInFlight("a");
  sequencer.Release("a");
  EXPECT_TRUE(sequencer.Run("a", task("a6")));
  EXPECT_EQ(ran.back(), "a6");
  sequencer.Done("a");
  sequencer.Done("a", /*released=*/true);
}

}  // namespace
}  // namespace tappa::server
