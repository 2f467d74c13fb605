#include "rules/cel/source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tappa::cel {

SourcePosition PositionOf(absl::string_view source, int32_t offset) {
  SourcePosition pos;
  size_t end = std::min<size_t>(offset < 0 ? 0 : offset, source.size());
  for (size_t i = 0; i < end; ++i) {
    unsigned char c = static_cast<unsigned char>(source[i]);
    if (c == '\n') {
      ++pos.line;
      pos.column = 1;
    } else if ((c & 0xC0) != 0x80) {
      // Count code points: continuation bytes do not start a character.
      ++pos.column;
    }
  }
  return pos;
}

absl::Status IssuesToStatus(const std::vector<Issue>& issues) {
  if (issues.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrJoin(issues, "\n", [](std::string* out, const Issue& issue) {
        absl::StrAppend(out, issue.position.line, ":", issue.position.column,
                        ": ", issue.message);
      }));
}

}  // namespace tappa::cel
