#include "server/store/identity_store.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tappa::server {
namespace {

// KEYS[1] the contact's alias set. ARGV: alias, "<namespace>:", per-contact
// limit, per-namespace limit. Yields 0 added, 1 already a member, 2 over
// the contact limit, 3 over the namespace limit.
constexpr char kAddScript[] = R"lua(
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
local members = redis.call('SMEMBERS', KEYS[1])
if #members >= tonumber(ARGV[3]) then return 2 end
local in_namespace = 0
local prefix = ARGV[2]
for _, m in ipairs(members) do
  if string.sub(m, 1, #prefix) == prefix then in_namespace = in_namespace + 1 end
end
if in_namespace >= tonumber(ARGV[4]) then return 3 end
redis.call('SADD', KEYS[1], ARGV[1])
return 0
)lua";

// KEYS[1] the alias record, KEYS[2] the hash of a contact whose canonical
// id is the alias itself (same shard: both hash the alias). ARGV[1] the
// contact, ARGV[2] the alias. Yields "" when the record names the contact
// (now or already), else the other owner: the record's contact, or the
// alias itself when it has a profile of its own (a visitor first seen by
// that cookie): linking it elsewhere would strand that profile.
//
// With the record, the alias's own hash becomes a redirect {mi, tomb, v}
// (merge_store.h's tombstone form): a request naming the alias reads that
// hash like any contact's and follows it, so resolving an alias costs no
// round trip of its own; its version makes an event racing the link
// re-read and follow it too.
constexpr char kClaimScript[] = R"lua(
local function redirect()
  if ARGV[2] ~= ARGV[1] and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HSET', KEYS[2], 'mi', ARGV[1], 'tomb', '1', 'v', '1')
  end
end
local owner = redis.call('GET', KEYS[1])
if not owner then
  if ARGV[2] ~= ARGV[1] and redis.call('EXISTS', KEYS[2]) == 1 then
    if not redis.call('HGET', KEYS[2], 'tomb') then return ARGV[2] end
    local mi = redis.call('HGET', KEYS[2], 'mi')
    if mi and mi ~= ARGV[1] then return mi end
  end
  redis.call('SET', KEYS[1], ARGV[1])
  redirect()
  return ''
end
if owner == ARGV[1] then
  redirect()
  return ''
end
return owner
)lua";

// KEYS: an alias record, and the hash of a contact whose canonical id is
// the alias (same shard). ARGV[1] the contact. Deletes the record if it
// still names the contact, and the hash if it is the tombstone of a contact
// merged into it (merge_store.h); yields 1 when a record went.
constexpr char kReleaseScript[] = R"lua(
local n = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  n = 1
end
if redis.call('HGET', KEYS[2], 'tomb') and
   redis.call('HGET', KEYS[2], 'mi') == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
return n
)lua";

}  // namespace

IdentityStore::IdentityStore(ContactStore* contacts)
    : contacts_(contacts),
      add_sha_(ScriptSha(kAddScript)),
      claim_sha_(ScriptSha(kClaimScript)),
      release_sha_(ScriptSha(kReleaseScript)) {}

std::string IdentityStore::AliasKey(absl::string_view alias) const {
  return absl::StrFormat("tp:{s:%04d}:a:%s",
                         ShardOf(alias, contacts_->shards()), alias);
}

std::string IdentityStore::AliasSetKey(absl::string_view contact_id) const {
  return absl::StrFormat("tp:{s:%04d}:x:%s",
                         ShardOf(contact_id, contacts_->shards()), contact_id);
}

void IdentityStore::Lookup(absl::string_view alias, absl::Time deadline,
                           Done<std::optional<std::string>> done) {
  contacts_->redis()->Command(
      {"GET", AliasKey(alias)}, deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->is_nil()) return done(std::optional<std::string>());
        if (reply->type != RedisReply::Type::kString) {
          return done(UnexpectedReply("GET alias", *reply));
        }
        done(std::optional<std::string>(std::move(reply->str)));
      });
}

