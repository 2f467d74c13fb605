#include "rules/ruleset/loader.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "rules/cel/containers.h"
#include "rules/ruleset/conjuncts.h"
#include "rules/ruleset/contact.h"
#include "rules/ruleset/scalar_positions.h"
#include "rules/ruleset/yaml_document.h"

namespace tappa::ruleset {
namespace {

using Node = YamlNode;

// ---- Small helpers --------------------------------------------------------

// Edit distance with adjacent transpositions (optimal string alignment), for
// "did you mean" hints: "emial" is one edit from "email". Inputs are short.
size_t EditDistance(absl::string_view a, absl::string_view b) {
  if (a.size() > 64 || b.size() > 64) return std::max(a.size(), b.size());
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean 'x'?)" when a candidate is close enough, else "".
template <typename Range>
std::string DidYouMean(absl::string_view word, const Range& candidates) {
  size_t best = std::numeric_limits<size_t>::max();
  std::string best_word;
  for (const auto& c : candidates) {
    absl::string_view candidate(c);
    size_t d = EditDistance(absl::AsciiStrToLower(word),
                            absl::AsciiStrToLower(candidate));
    if (d < best || (d == best && candidate < best_word)) {
      best = d;
      best_word = std::string(candidate);
    }
  }
  // Close enough: at most a third of the word's letters (at least one) off.
  size_t allowed = std::max<size_t>(1, std::min<size_t>(3, word.size() / 3));
  if (best_word.empty() || best > allowed) return "";
  return absl::StrCat(" (did you mean '", best_word, "'?)");
}

const std::vector<std::string>& ActionKindNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "message", "email",  "offer",    "push",          "sms",
      "content", "survey", "referral", "recommendation"};
  return *kNames;
}

bool IsIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  if (!absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) return false;
  return std::all_of(id.begin(), id.end(), IsIdChar);
}

bool IsIdentifier(absl::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  unsigned char first = static_cast<unsigned char>(id[0]);
  if (!absl::ascii_isalpha(first) && first != '_') return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

// Makes a message safe to print and to carry in a gRPC status: one line of
// valid UTF-8. Control characters and bytes that are not part of a valid
// UTF-8 sequence become \xNN (and a newline \n).
std::string SanitizeMessage(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t length = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    bool valid = length > 0 && i + length <= s.size();
    for (size_t j = 1; valid && j < length; ++j) {
      valid = (static_cast<unsigned char>(s[i + j]) & 0xC0) == 0x80;
    }
    if (valid && length == 2) valid = c >= 0xC2;  // no overlong forms
    if (valid && length == 3) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    }
    if (valid && length == 4) {
      unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      valid =
          c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (valid && length == 1 && (c < 0x20 || c == 0x7F)) {
      absl::StrAppend(&out, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "");
      if (c != '\n' && c != '\t') {
        absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
      }
      ++i;
      continue;
    }
    if (!valid) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
      ++i;
      continue;
    }
    out.append(s.data() + i, length);
    i += length;
  }
  return out;
}

// Short rendering of a scalar for messages: long or multi-line values are cut.
std::string Quote(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= 60) {
      out += "...";
      break;
    }
    if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += '?';
    } else {
      out += c;
    }
  }
  return absl::StrCat("'", out, "'");
}

// YAML 1.2 core schema resolution of plain scalars (quoted scalars are always
// strings): null, bool, int, float.
enum class PlainKind { kNull, kBool, kInt, kDouble, kString };

bool LooksLikeDecimalInt(absl::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

bool LooksLikeFloat(absl::string_view s) {
  // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  size_t i = 0;
  auto digits = [&]() {
    size_t start = i;
    while (i < s.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(s[i])))
      ++i;
    return i - start;
  };
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t int_digits = digits();
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    frac_digits = digits();
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

PlainKind ClassifyPlain(absl::string_view s, int64_t* i, double* d, bool* b) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return PlainKind::kNull;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    *b = true;
    return PlainKind::kBool;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    *b = false;
    return PlainKind::kBool;
  }
  if (LooksLikeDecimalInt(s) && absl::SimpleAtoi(s, i)) return PlainKind::kInt;
  if (LooksLikeFloat(s) && absl::SimpleAtod(s, d) && std::isfinite(*d)) {
    return PlainKind::kDouble;
  }
  return PlainKind::kString;
}

bool IsPlain(const Node& n) { return n.Tag() == "?"; }

// Durations: one or more <number><unit> with units ms, s, m, h, d (24h),
// w (7d); "1h30m", "1.5h", "7d". No sign: every duration in a ruleset is a
// positive span.
bool ParseRulesetDuration(absl::string_view text, absl::Duration* out) {
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  if (text.empty()) return false;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() &&
           (absl::ascii_isdigit(static_cast<unsigned char>(text[i])) ||
            text[i] == '.')) {
      ++i;
    }
    if (i == start || i - start > 18) return false;
    double number;
    if (!absl::SimpleAtod(text.substr(start, i - start), &number) ||
        !std::isfinite(number) || number < 0) {
      return false;
    }
    absl::string_view unit;
    size_t unit_start = i;
    while (i < text.size() &&
           absl::ascii_isalpha(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    unit = text.substr(unit_start, i - unit_start);
    absl::Duration scale;
    if (unit == "ms") {
      scale = absl::Milliseconds(1);
    } else if (unit == "s") {
      scale = absl::Seconds(1);
    } else if (unit == "m") {
      scale = absl::Minutes(1);
    } else if (unit == "h") {
      scale = absl::Hours(1);
    } else if (unit == "d") {
      scale = absl::Hours(24);
    } else if (unit == "w") {
      scale = absl::Hours(24 * 7);
    } else {
      return false;
    }
    // Bound before multiplying so absurd numbers cannot overflow.
    if (number > 1e12) return false;
    total += scale * number;
  }
  *out = total;
  return true;
}

std::string FormatRulesetDuration(absl::Duration d) {
  return absl::FormatDuration(d);
}

// ---- Positions -------------------------------------------------------------

class TextIndex {
 public:
  explicit TextIndex(absl::string_view text) : text_(text) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  Location At(size_t offset) const {
    offset = std::min(offset, text_.size());
    auto it =
        std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_start = *(it - 1);
    int column = 1;
    for (size_t i = line_start; i < offset; ++i) {
      // Count code points: skip UTF-8 continuation bytes.
      if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++column;
    }
    return {static_cast<int>(it - line_starts_.begin()), column};
  }

 private:
  absl::string_view text_;
  std::vector<size_t> line_starts_;
};

// ---- The loader ------------------------------------------------------------

struct Diagnostic {
  Location location;
  std::string message;
};

// One key/value pair of a mapping being read.
struct Entry {
  std::string key;
  Node value;
  Location key_location;
  Location location;  // of the value (of the key when the value is empty)
};

// A mapping whose keys were checked against a schema.
class Fields {
 public:
  bool ok() const { return ok_; }
  const Entry* Find(absl::string_view key) const {
    for (const Entry& e : entries_) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
  const std::vector<Entry>& entries() const { return entries_; }
  Location location() const { return location_; }

 private:
  friend class Loader;
  bool ok_ = false;
  std::vector<Entry> entries_;
  Location location_;
};

enum class Want { kBool, kString, kNumber };

// A reference to an id awaiting resolution, with where it was written.
struct Ref {
  std::string id;
  Location location;
};

class Loader {
 public:
  Loader(absl::string_view text, absl::string_view name)
      : text_(text), name_(name), index_(text) {}

  absl::StatusOr<std::shared_ptr<const Ruleset>> Load();

 private:
  // Diagnostics.
  void Error(Location location, std::string message) {
    diagnostics_.push_back({location, std::move(message)});
  }
  Location Loc(const Node& node) const;
  Location EntryLocation(const Node& key, const Node& value) const;

  // Structure.
  bool CheckTree(const Node& node, int depth);
  Fields ReadMap(const Node& node, Location location, absl::string_view what,
                 std::initializer_list<absl::string_view> keys,
                 std::initializer_list<absl::string_view> required = {});
  // Calls fn(item, location) for each item of a sequence; false (after an
  // error) when the entry is not a sequence or has more than `max` items.
  template <typename Fn>
  bool ForEachItem(const Entry& e, int max, absl::string_view items, Fn fn);

  // Typed values.
  bool ReadString(const Entry& e, std::string* out);
  bool ReadId(const Entry& e, std::string* out);
  bool ReadInt(const Entry& e, int64_t lo, int64_t hi, int64_t* out);
  bool ReadDouble(const Entry& e, double lo, double hi, double* out,
                  bool lo_exclusive = false);
  bool ReadBool(const Entry& e, bool* out);
  bool ReadDuration(const Entry& e, absl::Duration* out);
  bool ReadRefs(const Entry& e, std::vector<Ref>* out);
  bool ReadExpression(const Entry& e, const cel::Environment& env, Want want,
                      Expression* out);
  void ReadRenamedPhases(const Entry& e);
  void ReadRetention(const Entry& e);
  void ReadIdentity(const Entry& e);
  // Fills expr->conjuncts (explanations of action conditions).
  void AddConjuncts(const cel::Environment& env, Expression* expr);
  bool ReadLimit(const Node& node, Location location, absl::string_view what,
                 bool allow_count_on, Limit* out);
  bool ReadLimits(const Entry& e, absl::string_view what,
                  std::vector<Limit>* out);
  // `what` names the key in messages ("content", "constants").
  bool ToJson(const Node& node, int depth, absl::string_view what,
              nlohmann::json* out);
  bool ToValue(const Node& node, cel::Value* out);

