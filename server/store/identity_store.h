// Identities in Redis: the aliases of contacts (issue 7). One person is one
// canonical contact id and any number of aliases "<namespace>:<value>"
// (cookie:3f2a..., email_sha256:5e88...). Two structures, each in the
// shard of its own key's subject:
//
//   tp:{s:NNNN}:a:<alias>     string: the canonical contact id the alias
//                             names (shard of the alias string)
//   tp:{s:NNNN}:x:<contact>   set: the contact's aliases (shard of the
//                             contact, next to its other keys)
//
// The set is the truth about which aliases belong to a contact (listing,
// limits, erasure); the alias records are the index requests resolve
// through. With its record, a linked alias's own contact key
// tp:{s}:c:<alias> holds a redirect {mi: <contact>, tomb: 1, v} (the
// tombstone form of merge_store.h), so the request path reads an alias like
// any contact id and follows the redirect: no round trip spent resolving.
// Linking writes the set first, then the record; an alias in a set whose record
// is missing (a crash between the two) is repaired by linking it again (linking
// is idempotent). An alias with no record names a contact of its own: the alias
// string is then that contact's canonical id (a visitor first seen by cookie is
// the contact "cookie:<value>").
//
// Thread safety: thread-safe; callbacks run on the Redis client's loop
// thread and must not block.
#ifndef TAPPA_SERVER_STORE_IDENTITY_STORE_H_
#define TAPPA_SERVER_STORE_IDENTITY_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/contact_store.h"

namespace tappa::server {

// Bounds that keep one shared device or bot from gluing thousands of
// people into one contact.
struct AliasLimits {
  int per_contact = 50;
  int per_namespace = 10;
};

struct LinkResult {
  enum class Outcome {
    kLinked,         // newly linked
    kAlreadyLinked,  // the alias already named this contact
    kOwnedByOther,   // the alias names another contact (`owner`; the
                     // alias itself when it has a profile of its own)
    kOverContactLimit,
    kOverNamespaceLimit,
  };
  Outcome outcome = Outcome::kLinked;
  std::string owner;  // kOwnedByOther
};

class IdentityStore {
 public:
  // `contacts` must outlive the store (its Redis client and shard count).
  explicit IdentityStore(ContactStore* contacts);

  std::string AliasKey(absl::string_view alias) const;
  std::string AliasSetKey(absl::string_view contact_id) const;

  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>)>;

  // The contact the alias names, or nullopt when no record exists.
  void Lookup(absl::string_view alias, absl::Time deadline,
              Done<std::optional<std::string>> done);

  // Links `alias` (namespace `alias_namespace`) to `contact_id` within
  // `limits`: adds it to the contact's set (refused over a limit), then
  // claims its record; when another contact owns the record the set is
  // restored and the owner returned.
  void Link(absl::string_view contact_id, absl::string_view alias,
            absl::string_view alias_namespace, const AliasLimits& limits,
            absl::Time deadline, Done<LinkResult> done);

  // The contact's aliases, sorted.
  void Aliases(absl::string_view contact_id, absl::Time deadline,
               Done<std::vector<std::string>> done);

  // Erases the contact's aliases: every record that still names the
  // contact, then its set. Yields how many records were removed. Called
  // before the contact's own keys are deleted, so a crash leaves the set
  // for a retry to finish.
  void EraseAliases(absl::string_view contact_id, absl::Time deadline,
                    Done<int> done);

 private:
  ContactStore* contacts_;
  std::string add_sha_;
  std::string claim_sha_;
  std::string release_sha_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_IDENTITY_STORE_H_
