// TrackEvent's core: validate, read the contact (one round trip, skipped
// when this server's last commit for the contact is remembered:
// ContactStore::LoadForEvent), apply the event with the rules
// (rules/ruleset/journey.h), write everything back in one atomic conditional
// script, and on a version conflict re-evaluate on the hash the script
// found. Idempotent on (contact_id, event_id) for 7 days.
//
// A contact's events are applied in the order they arrive. Once an event's
// commit is sent, the contact's next event may start: computed from that
// commit's remembered outcome, it is sent behind it on the same Redis
// connection (up to kMaxEventsInFlightPerContact in flight) and applies
// only on top of it. When a commit in flight fails (another writer changed
// the contact), the events sent behind it fail too; they all start again in
// their order once none is in flight, one at a time (ContactSequencer).
//
// Thread safety: thread-safe; `done` runs on a Redis loop thread or, for
// invalid input, on the calling thread.
#ifndef TAPPA_SERVER_SERVICE_EVENT_PROCESSOR_H_
#define TAPPA_SERVER_SERVICE_EVENT_PROCESSOR_H_

#include <atomic>
#include <cstdint>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/service/contact_sequencer.h"
#include "server/service/runtime.h"
#include "server/store/contact_store.h"
#include "tappa/v1/journey_service.pb.h"

namespace tappa::server {

// Attempts before a contended event gives up with ABORTED.
inline constexpr int kMaxCommitAttempts = 32;
// Events of one contact are applied one at a time (contact_sequencer.h). An
// event is refused with RESOURCE_EXHAUSTED and a retry delay, changing
// nothing, rather than queued behind its contact's others when the queue
// could outlast its deadline (twice the events ahead times the recent time
// an event holds its contact), or when this many already wait (a bound on
// memory; the server's in-flight bound also holds).
inline constexpr size_t kMaxEventsWaitingPerContact = 256;
// A contact's events sent to Redis behind each other before the first is
// answered (each computed from the one before: ContactSequencer::Release).
inline constexpr int kMaxEventsInFlightPerContact = 16;
// Client event times are clamped into [receive time - this, receive time].
inline constexpr absl::Duration kEventTimeTolerance = absl::Hours(24);

class EventProcessor {
 public:
  using Done =
      absl::AnyInvocable<void(absl::StatusOr<tappa::v1::TrackEventResponse>)>;

  explicit EventProcessor(const Runtime& runtime)
      : runtime_(runtime),
        sequencer_(kMaxEventsWaitingPerContact, kMaxEventsInFlightPerContact) {}

  // `deadline` bounds the whole operation (reads, retries, write). `caller`
  // names the API key (for the rate-limit metric). An event over the
  // contact's event rate (Runtime::contact_event_rate) is refused with
  // RESOURCE_EXHAUSTED and a retry delay, and changes nothing; a repeat of
  // an accepted event is answered as a duplicate whatever the rate. An event
  // that would wait past its deadline behind others of its contact, or
  // behind kMaxEventsWaitingPerContact of them, is refused the same way.
  void Track(const tappa::v1::TrackEventRequest& request, absl::Time deadline,
             absl::string_view caller, Done done);

 private:
  struct Operation;
  // Reads the contact (or takes the store's remembered hash) and applies.
  void Attempt(std::shared_ptr<Operation> op);
  // Counts an attempt and takes its receive time.
  void StartAttempt(Operation& op);
  // Applies the event to `read` and commits it; a commit that finds the hash
  // changed applies it again to the hash it found.
  void Apply(std::shared_ptr<Operation> op, EventRead read);
  void Finish(std::shared_ptr<Operation> op,
              absl::StatusOr<tappa::v1::TrackEventResponse> result);
  // Gives `op`'s turn back to its contact's sequencer, to attempt again
  // once none of the contact's commits is in flight.
  void Defer(std::shared_ptr<Operation> op);
  // Adds how long `op` waited for its contact, per event it waited behind,
  // to wait_per_event_ns_.
  void NoteWait(const Operation& op);

  Runtime runtime_;
  ContactSequencer sequencer_;
  // How long an event that had to wait for its contact recently waited per
  // event ahead of it, the running one included (a moving average, ns, real
  // time). Measured rather than derived from how long events take: a
  // contact's events are pipelined, so its queue drains faster than one
  // event's duration per event. Track() refuses an event when twice this
  // times its place in the queue exceeds its deadline.
  std::atomic<int64_t> wait_per_event_ns_{0};
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_EVENT_PROCESSOR_H_
