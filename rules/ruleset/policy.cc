#include "rules/ruleset/policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rules/ruleset/time_zones.h"

namespace tappa::ruleset {
namespace {

std::string ShortDuration(absl::Duration d) {
  constexpr absl::Duration kDay = absl::Hours(24);
  if (d >= kDay && d % kDay == absl::ZeroDuration()) {
    return absl::StrCat(d / kDay, "d");
  }
  if (d >= absl::Hours(1) && d % absl::Hours(1) == absl::ZeroDuration()) {
    return absl::StrCat(d / absl::Hours(1), "h");
  }
  if (d >= absl::Minutes(1) && d % absl::Minutes(1) == absl::ZeroDuration()) {
    return absl::StrCat(d / absl::Minutes(1), "m");
  }
  return absl::FormatDuration(d);
}

std::string HourMinute(int minute) {
  return absl::StrFormat("%02d:%02d", minute / 60, minute % 60);
}

absl::string_view KindNoun(Limit::CountOn kind) {
  return kind == Limit::CountOn::kServed ? "served" : "impressions";
}

const LifetimeCounts* FindCounts(
    const absl::flat_hash_map<int, LifetimeCounts>& map, int key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

bool WithinCooldown(const absl::flat_hash_map<int, absl::Time>& dismissed,
                    int key, std::optional<absl::Duration> cooldown,
                    absl::Time now, absl::Time* until) {
  if (!cooldown.has_value()) return false;
  auto it = dismissed.find(key);
  if (it == dismissed.end()) return false;
  *until = it->second + *cooldown;
  return now < *until;
}

}  // namespace

std::string DescribeLimit(const Limit& limit) {
  return absl::StrCat(
      limit.max, " per ",
      limit.per.has_value() ? ShortDuration(*limit.per) : "lifetime",
      limit.count_on == Limit::CountOn::kImpression ? " (impressions)" : "");
}

int LocalMinuteOfDay(const Ruleset& ruleset, const ContactSnapshot& contact,
                     absl::Time now, std::string* zone_name) {
  const std::string& attribute = ruleset.policies.timezone_attribute;
  absl::TimeZone zone;
  bool found = false;
  for (const auto& [name, value] : contact.attrs) {
    if (name == attribute && value.IsString() &&
        FindTimeZone(value.string_value(), &zone)) {
      *zone_name = std::string(value.string_value());
      found = true;
      break;
    }
  }
  if (!found) {
    // Validated at load time, so this cannot fail; UTC if it somehow does.
    if (!FindTimeZone(ruleset.policies.default_timezone, &zone)) {
      zone = absl::UTCTimeZone();
    }
    *zone_name = ruleset.policies.default_timezone;
  }
  absl::CivilMinute local = absl::ToCivilMinute(now, zone);
  return local.hour() * 60 + local.minute();
}

bool InQuietHours(const QuietHours& quiet, int minute) {
  if (quiet.start_minute == quiet.end_minute) return false;
  if (quiet.start_minute < quiet.end_minute) {
    return minute >= quiet.start_minute && minute < quiet.end_minute;
  }
  return minute >= quiet.start_minute || minute < quiet.end_minute;
}

absl::Time QuietHoursEnd(const Ruleset& ruleset, const QuietHours& quiet,
                         const ContactSnapshot& contact, absl::Time now) {
  std::string zone_name;
  int minute = LocalMinuteOfDay(ruleset, contact, now, &zone_name);
  if (!InQuietHours(quiet, minute)) return now;
  absl::TimeZone zone;
  if (!FindTimeZone(zone_name, &zone)) zone = absl::UTCTimeZone();
  absl::CivilDay day = absl::ToCivilDay(now, zone);
  // Spanning midnight and before it: the end is tomorrow.
  if (quiet.end_minute < quiet.start_minute && minute >= quiet.start_minute) {
    day += 1;
  }
  absl::CivilMinute end(day.year(), day.month(), day.day(),
                        quiet.end_minute / 60, quiet.end_minute % 60);
  absl::Time t = absl::FromCivil(end, zone);
  return t > now ? t : now;
}

PolicyCheck::PolicyCheck(const Ruleset& ruleset, int channel,
                         const ContactSnapshot& contact,
                         const ContactRestraint& restraint, absl::Time now)
    : ruleset_(ruleset),
      channel_(channel),
      contact_(contact),
      restraint_(restraint),
      now_(now) {
  channel_verdict_ = CheckChannel();
}

int64_t PolicyCheck::CountTouches(const Limit& limit, int action,
                                  int channel) const {
  if (!limit.per.has_value()) {
    const LifetimeCounts* counts =
        action >= 0    ? FindCounts(restraint_.action_lifetime, action)
        : channel >= 0 ? FindCounts(restraint_.channel_lifetime, channel)
                       : &restraint_.total_lifetime;
    return counts == nullptr ? 0 : counts->Of(limit.count_on);
  }
  absl::Time since = now_ - *limit.per;
  int64_t n = 0;
  for (const Touch& t : restraint_.touches) {
    if (t.at <= since) break;  // newest first
    if (t.kind != limit.count_on) continue;
    if (action >= 0 && t.action != action) continue;
    if (channel >= 0 && t.channel != channel) continue;
    ++n;
  }
  return n;
}

bool PolicyCheck::CapReached(const std::vector<Limit>& caps, int action,
                             int channel, std::string* detail,
                             int* index) const {
  for (size_t i = 0; i < caps.size(); ++i) {
    int64_t n = CountTouches(caps[i], action, channel);
    if (n >= caps[i].max) {
      *detail = absl::StrCat("cap ", DescribeLimit(caps[i]), " reached (", n,
                             " ", KindNoun(caps[i].count_on), ")");
      *index = static_cast<int>(i);
      return true;
    }
  }
  return false;
}

PolicyVerdict PolicyCheck::CheckChannel() const {
  PolicyVerdict v;
  if (channel_ < 0 ||
      channel_ >= static_cast<int>(ruleset_.policies.channels.size())) {
    return v;
  }
  const ChannelPolicy& policy = ruleset_.policies.channels[channel_];
  const std::string& channel_id = ruleset_.channels[channel_].id;
  std::string base = absl::StrCat("policies/channels/", channel_id);
  if (policy.consent_required) {
    bool given = false;
    for (const auto& [id, value] : contact_.consents) {
      if (id == channel_id) given = value;
    }
    if (!given) {
      v.block = PolicyBlock::kConsentMissing;
      v.detail = absl::StrCat("consent for '", channel_id, "' not given");
      v.rule = absl::StrCat(base, "/consent_required");
      return v;
    }
  }
  if (policy.quiet_hours.has_value()) {
    std::string zone;
    int minute = LocalMinuteOfDay(ruleset_, contact_, now_, &zone);
    if (InQuietHours(*policy.quiet_hours, minute)) {
      v.block = PolicyBlock::kQuietHours;
      v.detail = absl::StrCat(
          "quiet hours ", HourMinute(policy.quiet_hours->start_minute), "-",
          HourMinute(policy.quiet_hours->end_minute), " in ", zone,
          " (local time ", HourMinute(minute), ")");
      v.rule = absl::StrCat(base, "/quiet_hours");
      return v;
    }
  }
  absl::Time until;
  if (WithinCooldown(restraint_.channel_dismissed, channel_,
                     policy.dismiss_cooldown, now_, &until)) {
    v.block = PolicyBlock::kChannelDismissCooldown;
    v.detail = absl::StrCat(
        "dismissed on '", channel_id, "' ",
        ShortDuration(absl::Trunc(now_ - until + *policy.dismiss_cooldown,
                                  absl::Seconds(1))),
        " ago; cooldown ", ShortDuration(*policy.dismiss_cooldown));
    v.rule = absl::StrCat(base, "/dismiss_cooldown");
    return v;
  }
  int index = 0;
  if (CapReached(ruleset_.policies.caps, -1, -1, &v.detail, &index)) {
    v.block = PolicyBlock::kGlobalCap;
    v.rule = absl::StrCat("policies/caps/", index);
    return v;
  }
  if (CapReached(policy.caps, -1, channel_, &v.detail, &index)) {
    v.block = PolicyBlock::kChannelCap;
    v.detail = absl::StrCat(v.detail, " on '", channel_id, "'");
    v.rule = absl::StrCat(base, "/caps/", index);
    return v;
  }
  return v;
}

PolicyVerdict PolicyCheck::CheckAction(int action) const {
  if (channel_verdict_.block != PolicyBlock::kNone) return channel_verdict_;
  PolicyVerdict v;
  const Action& a = ruleset_.actions[action];
  std::string base = absl::StrCat("actions/", a.id);
  int index = 0;
  if (CapReached(a.caps, action, -1, &v.detail, &index)) {
    v.block = PolicyBlock::kActionCap;
    v.rule = absl::StrCat(base, "/caps/", index);
    return v;
  }
  absl::Time until;
  if (WithinCooldown(restraint_.action_dismissed, action, a.dismiss_cooldown,
                     now_, &until)) {
    v.block = PolicyBlock::kActionDismissCooldown;
    v.detail =
        absl::StrCat("dismissed ",
                     ShortDuration(absl::Trunc(
                         now_ - until + *a.dismiss_cooldown, absl::Seconds(1))),
                     " ago; cooldown ", ShortDuration(*a.dismiss_cooldown));
    v.rule = absl::StrCat(base, "/dismiss_cooldown");
  }
  return v;
}

}  // namespace tappa::ruleset
