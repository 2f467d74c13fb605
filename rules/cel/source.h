// Positions and diagnostics inside expression source text.
#ifndef TAPPA_RULES_CEL_SOURCE_H_
#define TAPPA_RULES_CEL_SOURCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tappa::cel {

// A 1-based line and column. Columns count Unicode code points, so a column
// points at the same character in an editor whatever the encoding width.
struct SourcePosition {
  int line = 1;
  int column = 1;
};

// Converts a byte offset in `source` to a line and column. Offsets past the
// end map to the position just after the last character.
SourcePosition PositionOf(absl::string_view source, int32_t offset);

// One problem found while parsing or checking an expression.
struct Issue {
  SourcePosition position;
  std::string message;
};

// Renders issues as "line:col: message" lines joined by "\n" and wraps them
// in an InvalidArgument status (the form tappactl and tests print).
absl::Status IssuesToStatus(const std::vector<Issue>& issues);

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_SOURCE_H_
