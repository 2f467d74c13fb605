#include "rules/ruleset/journey.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "rules/cel/containers.h"
#include "rules/ruleset/environment.h"

namespace tappa::ruleset {
namespace {

using cel::Value;

// The `event` binding.
class EventBinding {
 public:
  EventBinding(const Event& event, absl::Time now) {
    for (const auto& [name, value] : event.properties) {
      properties_.Insert(Value::BorrowedString(name), value).IgnoreError();
    }
    object_.Add("type", Value::BorrowedString(event.type));
    object_.Add("channel", Value::BorrowedString(event.channel));
    object_.Add("properties", Value::BorrowedMap(&properties_));
    object_.Add("placement", Value::BorrowedString(event.placement));
    object_.Add("id", Value::BorrowedString(event.id));
    object_.Add("time", Value::FromTimestamp(ToCelTimestamp(now)));
  }
  Value value() const { return Value::BorrowedMap(&object_); }

 private:
  cel::VectorMap properties_;
  FieldMap object_;
};

// Evaluates a condition in the event context; errors and non-bools are
// false, with the error recorded.
bool Holds(const Expression& expr, const Value (&vars)[kEventVariableCount],
           absl::string_view where, EventOutcome* outcome) {
  Value v = expr.program->Evaluate(absl::MakeConstSpan(vars));
  if (v.IsBool()) return v.bool_value();
  outcome->rule_errors.push_back(absl::StrCat(
      where, ": ", v.IsError() ? v.error_message() : "result is not a bool: ",
      v.IsError() ? "" : v.DebugString()));
  return false;
}

template <typename T>
void Upsert(std::vector<std::pair<std::string, T>>* entries,
            absl::string_view key, T value) {
  for (auto& [k, v] : *entries) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries->emplace_back(std::string(key), std::move(value));
}

const Value* FindProperty(const Event& event, absl::string_view name) {
  for (const auto& [k, v] : event.properties) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Applies identify/consent/CX effects to `c`. Fails without side effects on
// `c` (the caller works on a copy).
absl::Status ApplyBuiltinEffects(const Ruleset& ruleset, const Event& event,
                                 absl::Time now, ContactSnapshot* c) {
  if (event.type == kIdentifyEvent) {
    for (const auto& property : event.properties) {
      const std::string& name = property.first;
      const Value& value = property.second;
      if (value.IsNull()) {
        c->attrs.erase(
            std::remove_if(c->attrs.begin(), c->attrs.end(),
                           [&name](const auto& e) { return e.first == name; }),
            c->attrs.end());
        c->attr_times.erase(
            std::remove_if(c->attr_times.begin(), c->attr_times.end(),
                           [&name](const auto& e) { return e.first == name; }),
            c->attr_times.end());
      } else {
        Upsert(&c->attrs, name, value);
        Upsert(&c->attr_times, name, now);
      }
    }
    if (c->attrs.size() > kMaxAttributes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "properties: an identify event may not bring a contact over ",
          kMaxAttributes, " attributes"));
    }
  } else if (event.type == kConsentEvent) {
    for (const auto& [channel, value] : event.properties) {
      if (ruleset.FindChannel(channel) < 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "properties.", channel, ": consent for an unknown channel"));
      }
      if (!value.IsBool()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "properties.", channel, ": consent must be true or false"));
      }
      Upsert(&c->consents, channel, value.bool_value());
    }
  } else if (event.type == kNpsEvent || event.type == kCsatEvent ||
             event.type == kCesEvent) {
    int64_t lo = event.type == kNpsEvent ? 0 : 1;
    int64_t hi = event.type == kNpsEvent    ? 10
                 : event.type == kCsatEvent ? 5
                                            : 7;
    const Value* score = FindProperty(event, "score");
    int64_t s = 0;
    bool ok = false;
    if (score != nullptr && score->IsInt()) {
      s = score->int_value();
      ok = true;
    } else if (score != nullptr && score->IsDouble() &&
               score->double_value() ==
                   static_cast<double>(
                       static_cast<int64_t>(score->double_value()))) {
      s = static_cast<int64_t>(score->double_value());
      ok = true;
    }
    if (!ok || s < lo || s > hi) {
      return absl::FailedPreconditionError(
          absl::StrCat("properties.score: ", event.type,
                       " needs an integer score from ", lo, " to ", hi));
    }
    CxScore cx{s, now};
    if (event.type == kNpsEvent) c->nps = cx;
    if (event.type == kCsatEvent) c->csat = cx;
    if (event.type == kCesEvent) c->ces = cx;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyEvent(const Ruleset& ruleset, const Event& event,
                        absl::Time now, bool is_new, ContactSnapshot* contact,
                        EventOutcome* outcome) {
  *outcome = EventOutcome();
  ContactSnapshot next = *contact;
  if (is_new) {
    next.phase = ruleset.initial_phase;
    next.phase_since = next.first_seen = next.last_seen = now;
  }
  RefreshCounts(ruleset, now, &next);
  outcome->previous_phase = next.phase;

  EventBinding event_binding(event, now);
  Value vars[kEventVariableCount];
  vars[kEventSlots.event] = event_binding.value();
  vars[kEventSlots.now] = Value::FromTimestamp(ToCelTimestamp(now));

  // 1. Counters see the contact before the event.
  {
    ContactBinding before(ruleset, next);
    vars[kEventSlots.contact] = before.value();
    for (int i = 0; i < static_cast<int>(ruleset.counters.size()); ++i) {
      const Counter& counter = ruleset.counters[i];
      if (Holds(counter.on, vars, absl::StrCat("counters/", counter.id, "/on"),
                outcome)) {
        outcome->counters_incremented.push_back(i);
      }
    }
    vars[kEventSlots.contact] = Value();
  }

  // 2. Effects.
  if (absl::Status s = ApplyBuiltinEffects(ruleset, event, now, &next);
      !s.ok()) {
    return s;
  }
  for (int i : outcome->counters_incremented) {
    const Counter& counter = ruleset.counters[i];
    if (counter.window.has_value()) {
      RollingAdd(&next.rolling[i], BucketOf(now, counter.bucket),
                 WindowBuckets(*counter.window, counter.bucket), 1);
    } else {
      ++next.counts[i];
    }
  }
  RefreshCounts(ruleset, now, &next);

  // 3-4. Transitions see the effects but the old phase and last-seen times.
  {
    ContactBinding during(ruleset, next);
    vars[kEventSlots.contact] = during.value();
    for (int t = 0; t < static_cast<int>(ruleset.transitions.size()); ++t) {
      const Transition& tr = ruleset.transitions[t];
      if (!tr.from.empty() && std::find(tr.from.begin(), tr.from.end(),
                                        next.phase) == tr.from.end()) {
        continue;
      }
      if (Holds(tr.when, vars, absl::StrCat("transitions/", t, "/when"),
                outcome)) {
        outcome->transition = t;
        if (tr.to != next.phase) {
          next.phase = tr.to;
          next.phase_since = now;
          outcome->phase_changed = true;
        }
        break;
      }
    }
    // 4. Follow-ups: cancellations, then triggers.
    for (int f = 0; f < static_cast<int>(ruleset.follow_ups.size()); ++f) {
      const FollowUp& fu = ruleset.follow_ups[f];
      if (fu.cancel_on.has_value() &&
          Holds(*fu.cancel_on, vars,
                absl::StrCat("followups/", fu.id, "/cancel_on"), outcome)) {
        outcome->followups_cancelled.push_back(f);
      }
    }
    for (int f = 0; f < static_cast<int>(ruleset.follow_ups.size()); ++f) {
      const FollowUp& fu = ruleset.follow_ups[f];
      if (!Holds(fu.on, vars, absl::StrCat("followups/", fu.id, "/on"),
                 outcome)) {
        continue;
      }
      EventOutcome::FollowUpTrigger trigger{f, ""};
      if (fu.dedupe_key.has_value()) {
        Value key = fu.dedupe_key->program->Evaluate(absl::MakeConstSpan(vars));
        if (!key.IsString()) {
          outcome->rule_errors.push_back(absl::StrCat(
              "followups/", fu.id, "/dedupe_key: ",
              key.IsError() ? key.error_message()
                            : "result is not a string: " + key.DebugString()));
          continue;
        }
        trigger.dedupe_key = std::string(key.string_value());
      }
      outcome->followups_triggered.push_back(std::move(trigger));
    }
    vars[kEventSlots.contact] = Value();
  }
  outcome->phase = next.phase;

  next.last_seen = now;
  if (!event.channel.empty())
    Upsert(&next.last_seen_by_channel, event.channel, now);
  *contact = std::move(next);
  return absl::OkStatus();
}

}  // namespace tappa::ruleset
