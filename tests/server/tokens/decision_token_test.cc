#include "server/tokens/decision_token.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tappa::server {

// Readable failures (gtest finds it by argument-dependent lookup).
void PrintTo(const DecisionTokenClaims& c, std::ostream* os) {
  *os << "{decision_id=" << c.decision_id << " issued=" << c.issued
      << " contact_id=" << absl::CHexEscape(c.contact_id)
      << " action_id=" << c.action_id << " placement_id=" << c.placement_id
      << " channel_id=" << c.channel_id << " phase_id=" << c.phase_id
      << " experiment_id=" << c.experiment_id << " variant_id=" << c.variant_id
      << " holdout=" << c.holdout << "}";
}

namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

// 32 bytes exactly: the shortest key allowed.
constexpr char kKey[] = "0123456789abcdef0123456789abcdef";
constexpr absl::Duration kTtl = absl::Hours(24);
// gMock's string matchers take std::string, not Debian's absl::string_view.
std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

const absl::Time kIssued = absl::FromUnixMillis(1'700'000'000'123);

std::unique_ptr<DecisionTokenSigner> MakeSigner(std::string key = kKey,
                                                absl::Duration ttl = kTtl) {
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> signer =
      DecisionTokenSigner::Create(std::move(key), ttl);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return signer.ok() ? std::move(*signer) : nullptr;
}

DecisionTokenClaims SampleClaims() {
  DecisionTokenClaims c;
  c.decision_id = "00ff10a2b3c4d5e6";
  c.issued = kIssued;
  // Bytes a naive '|' or ':' separated format would trip on, and a NUL.
  c.contact_id = std::string("ada|lovelace:1~\xc3\xa9\0x", 19);
  c.action_id = "first-order-10";
  c.placement_id = "web.home_hero";
  c.channel_id = "web";
  c.phase_id = "consideration";
  c.experiment_id = "hero:test_2";
  c.variant_id = "B";
  c.holdout = true;
  return c;
}

DecisionTokenClaims MaxClaims() {
  DecisionTokenClaims c;
  c.issued = kIssued;
  // 0xff everywhere: the longest base64 and the largest byte values.
  c.contact_id = std::string(kMaxDecisionTokenFieldBytes, '\xff');
  std::string id(kMaxDecisionTokenFieldBytes, 'x');
  c.action_id = c.placement_id = c.channel_id = c.phase_id = c.experiment_id =
      c.variant_id = id;
  return c;
}

TEST(DecisionTokenTest, RoundTripsEveryField) {
  auto signer = MakeSigner();
  DecisionTokenClaims claims = SampleClaims();
  std::string token = signer->Sign(claims);
  absl::StatusOr<DecisionTokenClaims> back =
      signer->Verify(token, kIssued + absl::Minutes(1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, claims);
  EXPECT_EQ(back->contact_id.size(), 19u);
  EXPECT_TRUE(back->holdout);
}

TEST(DecisionTokenTest, RoundTripsEmptyOptionalFieldsAndNoHoldout) {
  auto signer = MakeSigner();
  DecisionTokenClaims claims = SampleClaims();
  claims.experiment_id.clear();
  claims.variant_id.clear();
  claims.holdout = false;
  absl::StatusOr<DecisionTokenClaims> back =
      signer->Verify(signer->Sign(claims), kIssued);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, claims);
}

// Tokens outlive a deployment (clients keep them for the ttl), so the format
// must not drift: this token was computed from the header's description by
// an independent implementation (Python's hmac and base64).
TEST(DecisionTokenTest, FormatIsStable) {
  constexpr absl::string_view kSampleToken =
      "t1~PrG9QwD_EKKzxNXmAAABi8_laHsB~YWRhfGxvdmVsYWNlOjF-w6kAeA~"
      "first-order-10~web.home_hero~web~consideration~hero:test_2~B~"
      "ZAt1Ci5ChBxX9nBCKgbK1P9H9HCPf70htd-nKqSTQAo";
  auto signer = MakeSigner();
  EXPECT_EQ(signer->Sign(SampleClaims()), kSampleToken);
  absl::StatusOr<DecisionTokenClaims> back =
      signer->Verify(kSampleToken, kIssued);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, SampleClaims());
}

TEST(DecisionTokenTest, IssuedIsKeptToTheMillisecond) {
  auto signer = MakeSigner();
  DecisionTokenClaims claims = SampleClaims();
  claims.issued = kIssued + absl::Microseconds(999);
  absl::StatusOr<DecisionTokenClaims> back =
      signer->Verify(signer->Sign(claims), kIssued);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->issued, kIssued);
}

