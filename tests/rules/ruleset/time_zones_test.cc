// Time zone lookups from contact data: only zone-shaped names reach the
// time zone library, and what is remembered is bounded.
#include "rules/ruleset/time_zones.h"

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace tappa::ruleset {
namespace {

TEST(TimeZones, ShapesOfNames) {
  for (const char* good :
       {"UTC", "Europe/Rome", "America/New_York",
        "America/Argentina/Buenos_Aires", "Etc/GMT+5", "EST5EDT"}) {
    EXPECT_TRUE(LooksLikeZoneName(good)) << good;
  }
  for (const char* bad : {"", "/etc/passwd", "../../etc/passwd",
                          "file:/etc/localtime", "Europe//Rome", "Europe/Rome/",
                          "a/b/c/d", "Europe/Rome ", "Zürich", "+0100", "_x"}) {
    EXPECT_FALSE(LooksLikeZoneName(bad)) << bad;
  }
  EXPECT_FALSE(LooksLikeZoneName(std::string(65, 'A')));
}

TEST(TimeZones, FindsRealZonesOnly) {
  absl::TimeZone zone;
  ASSERT_TRUE(FindTimeZone("Asia/Tokyo", &zone));
  absl::Time noon_utc = absl::FromCivil(absl::CivilSecond(2026, 6, 1, 12, 0, 0),
                                        absl::UTCTimeZone());
  EXPECT_EQ(absl::ToCivilHour(noon_utc, zone).hour(), 21);
  // Again, from memory.
  ASSERT_TRUE(FindTimeZone("Asia/Tokyo", &zone));
  EXPECT_FALSE(FindTimeZone("Mars/Olympus_Mons", &zone));
  EXPECT_FALSE(FindTimeZone("Mars/Olympus_Mons", &zone));
  EXPECT_FALSE(FindTimeZone("../../etc/passwd", &zone));
}

TEST(TimeZones, MemoryIsBounded) {
  absl::TimeZone zone;
  ASSERT_TRUE(FindTimeZone("Asia/Tokyo", &zone));
  // Fill the memory with names that are not zones...
  for (int i = 0; i < kMaxRememberedZones + 10; ++i) {
    EXPECT_FALSE(FindTimeZone(absl::StrCat("Nowhere/Place", i), &zone));
  }
  // ...zones remembered before still resolve; new names are not looked up.
  EXPECT_TRUE(FindTimeZone("Asia/Tokyo", &zone));
  EXPECT_FALSE(FindTimeZone("Europe/Lisbon", &zone));
}

}  // namespace
}  // namespace tappa::ruleset
