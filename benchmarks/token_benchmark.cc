// In-process benchmarks of decision tokens (server/tokens): every action a
// decision answers carries one, so signing is on NextBestAction's path and
// verifying on ReportOutcome's. Measured against a floor of the same run:
// one SHA-256 of a token's bytes (an HMAC is two SHA-256 passes over a
// little more), and against OpenSSL 3's one-shot HMAC() the signer used
// before it kept its key set up.
// Run: build/benchmarks/token_benchmark --benchmark_repetitions=5
//      --benchmark_report_aggregates_only=true
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "server/tokens/decision_token.h"

namespace {

using tappa::server::DecisionTokenClaims;
using tappa::server::DecisionTokenSigner;

const std::string kKey(32, 'k');

DecisionTokenClaims TypicalClaims() {
  DecisionTokenClaims c;
  c.issued = absl::FromUnixSeconds(1'800'000'000);
  c.contact_id = "c12345";
  c.action_id = "action-0448";
  c.placement_id = "web.home_hero";
  c.channel_id = "web";
  c.phase_id = "consideration";
  return c;
}

std::unique_ptr<DecisionTokenSigner> Signer() {
  return *DecisionTokenSigner::Create(kKey, absl::Hours(24));
}

// The bytes a token's MAC covers, for the floors.
std::string SignedPart() {
  std::string token = Signer()->Sign(TypicalClaims());
  return token.substr(0, token.rfind('~') + 1);
}

void BM_FloorSha256(benchmark::State& state) {
  const std::string data = SignedPart();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  for (auto _ : state) {
    EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
    benchmark::DoNotOptimize(digest);
  }
}
BENCHMARK(BM_FloorSha256);

void BM_OneShotHmac(benchmark::State& state) {
  const std::string data = SignedPart();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  for (auto _ : state) {
    HMAC(EVP_sha256(), kKey.data(), static_cast<int>(kKey.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac,
         &size);
    benchmark::DoNotOptimize(mac);
  }
}
BENCHMARK(BM_OneShotHmac);

void BM_Sign(benchmark::State& state) {
  auto signer = Signer();
  const DecisionTokenClaims claims = TypicalClaims();
  for (auto _ : state) benchmark::DoNotOptimize(signer->Sign(claims));
}
BENCHMARK(BM_Sign);

void BM_Verify(benchmark::State& state) {
  auto signer = Signer();
  const std::string token = signer->Sign(TypicalClaims());
  const absl::Time now = TypicalClaims().issued + absl::Minutes(1);
  for (auto _ : state) benchmark::DoNotOptimize(signer->Verify(token, now));
}
BENCHMARK(BM_Verify);

}  // namespace

BENCHMARK_MAIN();