  // A did-you-mean for CEL's "undeclared reference to 'x'" and "undefined
  // field 'x' on type 't'" messages, from the names the context declares.
  std::string HintFor(absl::string_view message, const cel::Environment& env);

  // Resolution against declared ids; -1 (after an error) when unknown.
  int Resolve(absl::string_view kind,
              const absl::flat_hash_map<std::string, int>& index,
              const std::vector<std::string>& ids, const Ref& ref);
  std::vector<int> ResolveAll(
      absl::string_view kind,
      const absl::flat_hash_map<std::string, int>& index,
      const std::vector<std::string>& ids, const std::vector<Ref>& refs,
      absl::string_view list_name);
  int ResolvePhase(const Ref& r) {
    return Resolve("phase", phase_index_, phase_ids_, r);
  }
  int ResolveChannel(const Ref& r) {
    return Resolve("channel", channel_index_, channel_ids_, r);
  }
  int ResolvePlacement(const Ref& r) {
    return Resolve("placement", placement_index_, placement_ids_, r);
  }
  int ResolveAction(const Ref& r) {
    return Resolve("action", action_index_, action_ids_, r);
  }
  // Registers an id; false (after an error) when already declared.
  bool Declare(absl::string_view kind, const std::string& id, Location location,
               absl::flat_hash_map<std::string, int>* index,
               std::vector<std::string>* ids);

  // Sections.
  void ReadTopLevel(const Node& root);
  void ReadNamedList(const Entry& e, absl::string_view what, int max,
                     absl::flat_hash_map<std::string, int>* index,
                     std::vector<std::string>* ids,
                     std::vector<std::string>* descriptions);
  void ReadConstants(const Entry& e);
  void ReadCounters(const Entry& e);
  void ReadTransitions(const Entry& e);
  void ReadPlacements(const Entry& e);
  void ReadActions(const Entry& e);
  void ReadContextWeights(const Entry& e);
  void ReadPolicies(const Entry& e);
  void ReadExperiments(const Entry& e);
  void ReadFollowUps(const Entry& e);

  absl::string_view text_;
  std::string name_;
  TextIndex index_;
  YamlDocument document_;  // owns every Node the loader holds
  std::vector<Diagnostic> diagnostics_;
  int64_t nodes_visited_ = 0;
  size_t expression_bytes_ = 0;
  size_t content_bytes_ = 0;

  std::shared_ptr<Ruleset> ruleset_ = std::make_shared<Ruleset>();
  std::shared_ptr<const Environments> envs_;
  absl::flat_hash_map<std::string, int> phase_index_, channel_index_,
      placement_index_, action_index_, counter_index_, experiment_index_,
      follow_up_index_, constant_index_;
  std::vector<std::string> phase_ids_, channel_ids_, placement_ids_,
      action_ids_, counter_ids_, experiment_ids_, follow_up_ids_, constant_ids_;
  absl::flat_hash_map<std::string, Location> declared_at_;
  absl::flat_hash_set<std::string> groups_;
  // Placement fallbacks name actions, which come later in the file.
  std::vector<std::pair<int, Ref>> pending_fallbacks_;
  // The `on` entry of each counter in ruleset_->counters, compiled once the
  // environments (which need every counter id) exist.
  std::vector<std::optional<Entry>> counter_on_;
};

Location Loader::Loc(const Node& node) const {
  const YAML::Mark mark = node.Mark();
  if (mark.pos >= 0) return index_.At(static_cast<size_t>(mark.pos));
  if (mark.line >= 0) return {mark.line + 1, mark.column + 1};
  return {1, 1};
}

Location Loader::EntryLocation(const Node& key, const Node& value) const {
  // yaml-cpp marks an empty value ("key:" then a newline) at the next token,
  // often on a later line; the key is the better place to point at.
  if (value.IsNull()) {
    const YAML::Mark mark = value.Mark();
    if (mark.pos < 0 || static_cast<size_t>(mark.pos) >= text_.size()) {
      return Loc(key);
    }
    char c = text_[mark.pos];
    if (c != '~' && c != 'n' && c != 'N') return Loc(key);
  }
  return Loc(value);
}

bool Loader::CheckTree(const Node& node, int depth) {
  if (++nodes_visited_ > kMaxYamlNodes) {
    Error(Loc(node),
          absl::StrCat("document too large: more than ", kMaxYamlNodes,
                       " nodes (aliases count every time they "
                       "are used)"));
    return false;
  }
  if (depth > kMaxYamlDepth) {
    Error(Loc(node), absl::StrCat("nesting deeper than ", kMaxYamlDepth,
                                  " levels (through aliases)"));
    return false;
  }
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!CheckTree(it->first, depth + 1)) return false;
      if (!CheckTree(it->second, depth + 1)) return false;
    }
  } else if (node.IsSequence()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!CheckTree(*it, depth + 1)) return false;
    }
  }
  return true;
}

Fields Loader::ReadMap(const Node& node, Location location,
                       absl::string_view what,
                       std::initializer_list<absl::string_view> keys,
                       std::initializer_list<absl::string_view> required) {
  Fields fields;
  fields.location_ = location;
  if (!node.IsMap()) {
    Error(location, absl::StrCat(what, ": expected a mapping"));
    return fields;
  }
  fields.ok_ = true;
  absl::flat_hash_map<std::string, Location> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Node& key = it->first;
    Location key_location = Loc(key);
    if (!key.IsScalar()) {
      Error(key_location, absl::StrCat("keys in ", what, " must be strings"));
      continue;
    }
    std::string k = key.Scalar();
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
      Error(key_location, absl::StrCat("unknown key ", Quote(k), " in ", what,
                                       DidYouMean(k, keys)));
      continue;
    }
    auto [prev, inserted] = seen.emplace(k, key_location);
    if (!inserted) {
      Error(key_location, absl::StrCat("duplicate key ", Quote(k), " in ", what,
                                       " (first at ", prev->second.line, ":",
                                       prev->second.column, ")"));
      continue;
    }
    fields.entries_.push_back(
        {k, it->second, key_location, EntryLocation(key, it->second)});
  }
  for (absl::string_view r : required) {
    if (fields.Find(r) == nullptr && !seen.contains(std::string(r))) {
      Error(location, absl::StrCat("missing required key '", r, "' in ", what));
    }
  }
  return fields;
}

template <typename Fn>
bool Loader::ForEachItem(const Entry& e, int max, absl::string_view items,
                         Fn fn) {
  if (!e.value.IsSequence()) {
    Error(e.location, absl::StrCat(e.key, ": expected a list"));
    return false;
  }
  if (static_cast<int64_t>(e.value.size()) > max) {
    Error(e.location, absl::StrCat(e.key, ": at most ", max, " ", items,
                                   " (found ", e.value.size(), ")"));
    return false;
  }
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    fn(*it, Loc(*it));
  }
  return true;
}

bool Loader::ReadString(const Entry& e, std::string* out) {
  if (!e.value.IsScalar()) {
    Error(e.location, absl::StrCat(e.key, ": expected a string"));
    return false;
  }
  *out = e.value.Scalar();
  return true;
}

bool Loader::ReadId(const Entry& e, std::string* out) {
  if (!e.value.IsScalar() || e.value.Scalar().empty()) {
    Error(e.location, absl::StrCat(e.key, ": expected an id"));
    return false;
  }
  if (!IsValidId(e.value.Scalar())) {
    Error(e.location,
          absl::StrCat(e.key, ": invalid id ", Quote(e.value.Scalar()), " (1-",
                       kMaxIdBytes,
                       " letters, digits, '_', '-', '.' or ':', starting "
                       "with a letter or digit)"));
    return false;
  }
  *out = e.value.Scalar();
  return true;
}

bool Loader::ReadInt(const Entry& e, int64_t lo, int64_t hi, int64_t* out) {
  int64_t i = 0;
  double d = 0;
  bool b = false;
  if (!e.value.IsScalar() || !IsPlain(e.value) ||
      ClassifyPlain(e.value.Scalar(), &i, &d, &b) != PlainKind::kInt) {
    Error(e.location, absl::StrCat(e.key, ": expected an integer"));
    return false;
  }
  if (i < lo || i > hi) {
    std::string range = hi >= std::numeric_limits<int32_t>::max()
                            ? absl::StrCat("at least ", lo)
                            : absl::StrCat("between ", lo, " and ", hi);
    Error(e.location,
          absl::StrCat(e.key, ": must be ", range, " (found ", i, ")"));
    return false;
  }
  *out = i;
  return true;
}

