// What handing work to another thread costs on this machine: the unit the
// server's latency is made of when calls arrive one at a time (open loop),
// each waking a gRPC queue thread, a Redis loop and the queue thread again.
// Floor of the same run: the same eventfd write and read done by one thread,
// which never sleeps (the system calls without the wake-up).
// A third benchmark measures how late a sleeping thread wakes (the tail of
// every hand-off, and of the load generator's open-loop sends).
// Run: build/benchmarks/handoff_benchmark --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <thread>

#include "benchmark/benchmark.h"
#include "loadtests/latency_histogram.h"

namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

void Signal(int fd) {
  uint64_t one = 1;
  (void)!write(fd, &one, sizeof(one));
}
void Await(int fd) {
  uint64_t value = 0;
  (void)!read(fd, &value, sizeof(value));
}

// The floor: one thread signals and takes its own eventfd twice per
// iteration, as many system calls as a round trip, and never sleeps.
void BM_FloorSameThread(benchmark::State& state) {
  const int fd = eventfd(0, 0);
  for (auto _ : state) {
    Signal(fd);
    Await(fd);
    Signal(fd);
    Await(fd);
  }
  close(fd);
}
BENCHMARK(BM_FloorSameThread);

// A round trip: this thread wakes a sleeping peer, which wakes it back (two
// hand-offs). `cpu_us_per_round_trip` counts both threads' CPU.
void BM_RoundTripToAnotherThread(benchmark::State& state) {
  const int to_peer = eventfd(0, 0), to_me = eventfd(0, 0);
  std::thread peer([&] {
    while (true) {
      uint64_t value = 0;
      if (read(to_peer, &value, sizeof(value)) != sizeof(value)) return;
      if (value > 1) return;  // stop
      Signal(to_me);
    }
  });
  const double cpu_start = ProcessCpuSeconds();
  for (auto _ : state) {
    Signal(to_peer);
    Await(to_me);
  }
  const double cpu = ProcessCpuSeconds() - cpu_start;
  uint64_t stop = 2;
  (void)!write(to_peer, &stop, sizeof(stop));
  peer.join();
  close(to_peer);
  close(to_me);
  state.counters["cpu_us_per_round_trip"] =
      cpu * 1e6 / static_cast<double>(state.iterations());
}
BENCHMARK(BM_RoundTripToAnotherThread)->UseRealTime();

int64_t MonotonicNanos() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

// A thread sleeps until an absolute time `range(0)` microseconds ahead, with
// 1 us of timer slack (as the load generator's sender), and the benchmark
// reports how late it woke: p50, p99 and p99.9 in microseconds. The CPU is
// idle in between, so each wake-up is a wake from idle, as when calls arrive
// one at a time.
void BM_TimedWakeLateness(benchmark::State& state) {
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  const int64_t gap_ns = state.range(0) * 1000;
  tappa::loadtests::LatencyHistogram late;
  int64_t next = MonotonicNanos();
  for (auto _ : state) {
    next += gap_ns;
    timespec at{static_cast<time_t>(next / 1000000000),
                static_cast<long>(next % 1000000000)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr);
    const int64_t now = MonotonicNanos();
    late.Record(now - next);
    next = std::max(next, now - gap_ns);  // a long stall does not cascade
  }
  state.counters["late_p50_us"] = late.Percentile(50) / 1e3;
  state.counters["late_p99_us"] = late.Percentile(99) / 1e3;
  state.counters["late_p999_us"] = late.Percentile(99.9) / 1e3;
}
BENCHMARK(BM_TimedWakeLateness)
    ->Arg(100)
    ->Arg(500)
    ->Iterations(10000)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
