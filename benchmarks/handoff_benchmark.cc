// What handing work to another thread costs on this machine: the unit the
// server's latency is made of when calls arrive one at a time (open loop),
// each waking a gRPC queue thread, a Redis loop and the queue thread again.
// Floor of the same run: the same eventfd write and read done by one thread,
// which never sleeps (the system calls without the wake-up).
// Run: build/benchmarks/handoff_benchmark --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <thread>

#include "benchmark/benchmark.h"

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

}  // namespace

BENCHMARK_MAIN();
