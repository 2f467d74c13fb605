// How a contact's restraint record (rules/ruleset/policy.h) is laid out in
// Redis: one hash per contact, tp:{s:NNNN}:q:<contact id>, next to the
// contact's own hash, read in the same round trip. Fields:
//
//   t              the touches, newest first: entries
//                  "<time>|<s or i>|<channel>|<action>" joined by ','
//                  (s = served, i = impression; ids never contain '|' or
//                  ','), at most kMaxTouches
//   ls|<action>    lifetime served count of an action (li| impressions)
//   cs|<channel>   lifetime served count on a channel (ci| impressions)
//   gs gi          lifetime served / impression counts in total
//   fr|<rule>      times a follow-up rule fired for the contact, newest
//                  first, joined by ',' (at most kMaxFiredTimes)
//   d|<action>     the time of the action's last dismissal
//   dc|<channel>   the time of the last dismissal on the channel
//   o|<decision>   outcomes reported for a decision token: "<time>|<kinds>"
//                  with kinds among i (impression), c (click),
//                  v (conversion), d (dismiss) — ReportOutcome's
//                  idempotency record
//   oc             outcome records written since the last pruning
// Times are base-36 Unix milliseconds. The hash expires after a year without
// a write (a touch or an outcome refreshes it).
//
// Decoding is lenient: entries naming actions or channels the ruleset no
// longer has keep index -1 (they still count for global caps), malformed
// entries are skipped.
#ifndef TAPPA_SERVER_STORE_RESTRAINT_CODEC_H_
#define TAPPA_SERVER_STORE_RESTRAINT_CODEC_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rules/ruleset/policy.h"
#include "rules/ruleset/ruleset.h"
#include "server/redis/redis_client.h"

namespace tappa::server {

// Decodes an HGETALL reply of the restraint hash (an empty array = no
// record). Never fails: what cannot be read is skipped.
ruleset::ContactRestraint DecodeRestraint(const ruleset::Ruleset& ruleset,
                                          const RedisReply& hgetall);

// One touch entry as stored in the "t" field.
std::string EncodeTouch(absl::Time at, ruleset::Limit::CountOn kind,
                        absl::string_view channel, absl::string_view action);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_STORE_RESTRAINT_CODEC_H_