bool Loader::ReadDouble(const Entry& e, double lo, double hi, double* out,
                        bool lo_exclusive) {
  int64_t i = 0;
  double d = 0;
  bool b = false;
  PlainKind kind = PlainKind::kString;
  if (e.value.IsScalar() && IsPlain(e.value)) {
    kind = ClassifyPlain(e.value.Scalar(), &i, &d, &b);
  }
  if (kind == PlainKind::kInt) {
    d = static_cast<double>(i);
  } else if (kind != PlainKind::kDouble) {
    Error(e.location, absl::StrCat(e.key, ": expected a number"));
    return false;
  }
  if (d < lo || d > hi || (lo_exclusive && d == lo)) {
    std::string range =
        hi == std::numeric_limits<double>::max()
            ? absl::StrCat(lo_exclusive ? "greater than " : "at least ", lo)
        : lo_exclusive ? absl::StrCat("greater than ", lo, " and at most ", hi)
                       : absl::StrCat("between ", lo, " and ", hi);
    Error(e.location, absl::StrCat(e.key, ": must be ", range, " (found ",
                                   e.value.Scalar(), ")"));
    return false;
  }
  *out = d;
  return true;
}

bool Loader::ReadBool(const Entry& e, bool* out) {
  int64_t i = 0;
  double d = 0;
  if (!e.value.IsScalar() || !IsPlain(e.value) ||
      ClassifyPlain(e.value.Scalar(), &i, &d, out) != PlainKind::kBool) {
    Error(e.location, absl::StrCat(e.key, ": expected true or false"));
    return false;
  }
  return true;
}

bool Loader::ReadDuration(const Entry& e, absl::Duration* out) {
  if (!e.value.IsScalar()) {
    Error(e.location, absl::StrCat(e.key, ": expected a duration such as 24h"));
    return false;
  }
  const std::string& s = e.value.Scalar();
  absl::Duration d;
  if (!ParseRulesetDuration(s, &d)) {
    std::string hint;
    if (LooksLikeDecimalInt(s)) hint = " (missing unit: ms, s, m, h, d or w)";
    Error(e.location,
          absl::StrCat(e.key, ": invalid duration ", Quote(s), hint));
    return false;
  }
  if (d <= absl::ZeroDuration()) {
    Error(e.location,
          absl::StrCat(e.key, ": must be positive (found ", Quote(s), ")"));
    return false;
  }
  if (d > kMaxDuration) {
    Error(e.location, absl::StrCat(e.key, ": must be at most ",
                                   absl::ToInt64Hours(kMaxDuration) / 24,
                                   "d (found ", Quote(s), ")"));
    return false;
  }
  *out = d;
  return true;
}

bool Loader::ReadRefs(const Entry& e, std::vector<Ref>* out) {
  out->clear();
  // A single id is accepted where a list is expected: `phases: retention`.
  if (e.value.IsScalar()) {
    out->push_back({e.value.Scalar(), e.location});
    return true;
  }
  if (!e.value.IsSequence()) {
    Error(e.location, absl::StrCat(e.key, ": expected a list of ids"));
    return false;
  }
  bool ok = true;
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    if (!it->IsScalar()) {
      Error(Loc(*it), absl::StrCat(e.key, ": expected an id"));
      ok = false;
      continue;
    }
    out->push_back({it->Scalar(), Loc(*it)});
  }
  return ok;
}

bool Loader::ReadExpression(const Entry& e, const cel::Environment& env,
                            Want want, Expression* out) {
  if (!e.value.IsScalar() || e.value.Scalar().empty()) {
    Error(e.location, absl::StrCat(e.key, ": expected an expression"));
    return false;
  }
  const std::string& source = e.value.Scalar();
  if (source.size() > kMaxExpressionBytes) {
    Error(e.location, absl::StrCat(e.key, ": expression longer than ",
                                   kMaxExpressionBytes, " bytes"));
    return false;
  }
  expression_bytes_ += source.size();
  if (expression_bytes_ > kMaxRulesetBytes) {
    // Only reachable through aliases: the file itself is at most this big.
    if (expression_bytes_ - source.size() <= kMaxRulesetBytes) {
      Error(e.location,
            absl::StrCat("expressions total more than ", kMaxRulesetBytes,
                         " bytes (aliases count every time they are used)"));
    }
    return false;
  }
  out->source = source;
  out->location = e.location;
  cel::CompileResult result = cel::Compile(source, env);
  if (!result.ok()) {
    // Map each issue's position inside the expression to the file.
    const YAML::Mark mark = e.value.Mark();
    std::vector<size_t> offsets;
    if (mark.pos >= 0) {
      offsets = AlignScalar(text_, static_cast<size_t>(mark.pos), source);
    }
    for (const cel::Issue& issue : result.issues) {
      Location where = e.location;
      if (!offsets.empty()) {
        size_t offset = OffsetOfPosition(source, issue.position.line,
                                         issue.position.column);
        size_t text_offset =
            offset < offsets.size() ? offsets[offset] : offsets.back() + 1;
        where = index_.At(text_offset);
      }
      Error(where, absl::StrCat(e.key, ": ", issue.message,
                                HintFor(issue.message, env)));
    }
    if (result.issues.empty()) {
      Error(e.location, absl::StrCat(e.key, ": invalid expression"));
    }
    return false;
  }
  const cel::Type& type = result.program->result_type();
  bool type_ok = true;
  absl::string_view expected;
  switch (want) {
    case Want::kBool:
      type_ok = type.IsDyn() || type.kind() == cel::Type::Kind::kBool;
      expected = "bool";
      break;
    case Want::kString:
      type_ok = type.IsDyn() || type.kind() == cel::Type::Kind::kString;
      expected = "string";
      break;
    case Want::kNumber:
      type_ok = type.IsDyn() || type.kind() == cel::Type::Kind::kInt ||
                type.kind() == cel::Type::Kind::kUint ||
                type.kind() == cel::Type::Kind::kDouble;
      expected = "a number (int, uint or double)";
      break;
  }
  if (!type_ok) {
    Error(e.location,
          absl::StrCat(e.key, ": expected ", want == Want::kNumber ? "" : "a ",
                       expected, want == Want::kNumber ? "" : " expression",
                       ", found ", type.DebugString()));
    return false;
  }
  out->program = std::move(result.program);
  return true;
}

void Loader::AddConjuncts(const cel::Environment& env, Expression* expr) {
  std::vector<Expression> parts;
  for (std::string& source : SplitConjuncts(expr->source)) {
    cel::CompileResult result = cel::Compile(source, env);
    // A piece that does not compile alone (it cannot, having been part of a
    // valid expression, but be safe): explain with the whole condition.
    if (!result.ok()) return;
    Expression part;
    part.source = std::move(source);
    part.location = expr->location;
    part.program = std::move(result.program);
    parts.push_back(std::move(part));
  }
  expr->conjuncts = std::move(parts);
}

bool Loader::ReadLimit(const Node& node, Location location,
                       absl::string_view what, bool allow_count_on,
                       Limit* out) {
  Fields f =
      allow_count_on
          ? ReadMap(node, location, what, {"max", "per", "count_on"}, {"max"})
          : ReadMap(node, location, what, {"max", "per"}, {"max"});
  if (!f.ok()) return false;
  out->location = location;
  bool ok = f.Find("max") != nullptr;
  if (const Entry* e = f.Find("max")) {
    ok &= ReadInt(*e, 1, std::numeric_limits<int32_t>::max(), &out->max);
  }
  if (const Entry* e = f.Find("per")) {
    absl::Duration d;
    if (ReadDuration(*e, &d)) {
      out->per = d;
    } else {
      ok = false;
    }
  }
  if (const Entry* e = f.Find("count_on")) {
    std::string s;
    if (ReadString(*e, &s)) {
      if (s == "served") {
        out->count_on = Limit::CountOn::kServed;
      } else if (s == "impression") {
        out->count_on = Limit::CountOn::kImpression;
      } else {
        Error(e->location, absl::StrCat("count_on: expected 'served' or "
                                        "'impression', found ",
                                        Quote(s)));
        ok = false;
      }
    } else {
      ok = false;
    }
  }
  return ok;
}

bool Loader::ReadLimits(const Entry& e, absl::string_view what,
                        std::vector<Limit>* out) {
  bool ok = true;
  ForEachItem(e, 100, "caps", [&](const Node& item, Location location) {
    Limit limit;
    if (ReadLimit(item, location, what, /*allow_count_on=*/true, &limit)) {
      if (limit.per.has_value() && limit.max > kMaxWindowedCap) {
        Error(location,
              absl::StrCat("max: a windowed cap allows at most ",
                           kMaxWindowedCap, " (the touches kept per contact)"));
        ok = false;
        return;
      }
      out->push_back(limit);
    } else {
      ok = false;
    }
  });
  return ok;
}