TEST(DecisionTokenTest, TokensUseOnlyUrlSafeCharacters) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  EXPECT_THAT(token, StartsWith("t1~"));
  EXPECT_THAT(token, MatchesRegex("[-A-Za-z0-9_.:~]+"));
}

TEST(DecisionTokenTest, SignFillsRandomDecisionIds) {
  auto signer = MakeSigner();
  DecisionTokenClaims claims = SampleClaims();
  claims.decision_id.clear();
  std::unordered_set<std::string> ids;
  for (int i = 0; i < 10'000; ++i) {
    absl::StatusOr<DecisionTokenClaims> back =
        signer->Verify(signer->Sign(claims), kIssued);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_THAT(back->decision_id, MatchesRegex("[0-9a-f]{16}"));
    ids.insert(back->decision_id);
  }
  EXPECT_EQ(ids.size(), 10'000u);
}

TEST(DecisionTokenTest, MaximalTokenFitsTheLimit) {
  auto signer = MakeSigner();
  DecisionTokenClaims claims = MaxClaims();
  std::string token = signer->Sign(claims);
  EXPECT_LE(token.size(), kMaxDecisionTokenBytes);
  EXPECT_EQ(token.size(), 1021u);  // the header's arithmetic
  absl::StatusOr<DecisionTokenClaims> back = signer->Verify(token, kIssued);
  ASSERT_TRUE(back.ok()) << back.status();
  claims.decision_id = back->decision_id;
  EXPECT_EQ(*back, claims);
}

TEST(DecisionTokenTest, EveryAlteredByteIsRejected) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  ASSERT_TRUE(signer->Verify(token, kIssued).ok());
  // Flip the low bit (a neighbouring base64 or id character), the high bit
  // (not ASCII any more) and put a separator in every position.
  for (size_t i = 0; i < token.size(); ++i) {
    for (char replacement : {static_cast<char>(token[i] ^ 0x01),
                             static_cast<char>(token[i] ^ 0x80), '~', '='}) {
      if (replacement == token[i]) continue;
      std::string altered = token;
      altered[i] = replacement;
      absl::StatusOr<DecisionTokenClaims> result =
          signer->Verify(altered, kIssued);
      ASSERT_FALSE(result.ok()) << "accepted with byte " << i << " altered";
      EXPECT_TRUE(absl::IsPermissionDenied(result.status()) ||
                  absl::IsInvalidArgument(result.status()))
          << result.status();
      EXPECT_THAT(Message(result.status()), StartsWith("decision_token: "));
    }
  }
}

TEST(DecisionTokenTest, AlteredIdsAreSignatureMismatches) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  size_t at = token.find("~first-order-10~");
  ASSERT_NE(at, std::string::npos);
  std::string altered = token;
  altered.replace(at, 16, "~first-order-99~");
  absl::StatusOr<DecisionTokenClaims> result = signer->Verify(altered, kIssued);
  EXPECT_TRUE(absl::IsPermissionDenied(result.status())) << result.status();
  EXPECT_EQ(result.status().message(),
            "decision_token: signature does not match");
}

TEST(DecisionTokenTest, TruncatedAndExtendedTokensAreRejected) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  for (size_t n = 0; n < token.size(); ++n) {
    absl::StatusOr<DecisionTokenClaims> result =
        signer->Verify(token.substr(0, n), kIssued);
    ASSERT_FALSE(result.ok()) << "accepted the first " << n << " bytes";
    EXPECT_TRUE(absl::IsPermissionDenied(result.status()) ||
                absl::IsInvalidArgument(result.status()))
        << result.status();
  }
  EXPECT_FALSE(signer->Verify(token + "A", kIssued).ok());
  EXPECT_FALSE(signer->Verify(token + "~", kIssued).ok());
  EXPECT_FALSE(signer->Verify("A" + token, kIssued).ok());
}

TEST(DecisionTokenTest, RejectsEmptyOversizedAndGarbage) {
  auto signer = MakeSigner();
  absl::StatusOr<DecisionTokenClaims> empty = signer->Verify("", kIssued);
  EXPECT_TRUE(absl::IsInvalidArgument(empty.status()));
  EXPECT_EQ(empty.status().message(), "decision_token: empty token");

  absl::StatusOr<DecisionTokenClaims> big =
      signer->Verify(std::string(kMaxDecisionTokenBytes + 1, 'A'), kIssued);
  EXPECT_TRUE(absl::IsInvalidArgument(big.status()));
  EXPECT_THAT(Message(big.status()), HasSubstr("longer than 1024 bytes"));

  for (absl::string_view garbage :
       {"hello", "t1", "t1~", "~~~~~~~~~", "t1~~~~~~~~~",
        "t1~AAAAAAAAAAAAAAAAAAAAAAAAAAAA~~~~~~~~"}) {
    absl::StatusOr<DecisionTokenClaims> result =
        signer->Verify(garbage, kIssued);
    EXPECT_TRUE(absl::IsInvalidArgument(result.status()))
        << garbage << ": " << result.status();
    EXPECT_THAT(Message(result.status()),
                StartsWith("decision_token: malformed token: "));
  }
}

