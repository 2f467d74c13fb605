// Maps positions inside a YAML scalar's value back to the file, so that an
// error inside an expression points at the offending character even when the
// expression is quoted (with escapes), folded over several lines, or written
// as a block scalar (`|`, `>`).
#ifndef TAPPA_RULES_RULESET_SCALAR_POSITIONS_H_
#define TAPPA_RULES_RULESET_SCALAR_POSITIONS_H_

#include <cstddef>
#include <vector>

#include "absl/strings/string_view.h"

namespace tappa::ruleset {

// For a scalar whose node starts at byte `start` of `text` (yaml-cpp's
// Mark::pos: the first character of the scalar, its opening quote, or its
// block indicator; tags and anchors before it are skipped) and whose decoded
// value is `value`, returns for each byte of `value` the byte offset in
// `text` it came from. Returns an empty vector when the text cannot be
// aligned with the value (a style this function does not model); callers
// then fall back to the node's position. Never reads outside `text`.
std::vector<size_t> AlignScalar(absl::string_view text, size_t start,
                                absl::string_view value);

// The byte offset in `source` of the 1-based line and column (columns count
// Unicode code points, as cel::SourcePosition does). Positions past the end
// of a line or of the source clamp to the end.
size_t OffsetOfPosition(absl::string_view source, int line, int column);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_SCALAR_POSITIONS_H_
