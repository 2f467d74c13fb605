// Loading a ruleset from YAML (schema: rules/README.md).
//
// The loader validates the whole file and reports every problem it finds,
// not just the first, each as one line
//
//   <file>:<line>:<column>: <message>
//
// with 1-based positions of the offending YAML node (columns count Unicode
// code points); for expression errors, the position of the offending
// character inside the expression. Lines are sorted by position. An invalid
// ruleset is never returned, not even in part.
//
// Hostile input is expected (rulesets are uploaded by people and tools): the
// loader never throws, rejects files over kMaxRulesetBytes, nesting deeper
// than kMaxYamlDepth (checked on the text, before yaml-cpp recurses into
// it), documents that expand to more than kMaxYamlNodes nodes through
// aliases, and expressions over kMaxExpressionBytes.
//
// Thread safety: the functions are thread-safe (they share nothing).
#ifndef TAPPA_RULES_RULESET_LOADER_H_
#define TAPPA_RULES_RULESET_LOADER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rules/ruleset/ruleset.h"

namespace tappa::ruleset {

// Loads and validates `text`; `display_name` is the file name used in
// messages and stored as Ruleset::source_name. Errors: InvalidArgument whose
// message is every error line joined by "\n".
absl::StatusOr<std::shared_ptr<const Ruleset>> LoadRulesetFromString(
    absl::string_view text, absl::string_view display_name);

// Reads `path` and loads it with `path` as the display name. Errors: NotFound
// or another status naming the path when the file cannot be read;
// InvalidArgument as above.
absl::StatusOr<std::shared_ptr<const Ruleset>> LoadRulesetFile(
    const std::string& path);

// The error lines of a status returned by the functions above (empty for
// OK), for callers that print or count them.
std::vector<std::string> ErrorLines(const absl::Status& status);

// Hex SHA-256 of `data` (64 lowercase hex digits): the ruleset version.
std::string Sha256Hex(absl::string_view data);

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_LOADER_H_