TEST(DecisionTokenTest, UnknownVersionIsNamed) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  token[1] = '2';
  absl::StatusOr<DecisionTokenClaims> result = signer->Verify(token, kIssued);
  EXPECT_TRUE(absl::IsInvalidArgument(result.status()));
  EXPECT_EQ(result.status().message(),
            "decision_token: unknown format version");
}

TEST(DecisionTokenTest, TokenOfAnotherKeyIsNamed) {
  auto signer = MakeSigner();
  auto other = MakeSigner(std::string(kKey) + "!");
  absl::StatusOr<DecisionTokenClaims> result =
      signer->Verify(other->Sign(SampleClaims()), kIssued);
  EXPECT_TRUE(absl::IsPermissionDenied(result.status())) << result.status();
  EXPECT_EQ(result.status().message(), "decision_token: signed by another key");
  // A random key is another key too.
  auto random = DecisionTokenSigner::WithRandomKey(kTtl);
  std::string token = random->Sign(SampleClaims());
  EXPECT_TRUE(random->Verify(token, kIssued).ok());
  EXPECT_TRUE(
      absl::IsPermissionDenied(signer->Verify(token, kIssued).status()));
}

TEST(DecisionTokenTest, ExpiresExactlyAfterTtl) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  EXPECT_TRUE(
      signer->Verify(token, kIssued + kTtl - absl::Milliseconds(1)).ok());
  absl::StatusOr<DecisionTokenClaims> expired =
      signer->Verify(token, kIssued + kTtl);
  EXPECT_TRUE(absl::IsInvalidArgument(expired.status()));
  EXPECT_EQ(expired.status().message(),
            "decision_token: expired at 2023-11-15T22:13:20.123+00:00");
  EXPECT_TRUE(absl::IsInvalidArgument(
      signer->Verify(token, kIssued + absl::Hours(1000)).status()));
}

TEST(DecisionTokenTest, TtlComesFromTheSigner) {
  auto short_lived = MakeSigner(kKey, absl::Seconds(10));
  EXPECT_EQ(short_lived->ttl(), absl::Seconds(10));
  std::string token = short_lived->Sign(SampleClaims());
  EXPECT_TRUE(short_lived->Verify(token, kIssued + absl::Seconds(9)).ok());
  EXPECT_FALSE(short_lived->Verify(token, kIssued + absl::Seconds(10)).ok());
  // Same key, longer ttl: the verifier's ttl decides.
  EXPECT_TRUE(MakeSigner()->Verify(token, kIssued + absl::Seconds(10)).ok());
}

TEST(DecisionTokenTest, RejectsTokensIssuedInTheFuture) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  // Up to the allowed clock skew ahead is fine.
  EXPECT_TRUE(signer->Verify(token, kIssued - kMaxDecisionTokenClockSkew).ok());
  absl::StatusOr<DecisionTokenClaims> future = signer->Verify(
      token, kIssued - kMaxDecisionTokenClockSkew - absl::Milliseconds(1));
  EXPECT_TRUE(absl::IsInvalidArgument(future.status()));
  EXPECT_THAT(Message(future.status()),
              StartsWith("decision_token: issued at "));
  EXPECT_THAT(Message(future.status()), HasSubstr("in the future"));
}

TEST(DecisionTokenTest, CreateChecksKeyAndTtl) {
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> short_key =
      DecisionTokenSigner::Create(std::string(31, 'k'), kTtl);
  EXPECT_TRUE(absl::IsInvalidArgument(short_key.status()));
  EXPECT_THAT(Message(short_key.status()), HasSubstr("32"));
  EXPECT_THAT(Message(short_key.status()), Not(HasSubstr("kkkk")));
  EXPECT_TRUE(DecisionTokenSigner::Create(std::string(32, 'k'), kTtl).ok());
  EXPECT_FALSE(DecisionTokenSigner::Create("", kTtl).ok());
  EXPECT_FALSE(DecisionTokenSigner::Create(
                   std::string(kMaxDecisionTokenKeyBytes + 1, 'k'), kTtl)
                   .ok());
  EXPECT_FALSE(DecisionTokenSigner::Create(kKey, absl::ZeroDuration()).ok());
  EXPECT_FALSE(DecisionTokenSigner::Create(kKey, -absl::Seconds(1)).ok());
  EXPECT_FALSE(
      DecisionTokenSigner::Create(kKey, absl::InfiniteDuration()).ok());
}