bool Loader::ToJson(const Node& node, int depth, absl::string_view what,
                    nlohmann::json* out) {
  if (depth > kMaxYamlDepth) return false;  // CheckTree already reported it
  if (node.IsMap()) {
    *out = nlohmann::json::object();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        Error(Loc(it->first), absl::StrCat(what, ": keys must be strings"));
        return false;
      }
      const std::string& key = it->first.Scalar();
      if (out->contains(key)) {
        Error(Loc(it->first),
              absl::StrCat(what, ": duplicate key ", Quote(key)));
        return false;
      }
      nlohmann::json value;
      if (!ToJson(it->second, depth + 1, what, &value)) return false;
      (*out)[key] = std::move(value);
    }
    return true;
  }
  if (node.IsSequence()) {
    *out = nlohmann::json::array();
    for (auto it = node.begin(); it != node.end(); ++it) {
      nlohmann::json value;
      if (!ToJson(*it, depth + 1, what, &value)) return false;
      out->push_back(std::move(value));
    }
    return true;
  }
  if (node.IsNull()) {
    *out = nullptr;
    return true;
  }
  const std::string& s = node.Scalar();
  if (!IsPlain(node)) {
    *out = s;
    return true;
  }
  int64_t i = 0;
  double d = 0;
  bool b = false;
  switch (ClassifyPlain(s, &i, &d, &b)) {
    case PlainKind::kNull:
      *out = nullptr;
      break;
    case PlainKind::kBool:
      *out = b;
      break;
    case PlainKind::kInt:
      *out = i;
      break;
    case PlainKind::kDouble:
      *out = d;
      break;
    case PlainKind::kString:
      *out = s;
      break;
  }
  return true;
}

bool Loader::ToValue(const Node& node, cel::Value* out) {
  // Constants take the same YAML values as content; only their CEL form
  // differs, so convert through JSON (PlainJsonToValue owns the result).
  nlohmann::json json;
  if (!ToJson(node, 0, "constants", &json)) return false;
  *out = PlainJsonToValue(json);
  return true;
}

// The first '...'-quoted word of `s` after `from`, or "".
std::string QuotedAfter(absl::string_view s, size_t from) {
  size_t open = s.find('\'', from);
  if (open == absl::string_view::npos) return "";
  size_t close = s.find('\'', open + 1);
  if (close == absl::string_view::npos) return "";
  return std::string(s.substr(open + 1, close - open - 1));
}

std::string Loader::HintFor(absl::string_view message,
                            const cel::Environment& env) {
  constexpr absl::string_view kUndeclared = "undeclared reference to ";
  constexpr absl::string_view kUndefined = "undefined field ";
  std::vector<std::string> candidates;
  std::string word;
  if (absl::StartsWith(message, kUndeclared)) {
    word = QuotedAfter(message, 0);
    // A variable of another context: say which ones this context has.
    for (absl::string_view v :
         {kEventVar, kContactVar, kContextVar, kNowVar, kActionVar,
          kPropensityVar, kContextWeightVar}) {
      if (word == v) {
        std::vector<std::string> names;
        for (const auto& var : env.variables()) names.push_back(var.name);
        return absl::StrCat(" (this expression sees ",
                            absl::StrJoin(names, ", "), ")");
      }
    }
    for (const auto& v : env.variables()) candidates.push_back(v.name);
    for (const std::string& c : constant_ids_) candidates.push_back(c);
  } else if (absl::StartsWith(message, kUndefined)) {
    word = QuotedAfter(message, 0);
    size_t on = message.find(" on type ");
    if (on == absl::string_view::npos) return "";
    std::string type = QuotedAfter(message, on);
    cel::Type t;
    if (type == "counts") {
      t = CountsType(counter_ids_);
    } else if (type == "contact") {
      t = ContactType(counter_ids_);
    } else if (type == "event") {
      t = EventType();
    } else if (type == "cx") {
      t = CxType();
    } else if (type == "action") {
      t = ActionType();
    } else {
      return "";
    }
    for (const auto& [name, field_type] : t.fields())
      candidates.push_back(name);
  }
  if (word.empty() || message.find("did you mean") != absl::string_view::npos) {
    return "";
  }
  return DidYouMean(word, candidates);
}

int Loader::Resolve(absl::string_view kind,
                    const absl::flat_hash_map<std::string, int>& index,
                    const std::vector<std::string>& ids, const Ref& ref) {
  auto it = index.find(ref.id);
  if (it != index.end()) return it->second;
  Error(ref.location, absl::StrCat("unknown ", kind, " ", Quote(ref.id),
                                   DidYouMean(ref.id, ids)));
  return -1;
}

std::vector<int> Loader::ResolveAll(
    absl::string_view kind, const absl::flat_hash_map<std::string, int>& index,
    const std::vector<std::string>& ids, const std::vector<Ref>& refs,
    absl::string_view list_name) {
  std::vector<int> out;
  absl::flat_hash_set<int> seen;
  for (const Ref& ref : refs) {
    int i = Resolve(kind, index, ids, ref);
    if (i < 0) continue;
    if (!seen.insert(i).second) {
      Error(ref.location,
            absl::StrCat(list_name, ": duplicate ", kind, " ", Quote(ref.id)));
      continue;
    }
    out.push_back(i);
  }
  return out;
}

bool Loader::Declare(absl::string_view kind, const std::string& id,
                     Location location,
                     absl::flat_hash_map<std::string, int>* index,
                     std::vector<std::string>* ids) {
  std::string key = absl::StrCat(kind, "\x1f", id);
  auto [it, inserted] = declared_at_.emplace(key, location);
  if (!inserted) {
    Error(location, absl::StrCat("duplicate ", kind, " id ", Quote(id),
                                 " (first defined at ", it->second.line, ":",
                                 it->second.column, ")"));
    return false;
  }
  index->emplace(id, static_cast<int>(ids->size()));
  ids->push_back(id);
  return true;
}

// ---- Sections
// ----------------------------------------------------------------

void Loader::ReadNamedList(const Entry& e, absl::string_view what, int max,
                           absl::flat_hash_map<std::string, int>* index,
                           std::vector<std::string>* ids,
                           std::vector<std::string>* descriptions) {
  if (e.value.IsSequence() && e.value.size() == 0) {
    Error(e.location, absl::StrCat(e.key, ": at least one ", what));
    return;
  }
  ForEachItem(e, max, e.key, [&](const Node& item, Location location) {
    std::string id, description;
    Location id_location = location;
    if (item.IsScalar()) {
      Entry id_entry{"id", item, location, location};
      if (!ReadId(id_entry, &id)) return;
    } else {
      Fields f = ReadMap(item, location, what, {"id", "description"}, {"id"});
      if (!f.ok()) return;
      const Entry* id_entry = f.Find("id");
      if (id_entry == nullptr || !ReadId(*id_entry, &id)) return;
      id_location = id_entry->location;
      if (const Entry* d = f.Find("description")) ReadString(*d, &description);
    }
    if (Declare(what, id, id_location, index, ids)) {
      descriptions->push_back(description);
    }
  });
}

void Loader::ReadConstants(const Entry& e) {
  if (!e.value.IsMap()) {
    Error(e.location, "constants: expected a mapping of names to values");
    return;
  }
  if (static_cast<int>(e.value.size()) > kMaxConstants) {
    Error(e.location, absl::StrCat("constants: at most ", kMaxConstants,
                                   " constants (found ", e.value.size(), ")"));
    return;
  }
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    Location location = Loc(it->first);
    if (!it->first.IsScalar()) {
      Error(location, "constants: names must be strings");
      continue;
    }
    const std::string& name = it->first.Scalar();
    if (!IsIdentifier(name)) {
      Error(location, absl::StrCat("constants: invalid name ", Quote(name),
                                   " (letters, digits and '_', not starting "
                                   "with a digit)"));
      continue;
    }
    if (IsReservedName(name)) {
      Error(location, absl::StrCat("constants: ", Quote(name),
                                   " is reserved and cannot name a constant"));
      continue;
    }
    cel::Value value;
    if (!ToValue(it->second, &value)) continue;
    if (Declare("constant", name, location, &constant_index_, &constant_ids_)) {
      ruleset_->constants.emplace_back(name, value.Own());
    }
  }
}

