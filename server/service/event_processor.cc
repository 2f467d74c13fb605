#include "server/service/event_processor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rules/ruleset/journey.h"
#include "server/service/status_util.h"
#include "server/service/validation.h"
#include "server/store/followup_store.h"

namespace tappa::server {
namespace {

// The retry delay of an event refused because its contact's queue is full:
// about the time the queue takes to move on by a few events.
constexpr absl::Duration kContactQueueRetryAfter = absl::Milliseconds(100);

// Turns the follow-up rules an event matched into the event's write: first
// cancellations (every pending follow-up of a rule whose cancel_on matched),
// then triggers (a new follow-up per rule and dedupe key; one already
// pending stays, or moves to the new due time when the rule re-arms).
void PlanFollowUps(const ruleset::Ruleset& rs, const std::string& contact_id,
                   const std::string& event_id, absl::Time now,
                   const std::vector<PendingFollowUp>& pending,
                   const ruleset::EventOutcome& outcome, EventWrite* write,
                   int* scheduled, int* cancelled) {
  std::vector<bool> gone(pending.size(), false);
  for (int f : outcome.followups_cancelled) {
    for (size_t i = 0; i < pending.size(); ++i) {
      if (gone[i] || pending[i].rule_id != rs.follow_ups[f].id) continue;
      gone[i] = true;
      write->cancel.push_back(pending[i].id);
      write->remove_fields.push_back(pending[i].field);
      ++*cancelled;
    }
  }
  for (const auto& trigger : outcome.followups_triggered) {
    const ruleset::FollowUp& fu = rs.follow_ups[trigger.rule];
    std::string field = PendingFollowUpField(fu.id, trigger.dedupe_key);
    const PendingFollowUp* existing = nullptr;
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!gone[i] && pending[i].field == field) existing = &pending[i];
    }
    if (existing != nullptr && !fu.rearm) continue;
    std::string id =
        existing != nullptr
            ? existing->id
            : NewFollowUpId(contact_id, fu.id, trigger.dedupe_key, event_id);
    absl::Time due = now + fu.after;
    // A field cancelled by this same event is set again, not deleted.
    auto& removed = write->remove_fields;
    removed.erase(std::remove(removed.begin(), removed.end(), field),
                  removed.end());
    write->set_fields.emplace_back(
        field,
        absl::StrCat(Base36(MillisOf(due)), "|", id, "|", trigger.dedupe_key));
    write->schedule.push_back(
        {id, due,
         EncodeFollowUpPayload({contact_id, fu.id, trigger.dedupe_key, now})});
    ++*scheduled;
  }
}

using tappa::v1::TrackEventResponse;

// A repeat of an event answers with the first delivery's outcome.
void FillDuplicate(const EventRecord& r, TrackEventResponse* response) {
  response->clear_updated_counters();
  response->set_duplicate(true);
  response->set_contact_created(r.created);
  response->set_previous_phase(r.previous_phase);
  response->set_phase(r.phase);
  response->set_phase_changed(r.previous_phase != r.phase);
  *response->mutable_receive_time() = TimeToProto(r.receive_time);
  *response->mutable_event_time() = TimeToProto(r.event_time);
}

}  // namespace

struct EventProcessor::Operation {
  tappa::v1::TrackEventRequest request;
  std::shared_ptr<const ServingRuleset> serving;
  ruleset::Event event;
  int channel = -1;
  absl::Time deadline;
  std::string caller;
  absl::Time receive_time;
  absl::Time event_time;
  int attempts = 0;
  // The contact this operation holds in the sequencer (the id it was
  // first applied to; a merge may redirect it to another).
  std::string sequenced_on;
  int redirects = 0;
  std::string named_as;  // the alias the request named, if any
  // Set once a remembered hash could not decide the event: read from Redis
  // from then on.
  bool read_first = false;
  // The contact was released to its next event once this one's first
  // commit was sent (ContactSequencer::Release).
  bool released = false;
  uint64_t seq = 0;  // its place in its contact's order (the sequencer's)
  // Set when it had to wait: the events then ahead of it in its contact's
  // queue, the one running included, and the real time it began to wait.
  size_t waited_behind = 0;
  absl::Time queued;
  absl::Time started;  // real time of the first attempt
  Done done;
};