TEST(DecisionTokenTest, ValidateClaimsNamesTheField) {
  DecisionTokenClaims ok = SampleClaims();
  EXPECT_TRUE(ValidateDecisionTokenClaims(ok).ok());
  ok.decision_id.clear();
  EXPECT_TRUE(ValidateDecisionTokenClaims(ok).ok());

  DecisionTokenClaims c = SampleClaims();
  c.decision_id = "00FF10A2B3C4D5E6";
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)),
              HasSubstr("decision_id"));
  c = SampleClaims();
  c.contact_id = std::string(kMaxDecisionTokenFieldBytes + 1, 's');
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)), HasSubstr("contact_id"));
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)), Not(HasSubstr("sss")));
  c = SampleClaims();
  c.placement_id = "web~home";
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)),
              HasSubstr("placement_id"));
  c = SampleClaims();
  c.variant_id = std::string(kMaxDecisionTokenFieldBytes + 1, 'v');
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)), HasSubstr("variant_id"));
  c = SampleClaims();
  c.issued = absl::InfiniteFuture();
  EXPECT_THAT(Message(ValidateDecisionTokenClaims(c)), HasSubstr("issued"));
}

TEST(DecisionTokenDeathTest, SignAbortsOnInvalidClaims) {
  auto signer = MakeSigner();
  DecisionTokenClaims c = SampleClaims();
  c.action_id = "no spaces";
  EXPECT_DEATH(signer->Sign(c), "action_id");
}

TEST(DecisionTokenTest, VerifyIsThreadSafe) {
  auto signer = MakeSigner();
  std::string token = signer->Sign(SampleClaims());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        DecisionTokenClaims c = SampleClaims();
        c.decision_id.clear();
        if (!signer->Verify(signer->Sign(c), kIssued).ok()) ++failures;
        if (!signer->Verify(token, kIssued).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir();
    path_ = absl::StrCat(dir_, "/decision_token_key_", ::getpid());
  }
  void TearDown() override { std::remove(path_.c_str()); }

  void Write(absl::string_view content) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << content;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(KeyFileTest, ReadsTheKeyWithoutTrailingNewline) {
  Write(absl::StrCat(kKey, "\n"));
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> from_file =
      DecisionTokenSigner::FromFile(path_, kTtl);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  // Same key as Create(kKey): its tokens verify there.
  std::string token = (*from_file)->Sign(SampleClaims());
  EXPECT_TRUE(MakeSigner()->Verify(token, kIssued).ok());
}

TEST_F(KeyFileTest, MissingFileIsNamed) {
  std::string missing = path_ + ".missing";
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> result =
      DecisionTokenSigner::FromFile(missing, kTtl);
  EXPECT_TRUE(absl::IsNotFound(result.status())) << result.status();
  EXPECT_THAT(Message(result.status()), StartsWith("decision_token: "));
  EXPECT_THAT(Message(result.status()), HasSubstr(missing));
}

TEST_F(KeyFileTest, ShortKeyIsNamedWithoutPrintingIt) {
  const std::string secret = "Sup3rSecretButShort";
  Write(secret + "\n");
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> result =
      DecisionTokenSigner::FromFile(path_, kTtl);
  EXPECT_TRUE(absl::IsInvalidArgument(result.status())) << result.status();
  EXPECT_THAT(Message(result.status()), StartsWith("decision_token: "));
  EXPECT_THAT(Message(result.status()), HasSubstr(path_));
  EXPECT_THAT(Message(result.status()), HasSubstr("32"));
  EXPECT_THAT(Message(result.status()), Not(HasSubstr("Sup3r")));
}

TEST_F(KeyFileTest, OversizedFileAndDirectoryAreRejected) {
  Write(std::string(kMaxDecisionTokenKeyBytes + 1, 'k'));
  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> big =
      DecisionTokenSigner::FromFile(path_, kTtl);
  EXPECT_TRUE(absl::IsInvalidArgument(big.status())) << big.status();
  EXPECT_THAT(Message(big.status()), HasSubstr(path_));
  EXPECT_THAT(Message(big.status()), Not(HasSubstr("kkkk")));

  absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> dir =
      DecisionTokenSigner::FromFile(dir_, kTtl);
  EXPECT_FALSE(dir.ok());
  EXPECT_THAT(Message(dir.status()), HasSubstr(dir_));
}

}  // namespace
}  // namespace tappa::server
