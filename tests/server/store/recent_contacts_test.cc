// RecentContacts: what was put comes back until erased or evicted, never
// more than the capacity is kept, and eviction spares entries in use.
#include "server/store/recent_contacts.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tappa::server {
namespace {

ContactHash Hash(const std::string& version) {
  return std::make_shared<const StoredFields>(
      StoredFields{{"v", version}, {"p", "awareness"}});
}

std::string VersionOf(const ContactHash& hash) {
  return hash == nullptr ? "none" : hash->front().second;
}

TEST(RecentContactsTest, RemembersReplacesAndForgets) {
  RecentContacts recent(100);
  EXPECT_EQ(recent.Get("c1"), nullptr);
  recent.Put("c1", Hash("7"));
  recent.Put("c2", Hash("8"));
  EXPECT_EQ(VersionOf(recent.Get("c1")), "7");
  recent.Put("c1", Hash("9"));
  EXPECT_EQ(VersionOf(recent.Get("c1")), "9");
  EXPECT_EQ(recent.size(), 2u);
  recent.Erase("c1");
  recent.Erase("absent");
  EXPECT_EQ(recent.Get("c1"), nullptr);
  EXPECT_EQ(VersionOf(recent.Get("c2")), "8");
  EXPECT_EQ(recent.size(), 1u);
}

TEST(RecentContactsTest, KeepsAtMostItsCapacity) {
  RecentContacts recent(50);
  for (int i = 0; i < 1000; ++i) {
    recent.Put(absl::StrCat("c", i), Hash(absl::StrCat(i)));
    ASSERT_LE(recent.size(), 50u);
  }
  EXPECT_EQ(recent.size(), 50u);
  // Every entry still there is the one put for its contact.
  int kept = 0;
  for (int i = 0; i < 1000; ++i) {
    ContactHash h = recent.Get(absl::StrCat("c", i));
    if (h == nullptr) continue;
    ++kept;
    EXPECT_EQ(VersionOf(h), absl::StrCat(i));
  }
  EXPECT_EQ(kept, 50);
}

TEST(RecentContactsTest, NothingIsKeptWithoutCapacity) {
  RecentContacts recent(0);
  recent.Put("c1", Hash("1"));
  EXPECT_EQ(recent.Get("c1"), nullptr);
  EXPECT_EQ(recent.size(), 0u);
}

// A hot contact, looked up between every insertion of a stream of one-off
// contacts many times the capacity, stays: each pass of the hand finds it
// used again.
TEST(RecentContactsTest, EntriesInUseSurviveAStreamOfOneOffs) {
  RecentContacts recent(64);
  recent.Put("hot", Hash("1"));
  for (int i = 0; i < 5000; ++i) {
    ASSERT_NE(recent.Get("hot"), nullptr) << "evicted after " << i;
    recent.Put(absl::StrCat("once", i), Hash("2"));
  }
  // Without lookups it goes like any other.
  for (int i = 0; i < 5000; ++i) recent.Put(absl::StrCat("more", i), Hash("3"));
  EXPECT_EQ(recent.Get("hot"), nullptr);
}

}  // namespace
}  // namespace tappa::server