void EventProcessor::Track(const tappa::v1::TrackEventRequest& request,
                           absl::Time deadline, absl::string_view caller,
                           Done done) {
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    done(absl::UnavailableError("no ruleset is loaded"));
    return;
  }
  const ruleset::Ruleset& rs = *serving->ruleset;
  auto op = std::make_shared<Operation>();
  int placement = -1;
  absl::Status status = ValidateId("event_id", request.event_id());
  if (status.ok()) status = ValidateId("contact_id", request.contact_id());
  if (status.ok()) status = ValidateEventType("type", request.type());
  if (status.ok())
    status = ValidateChannel(rs, "channel", request.channel(), &op->channel);
  if (status.ok()) {
    status =
        ValidatePlacement(rs, "placement", request.placement(), op->channel,
                          /*optional=*/true, &placement);
  }
  if (status.ok()) {
    status = ConvertValueMap(
        "properties", request.properties(), kMaxProperties,
        /*allow_null=*/request.type() == ruleset::kIdentifyEvent,
        &op->event.properties);
  }
  if (status.ok() && request.has_event_time()) {
    const auto& ts = request.event_time();
    if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 ||
        ts.nanos() < 0 || ts.nanos() > 999999999) {
      status = absl::InvalidArgumentError("event_time: not a valid timestamp");
    }
  }
  if (!status.ok()) {
    done(status);
    return;
  }
  op->request = request;
  op->serving = std::move(serving);
  op->event.id = request.event_id();
  op->event.type = request.type();
  op->event.channel = request.channel();
  op->event.placement = request.placement();
  op->deadline = deadline;
  op->caller = std::string(caller);
  op->done = std::move(done);
  // An alias is read where the cache says it leads, else as itself (its
  // hash redirects to its contact when linked): no round trip of its own.
  absl::StatusOr<std::string> first =
      ContactToRead(runtime_, "contact_id", request.contact_id(),
                    op->serving->ruleset.get(), &op->named_as);
  if (!first.ok()) {
    Done failed = std::move(op->done);
    return failed(first.status());
  }
  op->request.set_contact_id(*first);
  op->sequenced_on = *first;
  // Asked only when the contact is busy (under the sequencer's lock, before
  // the task can run). Twice the estimate: the average lags when the load
  // rises, and an event admitted on a low estimate would expire in the
  // queue after its caller waited the whole deadline (measured at twice the
  // web mix maximum: 1,139 events expired queued with the estimate alone,
  // 110 with twice it).
  // The first event to wait is always admitted: the estimate learns only
  // from events that waited, so refusing every one would keep a high
  // estimate from ever coming down.
  auto in_time = [this, deadline, raw = op.get()](size_t ahead) {
    const int64_t wait_ns = wait_per_event_ns_.load(std::memory_order_relaxed);
    raw->waited_behind = ahead + 1;
    raw->queued = absl::Now();
    return ahead == 0 ||
           absl::Nanoseconds(wait_ns) * static_cast<double>(2 * (ahead + 1)) <=
               deadline - raw->queued;
  };
  // A refused task is dropped unrun: the event is answered from here.
  if (!sequencer_.Run(
          *first, [this, op]() mutable { Attempt(std::move(op)); }, in_time,
          &op->seq)) {
    runtime_.metrics->RecordRateLimited("contact_queue", caller);
    Done refused = std::move(op->done);
    refused(RateLimitedError(
        "contact_id: this contact's earlier events are still being applied, "
        "and this one would wait past its deadline behind them",
        kContactQueueRetryAfter));
  }
}

void EventProcessor::Attempt(std::shared_ptr<Operation> op) {
  using Mode = ContactStore::EventReadMode;
  StartAttempt(*op);
  // Behind commits of its contact still in flight, an event goes on only
  // from the remembered outcome of the last one: a read, or a commit of its
  // own computed from anything else, could land before a retry of one of
  // those (ContactSequencer). Otherwise it waits for them to be answered.
  const bool behind = op->request.contact_id() == op->sequenced_on &&
                      sequencer_.InFlight(op->sequenced_on) > 0;
  if (behind && op->read_first) return Defer(std::move(op));
  const Mode mode = behind           ? Mode::kRecentOnly
                    : op->read_first ? Mode::kRead
                                     : Mode::kRecentOrRead;
  runtime_.store->LoadForEvent(
      op->serving->ruleset, op->request.contact_id(), op->request.event_id(),
      op->receive_time, op->deadline, mode,
      [this, op, behind](absl::StatusOr<EventRead> read) mutable {
        if (behind && absl::IsNotFound(read.status())) {
          return Defer(std::move(op));
        }
        if (!read.ok()) return Finish(std::move(op), read.status());
        runtime_.metrics->RecordEventContactSource(
            read->cached ? EventContactSource::kRemembered
                         : EventContactSource::kRead);
        Apply(std::move(op), *std::move(read));
      });
}

