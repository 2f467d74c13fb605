#include "server/store/recent_contacts.h"

#include <utility>

#include "absl/hash/hash.h"

namespace tappa::server {

RecentContacts::RecentContacts(size_t capacity) : capacity_(capacity) {
  // Each shard gets its share, the first ones one more: exactly `capacity`.
  for (size_t i = 0; i < kShards; ++i) {
    Shard& shard = shards_[i];
    absl::MutexLock lock(&shard.mu);
    const size_t n = capacity / kShards + (i < capacity % kShards ? 1 : 0);
    shard.slots.resize(n);
    shard.index.reserve(n);
    shard.free.reserve(n);
    for (size_t s = n; s > 0; --s) shard.free.push_back(s - 1);
  }
}

RecentContacts::Shard& RecentContacts::ShardOf(absl::string_view contact_id) {
  return shards_[absl::HashOf(contact_id) % kShards];
}

ContactHash RecentContacts::Get(absl::string_view contact_id) {
  Shard& shard = ShardOf(contact_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.index.find(contact_id);
  if (it == shard.index.end()) return nullptr;
  Slot& slot = shard.slots[it->second];
  slot.referenced = true;
  return slot.hash;
}

void RecentContacts::Put(absl::string_view contact_id, ContactHash hash) {
  Shard& shard = ShardOf(contact_id);
  ContactHash evicted;  // released after the lock
  absl::MutexLock lock(&shard.mu);
  if (shard.slots.empty()) return;
  auto it = shard.index.find(contact_id);
  if (it != shard.index.end()) {
    Slot& slot = shard.slots[it->second];
    evicted = std::exchange(slot.hash, std::move(hash));
    slot.referenced = true;
    return;
  }
  size_t at;
  if (!shard.free.empty()) {
    at = shard.free.back();
    shard.free.pop_back();
  } else {
    // Every slot is taken: the hand clears second chances until it finds
    // one unused since its last pass (at most one full turn).
    while (shard.slots[shard.hand].referenced) {
      shard.slots[shard.hand].referenced = false;
      shard.hand = (shard.hand + 1) % shard.slots.size();
    }
    at = shard.hand;
    shard.hand = (shard.hand + 1) % shard.slots.size();
    shard.index.erase(shard.slots[at].contact_id);
  }
  Slot& slot = shard.slots[at];
  slot.contact_id = std::string(contact_id);
  evicted = std::exchange(slot.hash, std::move(hash));
  // A new entry starts without a second chance: one that is never used
  // again goes first.
  slot.referenced = false;
  shard.index.emplace(slot.contact_id, at);
}

void RecentContacts::Erase(absl::string_view contact_id) {
  Shard& shard = ShardOf(contact_id);
  ContactHash evicted;
  absl::MutexLock lock(&shard.mu);
  auto it = shard.index.find(contact_id);
  if (it == shard.index.end()) return;
  Slot& slot = shard.slots[it->second];
  shard.free.push_back(it->second);
  shard.index.erase(it);
  slot.contact_id.clear();
  evicted = std::move(slot.hash);
  slot.referenced = false;
}

size_t RecentContacts::size() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.index.size();
  }
  return n;
}

}  // namespace tappa::server
