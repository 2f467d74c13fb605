#include "rules/cel/program.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "rules/cel/checker.h"
#include "rules/cel/evaluator.h"
#include "rules/cel/plan.h"

namespace tappa::cel {

int Environment::DeclareVariable(absl::string_view name, Type type) {
  auto it = variable_index_.find(name);
  if (it != variable_index_.end()) {
    variables_[it->second].type = std::move(type);
    return it->second;
  }
  const int index = static_cast<int>(variables_.size());
  variables_.push_back(Variable{std::string(name), std::move(type)});
  variable_index_.emplace(std::string(name), index);
  return index;
}

void Environment::DeclareConstant(absl::string_view name, Value value) {
  constants_[std::string(name)] = std::move(value);
}

int Environment::FindVariable(absl::string_view name) const {
  auto it = variable_index_.find(name);
  return it == variable_index_.end() ? -1 : it->second;
}

const Value* Environment::FindConstant(absl::string_view name) const {
  auto it = constants_.find(name);
  return it == constants_.end() ? nullptr : &it->second;
}

namespace {

// Variables are read by exactly two kinds of node: kVariable (the whole
// value) and kSelectPath (a fused chain of selections from it); every other
// node computes from its children, constants and comprehension locals.
void CollectPaths(const Node& node, std::vector<VariablePath>* paths) {
  if (node.op == Op::kVariable || node.op == Op::kSelectPath) {
    VariablePath path{node.slot, {}};
    if (node.op == Op::kSelectPath) {
      path.fields.assign(node.path.begin(), node.path.end());
    }
    if (std::find(paths->begin(), paths->end(), path) == paths->end()) {
      paths->push_back(std::move(path));
    }
  }
  for (const auto& child : node.children) CollectPaths(*child, paths);
}

class CompiledProgram final : public Program {
 public:
  CompiledProgram(std::string source, std::unique_ptr<Node> plan,
                  int frame_slots)
      : source_(std::move(source)),
        plan_(std::move(plan)),
        frame_slots_(frame_slots) {}

  Value Evaluate(absl::Span<const Value> variables,
                 const EvalOptions& options) const override {
    return EvaluatePlan(*plan_, frame_slots_, variables, options.cost_limit);
  }

  const Type& result_type() const override { return plan_->type; }
  absl::string_view source() const override { return source_; }

  std::vector<VariablePath> VariablePaths() const override {
    std::vector<VariablePath> paths;
    CollectPaths(*plan_, &paths);
    return paths;
  }

 private:
  const std::string source_;
  const std::unique_ptr<const Node> plan_;
  const int frame_slots_;
};

}  // namespace

CompileResult Compile(absl::string_view source, const Environment& env,
                      const CompileOptions& options) {
  CompileResult result;
  ParseResult parsed = Parse(source, options.parse);
  if (parsed.expr == nullptr) {
    result.issues = std::move(parsed.issues);
    return result;
  }
  CheckResult checked = Check(*parsed.expr, source, env);
  if (checked.plan == nullptr) {
    result.issues = std::move(checked.issues);
    return result;
  }
  result.program = std::make_shared<CompiledProgram>(
      std::string(source), std::move(checked.plan), checked.frame_slots);
  return result;
}

}  // namespace tappa::cel