void EventProcessor::StartAttempt(Operation& op) {
  if (++op.attempts == 1) {
    op.started = absl::Now();
    if (op.waited_behind > 0) NoteWait(op);
  }
  // Server time decides counting: read it per attempt so a retry after a
  // conflict counts in the right bucket.
  op.receive_time = runtime_.clock->Now();
  op.event_time = op.receive_time;
  if (op.request.has_event_time()) {
    op.event_time =
        std::clamp(ProtoToTime(op.request.event_time()),
                   op.receive_time - kEventTimeTolerance, op.receive_time);
  }
}

void EventProcessor::Apply(std::shared_ptr<Operation> op, EventRead read) {
  // A remembered hash only ever leads to a commit, whose checks stand in for
  // the read it skipped; an answer without one (a duplicate answered
  // whatever the rate, a refusal, a redirect) is decided on a read.
  auto read_first = [this, &op]() {
    op->read_first = true;
    Attempt(std::move(op));
  };
  const ruleset::Ruleset& rs = *op->serving->ruleset;
  TrackEventResponse response;
  response.set_event_id(op->request.event_id());
  response.set_contact_id(op->request.contact_id());
  response.set_ruleset_version(rs.version);
  if (read.duplicate_of.has_value()) {
    FillDuplicate(*read.duplicate_of, &response);
    return Finish(std::move(op), std::move(response));
  }
  DecodedContact stored =
      DecodeContact(rs, op->request.contact_id(), *read.hash, op->receive_time);
  // Merged (or being merged) into another contact: the event is that
  // contact's; the merged profile is frozen and counts nothing new.
  if (!stored.merged_into.empty() && read.cached) return read_first();
  if (const std::string* next =
          FollowRedirect(runtime_, stored, op->named_as, &op->redirects)) {
    op->request.set_contact_id(*next);
    return Attempt(std::move(op));
  }

  // The contact's event rate: decided on what was read, and the new
  // bucket written by the same conditional commit as the event, so
  // the limit holds exactly across replicas.
  std::optional<std::string> rate_state;
  if (const TokenBucket& rate = runtime_.contact_event_rate;
      !rate.unlimited()) {
    BucketState bucket = DecodeBucketState(stored.event_rate_state);
    absl::Duration retry_after;
    if (!rate.Take(op->receive_time, &bucket, &retry_after)) {
      if (read.cached) return read_first();
      runtime_.metrics->RecordRateLimited("contact", op->caller);
      return Finish(
          std::move(op),
          RateLimitedError(absl::StrCat("contact_id: over the contact's "
                                        "event rate of ",
                                        rate.rate(), " per second"),
                           retry_after));
    }
    rate_state = EncodeBucketState(bucket);
  }
  if (stored.phase_unknown) runtime_.metrics->RecordUnknownPhase();
  bool is_new = !stored.exists;
  ruleset::ContactSnapshot before = stored.snapshot;
  ruleset::ContactSnapshot after = stored.snapshot;
  ruleset::EventOutcome outcome;
  absl::Status applied = ruleset::ApplyEvent(rs, op->event, op->receive_time,
                                             is_new, &after, &outcome);
  if (!applied.ok()) {
    if (read.cached) return read_first();
    return Finish(std::move(op), applied);
  }
  for (size_t i = 0; i < outcome.rule_errors.size(); ++i) {
    runtime_.metrics->RecordRuleError();
  }

  EventWrite write;
  write.expected_version = is_new ? 0 : stored.version;
  write.event_id = op->request.event_id();
  write.base = read.hash;
  write.record.receive_time = op->receive_time;
  write.record.event_time = op->event_time;
  write.record.previous_phase =
      is_new ? "" : rs.phases[outcome.previous_phase].id;
  write.record.phase = rs.phases[outcome.phase].id;
  write.record.created = is_new;
  FieldMap old_fields = is_new ? FieldMap() : EncodeContact(rs, before);
  DiffFields(old_fields, EncodeContact(rs, after), &write.set_fields,
             &write.remove_fields);
  if (rate_state.has_value()) {
    write.set_fields.emplace_back("r", *std::move(rate_state));
  }
  if (is_new || outcome.phase_changed) {
    write.history =
        HistoryEntry{op->receive_time,   write.record.previous_phase,
                     write.record.phase, op->event_time,
                     op->event.type,     op->event.channel,
                     op->event.placement};
  }
  write.old_phase = write.record.previous_phase;
  write.new_phase = write.record.phase;
  int scheduled = 0, cancelled = 0;
  PlanFollowUps(rs, op->request.contact_id(), op->request.event_id(),
                op->receive_time, stored.pending, outcome, &write, &scheduled,
                &cancelled);

  response.set_contact_created(is_new);
  response.set_previous_phase(write.record.previous_phase);
  response.set_phase(write.record.phase);
  response.set_phase_changed(outcome.phase_changed);
  *response.mutable_receive_time() = TimeToProto(op->receive_time);
  *response.mutable_event_time() = TimeToProto(op->event_time);
  for (int c : outcome.counters_incremented) {
    (*response.mutable_updated_counters())[rs.counters[c].id] = after.counts[c];
  }
  int from = outcome.previous_phase, to = outcome.phase;
  bool changed = outcome.phase_changed;

  // The contact's next event may start as soon as this commit is sent: it
  // is computed from this one's remembered outcome and sent behind it on the
  // contact's connection (ContactStore::CommitEvent), where its version
  // makes it apply only on top of this one. Once per event, and only for
  // the contact it is sequenced on (not one a merge redirected it to).
  const bool release = !op->released && runtime_.store->remembers() &&
                       op->request.contact_id() == op->sequenced_on;
  // Set before the commit can answer (on another thread).
  if (release) {
    op->released = true;
    sequencer_.AddInFlight(op->sequenced_on);
  }
  runtime_.store->CommitEvent(
      op->serving->ruleset, op->request.contact_id(), write, op->receive_time,
      op->deadline,
      [this, op, response = std::move(response), from, to, changed, scheduled,
       cancelled](absl::StatusOr<CommitResult> result) mutable {
        // Events sent behind this one were computed from its outcome: no
        // new one may start until they are done (their retries, sent from
        // their answers in order, must land first).
        if (op->released &&
            (!result.ok() ||
             result->outcome != CommitResult::Outcome::kApplied)) {
          sequencer_.Break(op->sequenced_on);
        }
        if (!result.ok()) return Finish(std::move(op), result.status());
        switch (result->outcome) {
          case CommitResult::Outcome::kApplied:
            runtime_.metrics->RecordEvent(op->channel);
            runtime_.metrics->RecordFollowUps(FollowUpOutcome::kScheduled,
                                              scheduled);
            runtime_.metrics->RecordFollowUps(FollowUpOutcome::kCancelled,
                                              cancelled);
            if (changed) runtime_.metrics->RecordTransition(from, to);
            return Finish(std::move(op), std::move(response));
          case CommitResult::Outcome::kDuplicate:
            FillDuplicate(result->duplicate_of, &response);
            return Finish(std::move(op), std::move(response));
          case CommitResult::Outcome::kConflict:
            if (op->attempts >= kMaxCommitAttempts) {
              return Finish(
                  std::move(op),
                  absl::AbortedError("contact_id: too many concurrent "
                                     "writes to this contact; retry"));
            }
            // Events sent behind it failed too, or will: all of them start
            // again, in order, once none is in flight (a retry now could
            // capture a newer hash than an earlier event's retry and land
            // first). Alone in flight, it retries at once.
            if (op->released &&
                !sequencer_.AloneInFlight(op->sequenced_on, op->seq)) {
              return Defer(std::move(op));
            }
            // The commit found the hash changed and brought it: apply the
            // event again to it, without another read.
            StartAttempt(*op);
            runtime_.metrics->RecordEventContactSource(
                EventContactSource::kConflict);
            EventRead current;
            current.hash = std::move(result->current);
            return Apply(std::move(op), std::move(current));
        }
      });
  if (release) {
    // The contact it is sequenced on (a retry's redirect may change its id
    // on another thread by now; this one never changes).
    sequencer_.Release(op->sequenced_on);
  }
}