void IdentityStore::Link(absl::string_view contact_id, absl::string_view alias,
                         absl::string_view alias_namespace,
                         const AliasLimits& limits, absl::Time deadline,
                         Done<LinkResult> done) {
  std::string set_key = AliasSetKey(contact_id);
  contacts_->RunScript(
      kAddScript, add_sha_, {set_key},
      {std::string(alias), absl::StrCat(alias_namespace, ":"),
       absl::StrCat(limits.per_contact), absl::StrCat(limits.per_namespace)},
      deadline,
      [this, set_key, contact = std::string(contact_id),
       alias = std::string(alias), deadline,
       done = std::move(done)](absl::StatusOr<RedisReply> added) mutable {
        if (!added.ok()) return done(added.status());
        if (added->type != RedisReply::Type::kInteger) {
          return done(UnexpectedReply("alias add script", *added));
        }
        const int64_t outcome = added->integer;
        if (outcome == 2 || outcome == 3) {
          LinkResult over;
          over.outcome = outcome == 2
                             ? LinkResult::Outcome::kOverContactLimit
                             : LinkResult::Outcome::kOverNamespaceLimit;
          return done(over);
        }
        const bool was_member = outcome == 1;
        // The record next: claimed when free (or repaired when a crash
        // left the set ahead of it).
        contacts_->RunScript(
            kClaimScript, claim_sha_,
            {AliasKey(alias), contacts_->KeysFor(alias).contact},
            {contact, alias}, deadline,
            [this, set_key, alias, was_member, deadline,
             done =
                 std::move(done)](absl::StatusOr<RedisReply> claimed) mutable {
              if (!claimed.ok()) return done(claimed.status());
              if (claimed->type != RedisReply::Type::kString) {
                return done(UnexpectedReply("alias claim script", *claimed));
              }
              LinkResult result;
              if (claimed->str.empty()) {
                result.outcome = was_member
                                     ? LinkResult::Outcome::kAlreadyLinked
                                     : LinkResult::Outcome::kLinked;
                return done(result);
              }
              result.outcome = LinkResult::Outcome::kOwnedByOther;
              result.owner = std::move(claimed->str);
              // The alias is another contact's: take it out of this set.
              contacts_->redis()->Command(
                  {"SREM", set_key, alias}, deadline,
                  [result = std::move(result), done = std::move(done)](
                      absl::StatusOr<RedisReply> removed) mutable {
                    if (!removed.ok()) return done(removed.status());
                    done(std::move(result));
                  });
            });
      });
}

void IdentityStore::Aliases(absl::string_view contact_id, absl::Time deadline,
                            Done<std::vector<std::string>> done) {
  contacts_->redis()->Command(
      {"SMEMBERS", AliasSetKey(contact_id)}, deadline,
      [done = std::move(done)](absl::StatusOr<RedisReply> reply) mutable {
        if (!reply.ok()) return done(reply.status());
        if (reply->type != RedisReply::Type::kArray) {
          return done(UnexpectedReply("SMEMBERS aliases", *reply));
        }
        std::vector<std::string> aliases;
        for (RedisReply& r : reply->elements)
          aliases.push_back(std::move(r.str));
        std::sort(aliases.begin(), aliases.end());
        done(std::move(aliases));
      });
}

void IdentityStore::EraseAliases(absl::string_view contact_id,
                                 absl::Time deadline, Done<int> done) {
  auto shared_done = std::make_shared<Done<int>>(std::move(done));
  Aliases(
      contact_id, deadline,
      [this, contact = std::string(contact_id), deadline,
       shared_done](absl::StatusOr<std::vector<std::string>> aliases) mutable {
        if (!aliases.ok()) return (*shared_done)(aliases.status());
        // The set goes last, once every record naming the contact is
        // gone; a failure keeps it for a retry to finish the erasure.
        auto delete_set = [this, contact, deadline, shared_done](int released) {
          contacts_->redis()->Command(
              {"DEL", AliasSetKey(contact)}, deadline,
              [released, shared_done](absl::StatusOr<RedisReply> deleted) {
                if (!deleted.ok()) return (*shared_done)(deleted.status());
                (*shared_done)(released);
              });
        };
        // One script per alias: each record lives in its own shard.
        std::vector<ContactStore::ScriptCall> calls;
        for (const std::string& alias : *aliases) {
          calls.push_back({{AliasKey(alias), contacts_->KeysFor(alias).contact},
                           {contact}});
        }
        contacts_->RunScriptOnEach(
            kReleaseScript, release_sha_, std::move(calls), deadline,
            "alias release script",
            [delete_set, shared_done](absl::StatusOr<int64_t> released) {
              if (!released.ok()) return (*shared_done)(released.status());
              delete_set(static_cast<int>(*released));
            });
      });
}

}  // namespace tappa::server