void Loader::ReadCounters(const Entry& e) {
  // Counters come first among the expressions: the contact type (and so
  // every environment) needs their ids. Their own `on` expressions are
  // compiled afterwards (see Load).
  ForEachItem(
      e, kMaxCounters, "counters", [&](const Node& item, Location location) {
        Fields f = ReadMap(item, location, "counter",
                           {"id", "on", "window", "bucket", "description"},
                           {"id", "on"});
        if (!f.ok()) return;
        Counter counter;
        counter.location = location;
        const Entry* id = f.Find("id");
        if (id == nullptr) return;
        if (!id->value.IsScalar() || !IsIdentifier(id->value.Scalar())) {
          Error(id->location,
                absl::StrCat(
                    "id: invalid counter id ",
                    Quote(id->value.IsScalar() ? id->value.Scalar() : ""),
                    " (letters, digits and '_', not starting with a "
                    "digit: it is used as contact.counts.<id>)"));
          return;
        }
        counter.id = id->value.Scalar();
        if (!Declare("counter", counter.id, id->location, &counter_index_,
                     &counter_ids_)) {
          return;
        }
        const Entry* window = f.Find("window");
        const Entry* bucket = f.Find("bucket");
        absl::Duration w, b;
        bool window_ok = window != nullptr && ReadDuration(*window, &w);
        bool bucket_ok = bucket != nullptr && ReadDuration(*bucket, &b);
        if (bucket != nullptr && window == nullptr) {
          Error(bucket->location, "bucket: requires 'window'");
        }
        if (window_ok && bucket == nullptr) {
          // Hourly buckets while they fit, else daily.
          b = w <= absl::Hours(kMaxWindowBuckets) ? absl::Hours(1)
                                                  : absl::Hours(24);
          bucket_ok = true;
        }
        if (window_ok && bucket_ok) {
          absl::Duration remainder;
          int64_t buckets = absl::IDivDuration(w, b, &remainder);
          const Entry* at = bucket != nullptr ? bucket : window;
          if (b > w) {
            Error(at->location, "bucket: must not be longer than the window");
          } else if (remainder != absl::ZeroDuration()) {
            Error(at->location,
                  absl::StrCat("window: ", window->value.Scalar(),
                               " is not a whole number of buckets of ",
                               FormatRulesetDuration(b)));
          } else if (buckets > kMaxWindowBuckets) {
            Error(at->location,
                  absl::StrCat("window: ", window->value.Scalar(),
                               " in buckets of ", FormatRulesetDuration(b),
                               " is ", buckets, " buckets (at most ",
                               kMaxWindowBuckets, "); use longer buckets"));
          } else {
            counter.window = w;
            counter.bucket = b;
          }
        }
        if (const Entry* d = f.Find("description")) {
          std::string ignored;
          ReadString(*d, &ignored);
        }
        counter_on_.push_back(f.Find("on") != nullptr
                                  ? std::optional<Entry>(*f.Find("on"))
                                  : std::nullopt);
        ruleset_->counters.push_back(std::move(counter));
      });
}

void Loader::ReadTransitions(const Entry& e) {
  ForEachItem(e, kMaxTransitions, "transitions",
              [&](const Node& item, Location location) {
                Fields f = ReadMap(item, location, "transition",
                                   {"to", "from", "when", "description"},
                                   {"to", "when"});
                if (!f.ok()) return;
                Transition t;
                t.location = location;
                if (const Entry* to = f.Find("to")) {
                  std::string id;
                  if (ReadString(*to, &id))
                    t.to = ResolvePhase({id, to->location});
                }
                if (const Entry* from = f.Find("from")) {
                  std::vector<Ref> refs;
                  if (ReadRefs(*from, &refs)) {
                    if (refs.empty()) {
                      Error(from->location,
                            "from: at least one phase (omit the key for any "
                            "phase)");
                    }
                    t.from = ResolveAll("phase", phase_index_, phase_ids_, refs,
                                        "from");
                    std::sort(t.from.begin(), t.from.end());
                  }
                }
                if (const Entry* when = f.Find("when")) {
                  ReadExpression(*when, envs_->event(), Want::kBool, &t.when);
                }
                if (const Entry* d = f.Find("description")) {
                  std::string ignored;
                  ReadString(*d, &ignored);
                }
                ruleset_->transitions.push_back(std::move(t));
              });
}

void Loader::ReadPlacements(const Entry& e) {
  ForEachItem(
      e, kMaxPlacements, "placements",
      [&](const Node& item, Location location) {
        Fields f = ReadMap(item, location, "placement",
                           {"id", "channel", "fallback", "max_results",
                            "one_per_group", "ranking", "description"},
                           {"id", "channel"});
        if (!f.ok()) return;
        Placement p;
        p.location = location;
        const Entry* id = f.Find("id");
        if (id == nullptr || !ReadId(*id, &p.id)) return;
        if (!Declare("placement", p.id, id->location, &placement_index_,
                     &placement_ids_)) {
          return;
        }
        if (const Entry* ch = f.Find("channel")) {
          std::string c;
          if (ReadString(*ch, &c))
            p.channel = ResolveChannel({c, ch->location});
        }
        if (const Entry* fb = f.Find("fallback")) {
          std::string a;
          if (ReadString(*fb, &a)) {
            pending_fallbacks_.push_back(
                {static_cast<int>(ruleset_->placements.size()),
                 {a, fb->location}});
          }
        }
        if (const Entry* m = f.Find("max_results")) {
          int64_t v;
          if (ReadInt(*m, 1, 1000, &v)) p.max_results = static_cast<int>(v);
        }
        if (const Entry* g = f.Find("one_per_group"))
          ReadBool(*g, &p.one_per_group);
        if (const Entry* r = f.Find("ranking")) {
          Expression expr;
          if (ReadExpression(*r, envs_->ranking(), Want::kNumber, &expr)) {
            p.ranking = std::move(expr);
          }
        }
        ruleset_->placements.push_back(std::move(p));
      });
}

void Loader::ReadActions(const Entry& e) {
  ForEachItem(
      e, kMaxActions, "actions", [&](const Node& item, Location location) {
        Fields f = ReadMap(
            item, location, "action",
            {"id", "kind", "description", "phases", "placements", "when",
             "priority", "value", "lever", "propensity", "adaptive", "group",
             "content", "caps", "budget", "dismiss_cooldown"},
            {"id", "kind", "placements"});
        if (!f.ok()) return;
        Action a;
        a.location = location;
        const Entry* id = f.Find("id");
        if (id == nullptr || !ReadId(*id, &a.id)) return;
        if (!Declare("action", a.id, id->location, &action_index_,
                     &action_ids_)) {
          return;
        }
        if (const Entry* k = f.Find("kind")) {
          std::string kind;
          if (ReadString(*k, &kind) && !ParseActionKind(kind, &a.kind)) {
            Error(k->location,
                  absl::StrCat("kind: unknown action kind ", Quote(kind),
                               DidYouMean(kind, ActionKindNames()),
                               "; expected one of ",
                               absl::StrJoin(ActionKindNames(), ", ")));
          }
        }
        if (const Entry* d = f.Find("description"))
          ReadString(*d, &a.description);
        if (const Entry* ph = f.Find("phases")) {
          std::vector<Ref> refs;
          if (ReadRefs(*ph, &refs)) {
            if (refs.empty()) {
              Error(ph->location,
                    "phases: at least one phase (omit the key for "
                    "every phase)");
            }
            a.phases =
                ResolveAll("phase", phase_index_, phase_ids_, refs, "phases");
            std::sort(a.phases.begin(), a.phases.end());
          }
        } else {
          a.all_phases = true;
          for (int i = 0; i < static_cast<int>(phase_ids_.size()); ++i) {
            a.phases.push_back(i);
          }
        }
        if (const Entry* pl = f.Find("placements")) {
          std::vector<Ref> refs;
          if (ReadRefs(*pl, &refs)) {
            if (refs.empty())
              Error(pl->location, "placements: at least one placement");
            a.placements = ResolveAll("placement", placement_index_,
                                      placement_ids_, refs, "placements");
          }
        }
        if (const Entry* w = f.Find("when")) {
          Expression expr;
          if (ReadExpression(*w, envs_->condition(), Want::kBool, &expr)) {
            AddConjuncts(envs_->condition(), &expr);
            a.when = std::move(expr);
          }
        }
        if (const Entry* p = f.Find("priority")) {
          int64_t v;
          if (ReadInt(*p, kMinPriority, kMaxPriority, &v))
            a.priority = static_cast<int>(v);
        }
        constexpr double kHuge = std::numeric_limits<double>::max();
        if (const Entry* v = f.Find("value"))
          ReadDouble(*v, 0, kHuge, &a.value);
        if (const Entry* l = f.Find("lever"))
          ReadDouble(*l, 0, kHuge, &a.lever);
        if (const Entry* p = f.Find("propensity"))
          ReadDouble(*p, 0, 1, &a.propensity);
        if (const Entry* ad = f.Find("adaptive")) {
          if (ad->value.IsScalar()) {
            bool on = false;
            if (ReadBool(*ad, &on) && on) a.adaptive = Action::Adaptive{};
          } else {
            Fields af =
                ReadMap(ad->value, ad->location, "adaptive",
                        {"prior_successes", "prior_failures", "per_phase"});
            if (af.ok()) {
              Action::Adaptive adaptive;
              if (const Entry* s = af.Find("prior_successes")) {
                ReadDouble(*s, 0, std::numeric_limits<double>::max(),
                           &adaptive.prior_successes, true);
              }
              if (const Entry* s = af.Find("prior_failures")) {
                ReadDouble(*s, 0, std::numeric_limits<double>::max(),
                           &adaptive.prior_failures, true);
              }
              if (const Entry* s = af.Find("per_phase"))
                ReadBool(*s, &adaptive.per_phase);
              a.adaptive = adaptive;
            }
          }
        }
        if (const Entry* g = f.Find("group")) {
          if (ReadId(*g, &a.group)) groups_.insert(a.group);
        }
        if (const Entry* c = f.Find("content")) {
          if (!c->value.IsMap()) {
            Error(c->location, "content: expected a mapping");
          } else if (ToJson(c->value, 0, "content", &a.content)) {
            a.content_json = a.content.dump(
                -1, ' ', false, nlohmann::json::error_handler_t::replace);
            content_bytes_ += a.content_json.size();
            if (a.content_json.size() > kMaxContentBytes) {
              Error(c->location,
                    absl::StrCat("content: larger than ", kMaxContentBytes,
                                 " bytes as JSON"));
            } else if (content_bytes_ > 4 * kMaxRulesetBytes &&
                       content_bytes_ - a.content_json.size() <=
                           4 * kMaxRulesetBytes) {
              Error(c->location,
                    absl::StrCat("content: payloads total more than ",
                                 4 * kMaxRulesetBytes,
                                 " bytes (aliases count every time they are "
                                 "used)"));
            }
          }
        }
        if (const Entry* c = f.Find("caps")) ReadLimits(*c, "cap", &a.caps);
        if (const Entry* b = f.Find("budget")) {
          Limit limit;
          if (ReadLimit(b->value, b->location, "budget",
                        /*allow_count_on=*/false, &limit)) {
            a.budget = limit;
          }
        }
        if (const Entry* d = f.Find("dismiss_cooldown")) {
          absl::Duration v;
          if (ReadDuration(*d, &v)) a.dismiss_cooldown = v;
        }
        ruleset_->actions.push_back(std::move(a));
      });
}