void EventProcessor::Defer(std::shared_ptr<Operation> op) {
  const bool released = std::exchange(op->released, false);
  // `op` outlives the call (this frame and the task hold it).
  sequencer_.Defer(
      op->sequenced_on, op->seq,
      [this, op]() mutable { Attempt(std::move(op)); }, released);
}

void EventProcessor::NoteWait(const Operation& op) {
  // A moving average over about the last 16 events that waited: one slow
  // wait moves it by a sixteenth, not enough to refuse a hot contact's
  // usual queue (racing updates may lose one sample: harmless for an
  // estimate).
  const int64_t per_event = absl::ToInt64Nanoseconds(op.started - op.queued) /
                            static_cast<int64_t>(op.waited_behind);
  const int64_t average = wait_per_event_ns_.load(std::memory_order_relaxed);
  // The first sample stands alone: an average started at 0 would admit
  // everything until sixteen events had waited.
  wait_per_event_ns_.store(
      average == 0 ? per_event : average + (per_event - average) / 16,
      std::memory_order_relaxed);
}

void EventProcessor::Finish(std::shared_ptr<Operation> op,
                            absl::StatusOr<TrackEventResponse> result) {
  const bool released = op->released;
  Done done = std::move(op->done);
  std::string contact = op->sequenced_on;
  op.reset();
  done(std::move(result));
  sequencer_.Done(contact, released);
}

}  // namespace tappa::server
