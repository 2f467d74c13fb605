// `tappactl expr`. The contract is fixed because conformance tests drive it:
//  * input: JSON lines {"expr": "<CEL>", "bindings": {"<name>": VALUE, ...},
//    "disable_macros": false}; bindings and disable_macros are optional;
//    unbound identifiers are plain variables (no declared environment);
//  * output: exactly one JSON line per input line, in order, flushed:
//    {"value": VALUE} or {"error": "<message>"} (parse, check or evaluation
//    error, or a malformed input line), then the next line;
//  * VALUE: the proto3 JSON form of the CEL conformance Value message
//    (rules/cel/value_json.h).
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "rules/cel/program.h"
#include "rules/cel/value_json.h"
#include "tools/tappactl/commands.h"

namespace tappa::tappactl {
namespace {

using nlohmann::json;

// Evaluates one input line; returns the output object.
json EvaluateLine(const std::string& line) {
  json input = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded() || !input.is_object()) {
    return {{"error", "malformed input line: expected a JSON object"}};
  }
  auto expr_it = input.find("expr");
  if (expr_it == input.end() || !expr_it->is_string()) {
    return {{"error", "malformed input line: \"expr\" must be a string"}};
  }
  cel::CompileOptions options;
  if (auto it = input.find("disable_macros"); it != input.end()) {
    if (!it->is_boolean()) {
      return {
          {"error", "malformed input line: \"disable_macros\" must be a bool"}};
    }
    options.parse.enable_macros = !it->get<bool>();
  }

  cel::Environment env;
  env.set_allow_undeclared(true);
  std::vector<cel::Value> values;
  if (auto it = input.find("bindings"); it != input.end() && !it->is_null()) {
    if (!it->is_object()) {
      return {
          {"error", "malformed input line: \"bindings\" must be an object"}};
    }
    for (const auto& [name, value_json] : it->items()) {
      absl::StatusOr<cel::Value> value =
          cel::ValueFromJson(value_json, absl::StrCat("bindings.", name));
      if (!value.ok())
        return {{"error", std::string(value.status().message())}};
      int index = env.DeclareVariable(name, cel::Type::Dyn());
      if (index >= static_cast<int>(values.size())) values.resize(index + 1);
      values[index] = *std::move(value);
    }
  }

  std::string source = expr_it->get<std::string>();
  cel::CompileResult compiled = cel::Compile(source, env, options);
  if (!compiled.ok()) {
    return {
        {"error", std::string(cel::IssuesToStatus(compiled.issues).message())}};
  }
  cel::Value result = compiled.program->Evaluate(values);
  if (result.IsError()) return {{"error", std::string(result.error_message())}};
  absl::StatusOr<json> encoded = cel::ValueToJson(result);
  if (!encoded.ok())
    return {{"error", std::string(encoded.status().message())}};
  return {{"value", *std::move(encoded)}};
}

}  // namespace

int RunExpr(const std::vector<std::string>& args, std::istream& in,
            std::ostream& out, std::ostream& err) {
  if (!args.empty()) {
    err << "tappactl expr: takes no arguments (JSON lines on stdin)\n";
    return 2;
  }
  std::string line;
  while (std::getline(in, line)) {
    json output = EvaluateLine(line);
    // Replace invalid UTF-8 rather than throw: a line always gets an answer.
    out << output.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    out.flush();
  }
  return 0;
}

}  // namespace tappa::tappactl