void Loader::ReadContextWeights(const Entry& e) {
  ForEachItem(
      e, kMaxContextWeights, "context weights",
      [&](const Node& item, Location location) {
        Fields f = ReadMap(item, location, "context weight",
                           {"when", "weight", "phases", "actions", "groups",
                            "kinds", "description"},
                           {"when", "weight"});
        if (!f.ok()) return;
        ContextWeight w;
        w.location = location;
        if (const Entry* c = f.Find("when")) {
          ReadExpression(*c, envs_->condition(), Want::kBool, &w.when);
        }
        if (const Entry* c = f.Find("weight")) {
          ReadDouble(*c, 0, std::numeric_limits<double>::max(), &w.weight,
                     true);
        }
        std::vector<Ref> refs;
        if (const Entry* c = f.Find("phases");
            c != nullptr && ReadRefs(*c, &refs)) {
          w.phases =
              ResolveAll("phase", phase_index_, phase_ids_, refs, "phases");
        }
        if (const Entry* c = f.Find("actions");
            c != nullptr && ReadRefs(*c, &refs)) {
          w.actions =
              ResolveAll("action", action_index_, action_ids_, refs, "actions");
        }
        if (const Entry* c = f.Find("groups");
            c != nullptr && ReadRefs(*c, &refs)) {
          for (const Ref& r : refs) {
            if (!groups_.contains(r.id)) {
              Error(r.location, absl::StrCat("unknown group ", Quote(r.id),
                                             DidYouMean(r.id, groups_)));
            } else {
              w.groups.push_back(r.id);
            }
          }
        }
        if (const Entry* c = f.Find("kinds");
            c != nullptr && ReadRefs(*c, &refs)) {
          for (const Ref& r : refs) {
            ActionKind kind;
            if (ParseActionKind(r.id, &kind)) {
              w.kinds.push_back(kind);
            } else {
              Error(r.location,
                    absl::StrCat("unknown action kind ", Quote(r.id),
                                 DidYouMean(r.id, ActionKindNames())));
            }
          }
        }
        if (const Entry* d = f.Find("description")) {
          std::string ignored;
          ReadString(*d, &ignored);
        }
        ruleset_->context_weights.push_back(std::move(w));
      });
}

bool ParseClock(absl::string_view s, int* minutes) {
  // "HH:MM", 00:00 to 24:00.
  if (s.size() != 5 || s[2] != ':') return false;
  int h = 0, m = 0;
  if (!absl::SimpleAtoi(s.substr(0, 2), &h) ||
      !absl::SimpleAtoi(s.substr(3, 2), &m) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(s[0])) ||
      !absl::ascii_isdigit(static_cast<unsigned char>(s[3]))) {
    return false;
  }
  if (h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0)) return false;
  *minutes = h * 60 + m;
  return true;
}

void Loader::ReadPolicies(const Entry& e) {
  Policies& policies = ruleset_->policies;
  Fields f =
      ReadMap(e.value, e.location, "policies",
              {"caps", "channels", "timezone_attribute", "default_timezone"});
  if (!f.ok()) return;
  if (const Entry* c = f.Find("caps")) ReadLimits(*c, "cap", &policies.caps);
  if (const Entry* c = f.Find("timezone_attribute")) {
    std::string s;
    if (ReadString(*c, &s)) {
      if (s.empty()) {
        Error(c->location, "timezone_attribute: must not be empty");
      } else {
        policies.timezone_attribute = s;
      }
    }
  }
  if (const Entry* c = f.Find("default_timezone")) {
    std::string s;
    absl::TimeZone tz;
    if (ReadString(*c, &s)) {
      if (!absl::LoadTimeZone(s, &tz)) {
        Error(c->location,
              absl::StrCat("default_timezone: unknown time zone ", Quote(s)));
      } else {
        policies.default_timezone = s;
      }
    }
  }
  if (const Entry* c = f.Find("channels")) {
    if (!c->value.IsMap()) {
      Error(c->location,
            "channels: expected a mapping of channel ids to policies");
      return;
    }
    absl::flat_hash_set<int> seen;
    for (auto it = c->value.begin(); it != c->value.end(); ++it) {
      Location key_location = Loc(it->first);
      if (!it->first.IsScalar()) {
        Error(key_location, "channels: keys must be channel ids");
        continue;
      }
      int channel = ResolveChannel({it->first.Scalar(), key_location});
      if (channel >= 0 && !seen.insert(channel).second) {
        Error(key_location, absl::StrCat("channels: duplicate channel ",
                                         Quote(it->first.Scalar())));
        continue;
      }
      Location location = EntryLocation(it->first, it->second);
      Fields pf = ReadMap(
          it->second, location, "channel policy",
          {"caps", "consent_required", "dismiss_cooldown", "quiet_hours"});
      if (!pf.ok() || channel < 0) continue;
      ChannelPolicy& p = policies.channels[channel];
      p.location = location;
      if (const Entry* x = pf.Find("caps")) ReadLimits(*x, "cap", &p.caps);
      if (const Entry* x = pf.Find("consent_required")) {
        ReadBool(*x, &p.consent_required);
      }
      if (const Entry* x = pf.Find("dismiss_cooldown")) {
        absl::Duration d;
        if (ReadDuration(*x, &d)) p.dismiss_cooldown = d;
      }
      if (const Entry* x = pf.Find("quiet_hours")) {
        Fields qf = ReadMap(x->value, x->location, "quiet_hours",
                            {"start", "end"}, {"start", "end"});
        if (!qf.ok()) continue;
        QuietHours q;
        q.location = x->location;
        bool ok = qf.Find("start") != nullptr && qf.Find("end") != nullptr;
        for (const char* key : {"start", "end"}) {
          const Entry* t = qf.Find(key);
          if (t == nullptr) continue;
          int minutes = 0;
          if (!t->value.IsScalar() ||
              !ParseClock(t->value.Scalar(), &minutes)) {
            Error(t->location, absl::StrCat(key,
                                            ": expected a time of day "
                                            "as HH:MM, e.g. \"21:00\""));
            ok = false;
          } else if (key[0] == 's') {
            q.start_minute = minutes % 1440;
          } else {
            q.end_minute = minutes % 1440;
          }
        }
        if (ok && q.start_minute == q.end_minute) {
          Error(x->location, "quiet_hours: start and end must differ");
          ok = false;
        }
        if (ok) p.quiet_hours = q;
      }
    }
  }
}

