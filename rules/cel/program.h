// Compiling and evaluating expressions.
//
//   Environment env;
//   int contact = env.DeclareVariable("contact", contact_type);
//   int now = env.DeclareVariable("now", Type::Timestamp());
//   CompileResult r = Compile("contact.counts.product_view_7d >= 3", env);
//   if (!r.ok()) { ... r.issues ... }
//   Value vars[2] = {contact_value, Value::FromTimestamp(t)};
//   Value result = r.program->Evaluate(vars);
//
// Compile parses, resolves every name against the environment (CEL's
// qualified-name resolution: `a.b.c` is the variable "a.b.c" if declared,
// else "a.b" then field c, else "a" then b.c), resolves function overloads by
// name and arity, folds constant sub-expressions (so `duration("24h")` and
// `["web", "app"]` cost nothing at run time), type-checks what is known
// statically, and produces an immutable Program.
//
// Evaluation follows CEL semantics: errors are values (division by zero,
// integer overflow, "no such key", "no matching overload") that propagate,
// except that `&&`, `||`, `?:` and the macros absorb an error when the other
// operand decides the result. It does not allocate unless the expression
// builds new strings, lists or maps at run time or produces an error with a
// dynamic message.
//
// Thread safety: Environment is not thread-safe while being built. A Program
// is immutable: Evaluate may be called from any number of threads at once.
#ifndef TAPPA_RULES_CEL_PROGRAM_H_
#define TAPPA_RULES_CEL_PROGRAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "rules/cel/parser.h"
#include "rules/cel/source.h"
#include "rules/cel/types.h"
#include "rules/cel/value.h"

namespace tappa::cel {

// The names an expression may use.
class Environment {
 public:
  Environment() = default;

  // Declares a variable and returns its index: the position of its value in
  // the span passed to Program::Evaluate. Redeclaring a name replaces its type
  // and keeps its index.
  int DeclareVariable(absl::string_view name, Type type);

  // Declares a named constant (a ruleset-defined list of channels, say): uses
  // are folded into the program. `value` must not borrow (use Value::Own()).
  void DeclareConstant(absl::string_view name, Value value);

  // When true, names that resolve to nothing compile to a lookup that fails at
  // evaluation with "undeclared reference to 'x'" (tappactl's mode: unbound
  // identifiers are plain variables); when false (the default) they are check
  // errors.
  void set_allow_undeclared(bool allow) { allow_undeclared_ = allow; }
  bool allow_undeclared() const { return allow_undeclared_; }

  int variable_count() const { return static_cast<int>(variables_.size()); }

  struct Variable {
    std::string name;
    Type type;
  };
  const std::vector<Variable>& variables() const { return variables_; }
  // -1 when not declared.
  int FindVariable(absl::string_view name) const;
  const Value* FindConstant(absl::string_view name) const;

 private:
  std::vector<Variable> variables_;
  absl::flat_hash_map<std::string, int> variable_index_;
  absl::flat_hash_map<std::string, Value> constants_;
  bool allow_undeclared_ = false;
};

// Evaluation limits. A comprehension step, a list or map element built, and a
// string byte produced each cost one unit; exceeding the budget stops
// evaluation with the error "evaluation cost limit exceeded".
struct EvalOptions {
  int64_t cost_limit = 1'000'000;
};

// A fixed path of field selections from a variable: `contact.counts.x` is
// {contact's index, {"counts", "x"}}; a variable used whole (`now`, or a map
// indexed with a computed key) has no fields.
struct VariablePath {
  int variable = -1;
  std::vector<std::string> fields;

  bool operator==(const VariablePath& other) const {
    return variable == other.variable && fields == other.fields;
  }
};

class Program {
 public:
  virtual ~Program() = default;

  // Evaluates with `variables[i]` bound to the environment's variable i.
  // Requires variables.size() >= the environment's variable_count() at
  // compile time. The result may borrow from the program and from the
  // variables (see Value): keep it only while both live, or call Own().
  virtual Value Evaluate(absl::Span<const Value> variables,
                         const EvalOptions& options = {}) const = 0;

  // The statically known type of the result (dyn when unknown).
  virtual const Type& result_type() const = 0;

  // The source the program was compiled from.
  virtual absl::string_view source() const = 0;

  // Every path the program reads its variables through, each once, in no
  // particular order. Whatever the program computes depends only on the
  // values found at these paths (with everything beneath them): two sets of
  // variables that agree there give the same result. Callers use this to
  // decide a program in advance when they know those values (the decision
  // index knows a candidate's phase and channel).
  virtual std::vector<VariablePath> VariablePaths() const = 0;
};

struct CompileOptions {
  ParseOptions parse;
};

struct CompileResult {
  bool ok() const { return program != nullptr; }
  std::shared_ptr<const Program> program;
  // Every parse or check problem, each with its position in the source:
  // "undeclared reference to 'contct'", "undefined field 'phse' on type
  // 'contact'", "found no matching overload for '_==_' applied to
  // '(string, int)'".
  std::vector<Issue> issues;
};

CompileResult Compile(absl::string_view source, const Environment& env,
                      const CompileOptions& options = {});

}  // namespace tappa::cel

#endif  // TAPPA_RULES_CEL_PROGRAM_H_
