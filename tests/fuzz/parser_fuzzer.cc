// libFuzzer target for the CEL lexer and parser: any bytes must give either
// a tree or issues, never a crash, a hang, a leak or a tree that breaks the
// documented invariants (unique positive ids, offsets inside the source,
// depth within kMaxNestingDepth).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "rules/cel/ast.h"
#include "rules/cel/parser.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// Walks the tree without recursion (the walk must not rely on the very
// invariant it checks).
void CheckTree(const tappa::cel::Expr& root, size_t source_size) {
  std::unordered_set<int64_t> ids;
  std::vector<std::pair<const tappa::cel::Expr*, int>> stack = {{&root, 1}};
  while (!stack.empty()) {
    auto [e, depth] = stack.back();
    stack.pop_back();
    Check(depth <= tappa::cel::kMaxNestingDepth);
    Check(e->id > 0 && ids.insert(e->id).second);
    Check(e->offset >= 0 && static_cast<size_t>(e->offset) <= source_size);
    for (const auto& child : e->children) {
      Check(child != nullptr);
      stack.push_back({child.get(), depth + 1});
    }
  }
}

void ParseOnce(absl::string_view source, bool macros) {
  tappa::cel::ParseOptions options;
  options.enable_macros = macros;
  tappa::cel::ParseResult result = tappa::cel::Parse(source, options);
  Check((result.expr == nullptr) != result.issues.empty());
  for (const tappa::cel::Issue& issue : result.issues) {
    Check(issue.position.line >= 1 && issue.position.column >= 1);
    Check(!issue.message.empty());
  }
  if (result.expr != nullptr) {
    CheckTree(*result.expr, source.size());
    Check(!tappa::cel::DebugString(*result.expr).empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view source(reinterpret_cast<const char*>(data), size);
  ParseOnce(source, /*macros=*/true);
  ParseOnce(source, /*macros=*/false);
  return 0;
}