void Loader::ReadExperiments(const Entry& e) {
  absl::flat_hash_map<int, std::string> placement_owner;
  absl::flat_hash_map<std::string, std::string> group_owner;
  ForEachItem(
      e, kMaxExperiments, "experiments",
      [&](const Node& item, Location location) {
        Fields f = ReadMap(item, location, "experiment",
                           {"id", "description", "placement", "group",
                            "holdout", "variants", "enabled"},
                           {"id", "variants"});
        if (!f.ok()) return;
        Experiment x;
        x.location = location;
        const Entry* id = f.Find("id");
        if (id == nullptr || !ReadId(*id, &x.id)) return;
        if (!Declare("experiment", x.id, id->location, &experiment_index_,
                     &experiment_ids_)) {
          return;
        }
        if (const Entry* d = f.Find("description"))
          ReadString(*d, &x.description);
        const Entry* placement = f.Find("placement");
        const Entry* group = f.Find("group");
        if ((placement == nullptr) == (group == nullptr)) {
          Error(location,
                absl::StrCat("experiment ", Quote(x.id),
                             ": exactly one of 'placement' or 'group' "
                             "is required"));
        } else if (placement != nullptr) {
          std::string p;
          if (ReadString(*placement, &p)) {
            x.placement = ResolvePlacement({p, placement->location});
            if (x.placement >= 0) {
              auto [it, inserted] = placement_owner.emplace(x.placement, x.id);
              if (!inserted) {
                Error(placement->location,
                      absl::StrCat("placement ", Quote(p),
                                   " is already in experiment ",
                                   Quote(it->second)));
              }
            }
          }
        } else {
          if (ReadString(*group, &x.group)) {
            if (!groups_.contains(x.group)) {
              Error(group->location,
                    absl::StrCat("unknown group ", Quote(x.group),
                                 DidYouMean(x.group, groups_)));
              x.group.clear();  // no scope: variant actions are not checked
            } else {
              auto [it, inserted] = group_owner.emplace(x.group, x.id);
              if (!inserted) {
                Error(group->location,
                      absl::StrCat("group ", Quote(x.group),
                                   " is already in experiment ",
                                   Quote(it->second)));
              }
            }
          }
        }
        if (const Entry* h = f.Find("holdout"))
          ReadDouble(*h, 0, 1, &x.holdout);
        if (const Entry* en = f.Find("enabled")) ReadBool(*en, &x.enabled);
        const Entry* variants = f.Find("variants");
        if (variants == nullptr) return;
        if (variants->value.IsSequence() && variants->value.size() == 0) {
          Error(variants->location, "variants: at least one variant");
          return;
        }
        double total = 0;
        bool weights_ok = true;
        absl::flat_hash_map<std::string, Location> variant_ids;
        ForEachItem(
            *variants, kMaxVariants, "variants",
            [&](const Node& vi, Location vl) {
              Fields vf = ReadMap(vi, vl, "variant",
                                  {"id", "weight", "actions", "lever"}, {"id"});
              if (!vf.ok()) return;
              Experiment::Variant v;
              v.location = vl;
              const Entry* vid = vf.Find("id");
              if (vid == nullptr || !ReadId(*vid, &v.id)) return;
              if (auto [it, inserted] =
                      variant_ids.emplace(v.id, vid->location);
                  !inserted) {
                Error(vid->location,
                      absl::StrCat("duplicate variant id ", Quote(v.id),
                                   " (first defined at ", it->second.line, ":",
                                   it->second.column, ")"));
              }
              if (const Entry* w = vf.Find("weight")) {
                weights_ok &= ReadDouble(
                    *w, 0, std::numeric_limits<double>::max(), &v.weight);
              }
              total += v.weight;
              if (const Entry* l = vf.Find("lever")) {
                ReadDouble(*l, 0, std::numeric_limits<double>::max(), &v.lever);
              }
              std::vector<Ref> refs;
              if (const Entry* acts = vf.Find("actions");
                  acts != nullptr && ReadRefs(*acts, &refs)) {
                for (const Ref& r : refs) {
                  int a = ResolveAction(r);
                  if (a < 0) continue;
                  const Action& action = ruleset_->actions[a];
                  bool in_scope =
                      x.placement >= 0
                          ? std::find(action.placements.begin(),
                                      action.placements.end(),
                                      x.placement) != action.placements.end()
                          : (!x.group.empty() && action.group == x.group);
                  if (!in_scope && (x.placement >= 0 || !x.group.empty())) {
                    Error(r.location,
                          x.placement >= 0
                              ? absl::StrCat("action ", Quote(r.id),
                                             " is not on placement ",
                                             Quote(placement_ids_[x.placement]))
                              : absl::StrCat("action ", Quote(r.id),
                                             " is not in group ",
                                             Quote(x.group)));
                    continue;
                  }
                  v.actions.push_back(a);
                }
              }
              x.variants.push_back(std::move(v));
            });
        if (weights_ok && !x.variants.empty() && total <= 0) {
          Error(variants->location,
                "variants: weights must sum to more than 0");
        }
        ruleset_->experiments.push_back(std::move(x));
      });
}

void Loader::ReadFollowUps(const Entry& e) {
  ForEachItem(
      e, kMaxFollowUps, "follow-ups", [&](const Node& item, Location location) {
        Fields f =
            ReadMap(item, location, "follow-up",
                    {"id", "description", "on", "after", "cancel_on", "channel",
                     "action", "placement", "limit", "dedupe_key", "rearm"},
                    {"id", "on", "after", "channel"});
        if (!f.ok()) return;
        FollowUp fu;
        fu.location = location;
        const Entry* id = f.Find("id");
        if (id == nullptr || !ReadId(*id, &fu.id)) return;
        if (!Declare("follow-up", fu.id, id->location, &follow_up_index_,
                     &follow_up_ids_)) {
          return;
        }
        if (const Entry* d = f.Find("description"))
          ReadString(*d, &fu.description);
        if (const Entry* x = f.Find("on")) {
          ReadExpression(*x, envs_->event(), Want::kBool, &fu.on);
        }
        if (const Entry* x = f.Find("after")) ReadDuration(*x, &fu.after);
        if (const Entry* x = f.Find("cancel_on")) {
          Expression expr;
          if (ReadExpression(*x, envs_->event(), Want::kBool, &expr)) {
            fu.cancel_on = std::move(expr);
          }
        }
        if (const Entry* x = f.Find("channel")) {
          std::string c;
          if (ReadString(*x, &c)) fu.channel = ResolveChannel({c, x->location});
        }
        const Entry* action = f.Find("action");
        const Entry* placement = f.Find("placement");
        if ((action == nullptr) == (placement == nullptr)) {
          Error(location,
                absl::StrCat("follow-up ", Quote(fu.id),
                             ": exactly one of 'action' or 'placement' "
                             "is required"));
        } else if (action != nullptr) {
          std::string a;
          if (ReadString(*action, &a)) {
            fu.action = ResolveAction({a, action->location});
            if (fu.action >= 0 && fu.channel >= 0) {
              const Action& act = ruleset_->actions[fu.action];
              bool on_channel = std::any_of(
                  act.placements.begin(), act.placements.end(), [&](int p) {
                    return ruleset_->placements[p].channel == fu.channel;
                  });
              if (!on_channel) {
                Error(action->location,
                      absl::StrCat("action ", Quote(a),
                                   " has no placement on channel ",
                                   Quote(channel_ids_[fu.channel])));
              }
            }
          }
        } else {
          std::string p;
          if (ReadString(*placement, &p)) {
            fu.placement = ResolvePlacement({p, placement->location});
            if (fu.placement >= 0 && fu.channel >= 0 &&
                ruleset_->placements[fu.placement].channel != fu.channel) {
              Error(placement->location,
                    absl::StrCat("placement ", Quote(p), " is not on channel ",
                                 Quote(channel_ids_[fu.channel])));
            }
          }
        }
        if (const Entry* x = f.Find("limit")) {
          Limit limit;
          if (ReadLimit(x->value, x->location, "limit",
                        /*allow_count_on=*/false, &limit)) {
            fu.limit = limit;
          }
        }
        if (const Entry* x = f.Find("dedupe_key")) {
          Expression expr;
          if (ReadExpression(*x, envs_->event(), Want::kString, &expr)) {
            fu.dedupe_key = std::move(expr);
          }
        }
        if (const Entry* x = f.Find("rearm")) ReadBool(*x, &fu.rearm);
        ruleset_->follow_ups.push_back(std::move(fu));
      });
}

void Loader::ReadRenamedPhases(const Entry& e) {
  if (!e.value.IsMap()) {
    Error(e.location,
          "renamed_phases: expected a mapping of former phase ids to phases");
    return;
  }
  Ruleset& r = *ruleset_;
  for (auto it = e.value.begin(); it != e.value.end(); ++it) {
    Location key_location = Loc(it->first);
    if (!it->first.IsScalar() || !IsValidId(it->first.Scalar())) {
      Error(key_location, "renamed_phases: keys must be phase ids");
      continue;
    }
    const std::string& old_id = it->first.Scalar();
    if (phase_index_.contains(old_id)) {
      Error(key_location,
            absl::StrCat("renamed_phases: ", Quote(old_id),
                         " is a phase of this ruleset, not a former one"));
      continue;
    }
    if (!it->second.IsScalar()) {
      Error(Loc(it->second), "renamed_phases: values must be phase ids");
      continue;
    }
    int to = ResolvePhase({it->second.Scalar(), Loc(it->second)});
    if (to >= 0) r.renamed_phases.emplace_back(old_id, to);
  }
}

