// The performance contracts of evaluation: a typical rule condition
// evaluates without touching the heap, and one program may be evaluated from
// many threads at once.
//
// This binary replaces the global operator new to count allocations; it is a
// separate test file so that the counting hook affects no other test.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "rules/cel/containers.h"
#include "rules/cel/program.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

// The replacements below pair malloc with free on purpose; GCC cannot see
// that operator new and operator delete are replaced together.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {
std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};
}  // namespace

void* operator new(size_t size) {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (size == 0) size = 1;
  if (void* p = std::malloc(size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace tappa::cel {
namespace {

constexpr char kCondition[] =
    "contact.phase == \"consideration\" && context.channel in "
    "[\"web\",\"app\"] "
    "&& contact.counts.product_view_7d >= 3 && "
    "(contact.attrs.country == \"IT\" || contact.attrs.tier == \"gold\")";

Value StringMap(std::vector<std::pair<const char*, Value>> entries) {
  auto* map = new VectorMap();
  for (auto& [k, v] : entries) {
    EXPECT_TRUE(map->Insert(Value::String(k), std::move(v)).ok());
  }
  return Value::OwnedMap(map);
}

class TypicalCondition : public ::testing::Test {
 protected:
  void SetUp() override {
    Type contact = Type::Object(
        "contact", {{"phase", Type::String()},
                    {"counts", Type::Map(Type::String(), Type::Int())},
                    {"attrs", Type::Map(Type::String(), Type::String())}});
    Type context = Type::Object("context", {{"channel", Type::String()}});
    env_.DeclareVariable("contact", contact);
    env_.DeclareVariable("context", context);
    CompileResult r = Compile(kCondition, env_);
    ASSERT_TRUE(r.ok()) << IssuesToStatus(r.issues);
    program_ = r.program;
  }

  // attrs: {country: country} plus tier gold when `gold`.
  std::vector<Value> Bindings(const char* phase, const char* channel,
                              int64_t views, const char* country, bool gold) {
    std::vector<std::pair<const char*, Value>> attrs = {
        {"country", Value::String(country)}};
    if (gold) attrs.push_back({"tier", Value::String("gold")});
    return {
        StringMap({{"phase", Value::String(phase)},
                   {"counts", StringMap({{"product_view_7d", Value::Int(views)},
                                         {"cart_add_7d", Value::Int(0)}})},
                   {"attrs", StringMap(std::move(attrs))}}),
        StringMap({{"channel", Value::String(channel)}}),
    };
  }

  Environment env_;
  std::shared_ptr<const Program> program_;
};

TEST_F(TypicalCondition, Results) {
  EXPECT_TRUE(
      program_->Evaluate(Bindings("consideration", "web", 3, "IT", false))
          .bool_value());
  EXPECT_TRUE(
      program_->Evaluate(Bindings("consideration", "app", 5, "FR", true))
          .bool_value());
  EXPECT_FALSE(program_->Evaluate(Bindings("awareness", "web", 3, "IT", false))
                   .bool_value());
  EXPECT_FALSE(
      program_->Evaluate(Bindings("consideration", "sms", 3, "IT", false))
          .bool_value());
  EXPECT_FALSE(
      program_->Evaluate(Bindings("consideration", "web", 2, "IT", false))
          .bool_value());
  // Missing "tier": the error is absorbed by || when country decides...
  EXPECT_TRUE(
      program_->Evaluate(Bindings("consideration", "web", 3, "IT", false))
          .bool_value());
  // ... and is the result when it does not.
  Value v =
      program_->Evaluate(Bindings("consideration", "web", 3, "FR", false));
  ASSERT_TRUE(v.IsError());
  EXPECT_EQ(v.error_message(), "no such key: tier");
}

TEST_F(TypicalCondition, DoesNotAllocate) {
  const std::vector<std::vector<Value>> cases = {
      Bindings("consideration", "web", 3, "IT", false),
      Bindings("consideration", "app", 7, "FR", true),
      Bindings("consideration", "web", 3, "FR", false),  // missing key error
      Bindings("awareness", "web", 3, "IT", false),
  };
  for (const auto& bindings : cases) {
    allocations = 0;
    counting = true;
    Value v = program_->Evaluate(bindings);
    counting = false;
    EXPECT_EQ(allocations.load(), 0) << v.DebugString();
  }
}

TEST_F(TypicalCondition, RoughSpeed) {
  // Not a benchmark (see benchmarks/): prints a rough figure for the report.
  const std::vector<Value> bindings =
      Bindings("consideration", "web", 3, "FR", true);
  constexpr int kIterations = 200000;
  int trues = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kIterations; ++i) {
    trues += program_->Evaluate(bindings).bool_value();
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(trues, kIterations);
  std::printf(
      "typical condition: %.1f ns/eval\n",
      std::chrono::duration<double, std::nano>(elapsed).count() / kIterations);
}

TEST_F(TypicalCondition, ConcurrentEvaluation) {
  const std::vector<std::vector<Value>> cases = {
      Bindings("consideration", "web", 3, "IT", false),
      Bindings("consideration", "app", 7, "FR", true),
      Bindings("awareness", "web", 3, "IT", false),
      Bindings("consideration", "web", 1, "IT", true),
  };
  const bool expected[] = {true, true, false, false};
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        const int c = (t + i) % 4;
        Value v = program_->Evaluate(cases[c]);
        if (!v.IsBool() || v.bool_value() != expected[c]) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ConcurrentEvaluation, ProgramsThatBuildValues) {
  // Owned temporaries (lists built by map()) and their reference counts are
  // shared by nothing across threads; the program's constants are.
  Environment env;
  env.DeclareVariable("n", Type::Int());
  CompileResult r = Compile(
      "[1, 2, 3, 4].map(x, x * n).filter(y, y % 2 == 0).size() + "
      "size(['a', 'b'].map(s, s + 'x')[1])",
      env);
  ASSERT_TRUE(r.ok()) << IssuesToStatus(r.issues);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        const int64_t n = t % 2 + 1;  // 1: [2, 4] -> 2; 2: all even -> 4
        Value binding = Value::Int(n);
        Value v = r.program->Evaluate({&binding, 1});
        if (!v.IsInt() || v.int_value() != (n == 1 ? 2 : 4) + 2) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace tappa::cel
