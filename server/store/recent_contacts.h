// The contact hashes this server's own event commits last wrote, so that the
// next event of a contact can skip its read and send its conditional commit
// at once: one Redis round trip per event instead of two.
//
// An entry is only a guess: the commit it feeds still checks the contact's
// version in Redis, and on any other write since (another replica, a
// follow-up firing, a merge, an erasure) it fails and hands back the hash as
// it is (ContactStore::CommitEvent). What keeps a guess from passing that
// check wrongly is that every version stored here was drawn at random by the
// commit that wrote it (ContactStore: kMinEventVersion..kMaxEventVersion),
// never a small count that a contact erased and created again could reach
// a second time.
//
// Bounded: at most `capacity` entries; when full, CLOCK eviction (an entry
// used since the hand last passed gets a second chance) keeps the contacts
// whose events keep coming. Entries hold no idempotency records (the commit
// checks those itself).
//
// Thread safety: thread-safe (sharded locks).
#ifndef TAPPA_SERVER_STORE_RECENT_CONTACTS_H_
#define TAPPA_SERVER_STORE_RECENT_CONTACTS_H_

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/contact_codec.h"

namespace tappa::server {

// A contact hash as a commit left it: every field but the idempotency
// records ("e:..." and their counter "ec"), "v" included.
using ContactHash = std::shared_ptr<const StoredFields>;

class RecentContacts {
 public:
  // `capacity` 0 keeps nothing (every lookup misses).
  explicit RecentContacts(size_t capacity);

  RecentContacts(const RecentContacts&) = delete;
  RecentContacts& operator=(const RecentContacts&) = delete;

  // The hash last put for `contact_id`, or null.
  ContactHash Get(absl::string_view contact_id);
  // Remembers `hash` (not null) for `contact_id`, replacing any other.
  void Put(absl::string_view contact_id, ContactHash hash);
  void Erase(absl::string_view contact_id);

  size_t size() const;
  size_t capacity() const { return capacity_; }

 private:
  static constexpr size_t kShards = 16;
  struct Slot {
    std::string contact_id;  // "" = free
    ContactHash hash;
    bool referenced = false;
  };
  struct Shard {
    mutable absl::Mutex mu;
    std::vector<Slot> slots ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, size_t> index ABSL_GUARDED_BY(mu);
    std::vector<size_t> free ABSL_GUARDED_BY(mu);
    size_t hand ABSL_GUARDED_BY(mu) = 0;
  };
  Shard& ShardOf(absl::string_view contact_id);

  const size_t capacity_;
  std::array<Shard, kShards> shards_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_RECENT_CONTACTS_H_