void Loader::ReadTopLevel(const Node& root) {
  Fields top =
      ReadMap(root, Loc(root), "ruleset",
              {"name", "description", "phases", "initial_phase", "channels",
               "constants", "counters", "transitions", "placements", "actions",
               "context_weights", "policies", "experiments", "followups",
               "renamed_phases", "retention", "identity"},
              {"phases", "channels"});
  if (!top.ok()) return;
  Ruleset& r = *ruleset_;
  if (const Entry* e = top.Find("name")) ReadString(*e, &r.name);
  if (const Entry* e = top.Find("description")) ReadString(*e, &r.description);

  std::vector<std::string> descriptions;
  if (const Entry* e = top.Find("phases")) {
    ReadNamedList(*e, "phase", kMaxPhases, &phase_index_, &phase_ids_,
                  &descriptions);
    for (size_t i = 0; i < phase_ids_.size(); ++i) {
      r.phases.push_back({phase_ids_[i], descriptions[i]});
    }
  }
  descriptions.clear();
  if (const Entry* e = top.Find("channels")) {
    ReadNamedList(*e, "channel", kMaxChannels, &channel_index_, &channel_ids_,
                  &descriptions);
    for (size_t i = 0; i < channel_ids_.size(); ++i) {
      r.channels.push_back({channel_ids_[i], descriptions[i]});
    }
  }
  r.policies.channels.resize(r.channels.size());
  for (size_t i = 0; i < r.channels.size(); ++i) {
    r.policies.channels[i].channel = static_cast<int>(i);
  }
  if (const Entry* e = top.Find("initial_phase")) {
    std::string id;
    if (ReadString(*e, &id)) {
      int p = ResolvePhase({id, e->location});
      if (p >= 0) r.initial_phase = p;
    }
  }
  if (const Entry* e = top.Find("renamed_phases")) ReadRenamedPhases(*e);
  if (const Entry* e = top.Find("constants")) ReadConstants(*e);

  // Counters declare the fields of contact.counts: read their ids before
  // any expression is compiled, compile their own `on` after.
  if (const Entry* e = top.Find("counters")) ReadCounters(*e);
  envs_ = Environments::Build(counter_ids_, ruleset_->constants);
  r.environments = envs_;
  for (size_t i = 0; i < r.counters.size(); ++i) {
    if (counter_on_[i].has_value()) {
      ReadExpression(*counter_on_[i], envs_->event(), Want::kBool,
                     &r.counters[i].on);
    }
  }

  if (const Entry* e = top.Find("transitions")) ReadTransitions(*e);
  if (const Entry* e = top.Find("placements")) ReadPlacements(*e);
  if (const Entry* e = top.Find("actions")) ReadActions(*e);
  for (const auto& [placement, ref] : pending_fallbacks_) {
    int a = ResolveAction(ref);
    if (a >= 0) r.placements[placement].fallback_action = a;
  }
  if (const Entry* e = top.Find("context_weights")) ReadContextWeights(*e);
  if (const Entry* e = top.Find("policies")) ReadPolicies(*e);
  if (const Entry* e = top.Find("experiments")) ReadExperiments(*e);
  if (const Entry* e = top.Find("followups")) ReadFollowUps(*e);
  if (const Entry* e = top.Find("retention")) ReadRetention(*e);
  if (const Entry* e = top.Find("identity")) ReadIdentity(*e);
}

void Loader::ReadIdentity(const Entry& e) {
  Fields f = ReadMap(e.value, e.location, "identity",
                     {"namespaces", "auto_link", "max_aliases",
                      "max_aliases_per_namespace", "merge_phase"});
  if (!f.ok()) return;
  IdentitySettings& id = ruleset_->identity;
  if (const Entry* n = f.Find("namespaces")) {
    std::vector<Ref> refs;
    if (ReadRefs(*n, &refs)) {
      for (const Ref& ref : refs) {
        bool shaped = !ref.id.empty() && ref.id.size() <= 32 &&
                      absl::ascii_islower(ref.id[0]);
        for (char c : ref.id) {
          shaped = shaped && (absl::ascii_islower(c) ||
                              absl::ascii_isdigit(c) || c == '_');
        }
        if (!shaped) {
          Error(ref.location,
                absl::StrCat("identity.namespaces: ", Quote(ref.id),
                             " must match [a-z][a-z0-9_]{0,31}"));
        } else if (id.IsNamespace(ref.id)) {
          Error(ref.location,
                absl::StrCat("identity.namespaces: ", Quote(ref.id),
                             " is already a namespace"));
        } else {
          id.namespaces.push_back(ref.id);
        }
      }
    }
  }
  if (const Entry* a = f.Find("auto_link")) {
    std::vector<Ref> refs;
    if (ReadRefs(*a, &refs)) {
      id.auto_link.clear();
      for (const Ref& ref : refs) {
        if (!id.IsNamespace(ref.id)) {
          Error(ref.location, absl::StrCat("identity.auto_link: unknown "
                                           "namespace ",
                                           Quote(ref.id)));
        } else {
          id.auto_link.push_back(ref.id);
        }
      }
    }
  }
  int64_t v = 0;
  if (const Entry* m = f.Find("max_aliases")) {
    if (ReadInt(*m, 1, 1000, &v)) id.max_aliases = static_cast<int>(v);
  }
  if (const Entry* m = f.Find("max_aliases_per_namespace")) {
    if (ReadInt(*m, 1, 1000, &v)) {
      id.max_aliases_per_namespace = static_cast<int>(v);
    }
  }
  if (const Entry* m = f.Find("merge_phase")) {
    std::string rule;
    if (ReadString(*m, &rule)) {
      if (rule == "furthest") {
        id.merge_phase = MergePhaseRule::kFurthest;
      } else if (rule == "survivor") {
        id.merge_phase = MergePhaseRule::kSurvivor;
      } else if (rule == "most_recent") {
        id.merge_phase = MergePhaseRule::kMostRecent;
      } else {
        Error(m->location, absl::StrCat("identity.merge_phase: ", Quote(rule),
                                        " is not one of furthest, survivor, "
                                        "most_recent"));
      }
    }
  }
}

void Loader::ReadRetention(const Entry& e) {
  absl::Duration d;
  if (!ReadDuration(e, &d)) return;
  if (d < kMinRetention) {
    const std::string& s = e.value.Scalar();
    Error(
        e.location,
        absl::StrCat("retention: must be at least ",
                     FormatRulesetDuration(kMinRetention), " (found ", Quote(s),
                     absl::EndsWith(s, "m") ? "; m is minutes" : "", ")"));
    return;
  }
  // A follow-up pending when its contact goes idle would be erased before
  // it is due: the retention must outlast every delay.
  for (const FollowUp& fu : ruleset_->follow_ups) {
    if (fu.after >= d) {
      Error(e.location,
            absl::StrCat("retention: ", Quote(e.value.Scalar()),
                         " must be longer than the delay of follow-up ",
                         Quote(fu.id), " (after ",
                         FormatRulesetDuration(fu.after), ")"));
      return;
    }
  }
  ruleset_->retention = d;
}

absl::StatusOr<std::shared_ptr<const Ruleset>> Loader::Load() {
  ruleset_->source_name = name_;
  ruleset_->version = Sha256Hex(text_);
  if (text_.size() > kMaxRulesetBytes) {
    Error({1, 1}, absl::StrCat("file too large: ", text_.size(),
                               " bytes (at most ", kMaxRulesetBytes, ")"));
  } else {
    YamlError error;
    if (!document_.Parse(text_, kMaxYamlDepth, kMaxYamlNodes, &error)) {
      Location where{1, 1};
      if (error.mark.pos >= 0) {
        where = index_.At(static_cast<size_t>(error.mark.pos));
      } else if (error.mark.line >= 0) {
        where = {error.mark.line + 1, error.mark.column + 1};
      }
      Error(where, error.message);
    } else if (!document_.root().IsDefined() || document_.root().IsNull()) {
      Error({1, 1}, "the ruleset is empty");
    } else if (CheckTree(document_.root(), 0)) {
      try {
        ReadTopLevel(document_.root());
      } catch (const std::exception& ex) {
        // Nothing below throws by design; never let a surprise escape.
        Error({1, 1},
              absl::StrCat("internal error reading ruleset: ", ex.what()));
      }
    }
  }
  if (!diagnostics_.empty()) {
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       if (a.location.line != b.location.line) {
                         return a.location.line < b.location.line;
                       }
                       return a.location.column < b.location.column;
                     });
    std::vector<std::string> lines;
    lines.reserve(diagnostics_.size());
    for (const Diagnostic& d : diagnostics_) {
      lines.push_back(absl::StrCat(SanitizeMessage(name_), ":", d.location.line,
                                   ":", d.location.column, ": ",
                                   SanitizeMessage(d.message)));
    }
    return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
  }
  ruleset_->BuildIndexes();
  return std::shared_ptr<const Ruleset>(std::move(ruleset_));
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1) {
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const Ruleset>> LoadRulesetFromString(
    absl::string_view text, absl::string_view display_name) {
  // A UTF-8 byte order mark is not part of the content; yaml-cpp skips it
  // too, and its positions count from after it.
  absl::string_view body = text;
  if (body.size() >= 3 && body.substr(0, 3) == "\xEF\xBB\xBF") {
    body.remove_prefix(3);
  }
  Loader loader(body, display_name);
  absl::StatusOr<std::shared_ptr<const Ruleset>> result = loader.Load();
  if (result.ok()) {
    // The version covers the file's exact bytes, BOM included.
    std::const_pointer_cast<Ruleset>(*result)->version = Sha256Hex(text);
  }
  return result;
}

absl::StatusOr<std::shared_ptr<const Ruleset>> LoadRulesetFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open file"));
  }
  // Read at most one byte past the limit: enough to know it is too large.
  std::string text;
  text.resize(kMaxRulesetBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  }
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxRulesetBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":1:1: file too large (at most ", kMaxRulesetBytes, " bytes)"));
  }
  return LoadRulesetFromString(text, path);
}

std::vector<std::string> ErrorLines(const absl::Status& status) {
  if (status.ok()) return {};
  return absl::StrSplit(std::string(status.message()), '\n');
}

}  // namespace tappa::ruleset
