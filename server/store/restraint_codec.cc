#include "server/store/restraint_codec.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/store/contact_codec.h"

namespace tappa::server {
namespace {

using ruleset::ContactRestraint;
using ruleset::LifetimeCounts;
using ruleset::Limit;

bool ParseTime(absl::string_view s, absl::Time* t) {
  int64_t ms = 0;
  if (!ParseBase36(s, &ms)) return false;
  *t = TimeOfMillis(ms);
  return true;
}

void DecodeTouches(const ruleset::Ruleset& rs, absl::string_view text,
                   ContactRestraint* out) {
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    if (out->touches.size() >= static_cast<size_t>(ruleset::kMaxTouches)) {
      break;
    }
    std::vector<absl::string_view> parts = absl::StrSplit(entry, '|');
    ruleset::Touch t;
    if (parts.size() != 4 || !ParseTime(parts[0], &t.at) ||
        (parts[1] != "s" && parts[1] != "i")) {
      continue;
    }
    t.kind =
        parts[1] == "s" ? Limit::CountOn::kServed : Limit::CountOn::kImpression;
    t.channel = rs.FindChannel(parts[2]);
    t.action = rs.FindAction(parts[3]);
    out->touches.push_back(t);
  }
}

// Adds a lifetime count field's value ("ls|x" etc.) to `counts`.
void AddCount(char kind, absl::string_view value, LifetimeCounts* counts) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(value, &n)) return;
  (kind == 's' ? counts->served : counts->impressions) += n;
}

}  // namespace

std::string EncodeTouch(absl::Time at, Limit::CountOn kind,
                        absl::string_view channel, absl::string_view action) {
  return absl::StrCat(Base36(MillisOf(at)), "|",
                      kind == Limit::CountOn::kServed ? "s" : "i", "|", channel,
                      "|", action);
}

ContactRestraint DecodeRestraint(const ruleset::Ruleset& rs,
                                 const RedisReply& hgetall) {
  ContactRestraint out;
  for (size_t i = 0; i + 1 < hgetall.elements.size(); i += 2) {
    absl::string_view field = hgetall.elements[i].str;
    absl::string_view value = hgetall.elements[i + 1].str;
    if (field == "t") {
      DecodeTouches(rs, value, &out);
    } else if (field == "gs" || field == "gi") {
      AddCount(field[1], value, &out.total_lifetime);
    } else if (field.size() > 3 && field[2] == '|') {
      absl::string_view id = field.substr(3);
      char kind = field[1];
      if (field[0] == 'l' && (kind == 's' || kind == 'i')) {
        int action = rs.FindAction(id);
        if (action >= 0) AddCount(kind, value, &out.action_lifetime[action]);
      } else if (field[0] == 'c' && (kind == 's' || kind == 'i')) {
        int channel = rs.FindChannel(id);
        if (channel >= 0) AddCount(kind, value, &out.channel_lifetime[channel]);
      } else if (field[0] == 'f' && kind == 'r') {
        std::vector<absl::Time>& times = out.followups_fired[std::string(id)];
        for (absl::string_view t : absl::StrSplit(value, ',')) {
          absl::Time at;
          if (ParseTime(t, &at)) times.push_back(at);
        }
      } else if (field[0] == 'd' && kind == 'c') {
        int channel = rs.FindChannel(id);
        absl::Time at;
        if (channel >= 0 && ParseTime(value, &at))
          out.channel_dismissed[channel] = at;
      }
    } else if (absl::StartsWith(field, "d|")) {
      int action = rs.FindAction(field.substr(2));
      absl::Time at;
      if (action >= 0 && ParseTime(value, &at))
        out.action_dismissed[action] = at;
    }
  }
  return out;
}

}  // namespace tappa::server
