// libFuzzer target for the checker and evaluator: any expression must
// compile to issues or a program, and evaluating it (with a few bindings and
// a small cost limit) must give a value or an error value, never a crash, a
// hang, undefined behaviour or a leak.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "rules/cel/containers.h"
#include "rules/cel/program.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using tappa::cel::Value;
  absl::string_view source(reinterpret_cast<const char*>(data), size);
  tappa::cel::Environment env;
  env.set_allow_undeclared(true);
  int x = env.DeclareVariable("x", tappa::cel::Type::Dyn());
  int m = env.DeclareVariable("m", tappa::cel::Type::Dyn());
  int l = env.DeclareVariable("l", tappa::cel::Type::Dyn());
  tappa::cel::CompileResult compiled = tappa::cel::Compile(source, env);
  if (!compiled.ok()) return 0;

  tappa::cel::VectorMap map;
  (void)map.Insert(Value::String("a"), Value::Int(1));
  (void)map.Insert(Value::Int(2), Value::String("b"));
  tappa::cel::VectorList list;
  list.Append(Value::Int(-1));
  list.Append(Value::Double(2.5));
  list.Append(Value::String("s"));
  Value vars[3];
  vars[x] = Value::Int(7);
  vars[m] = Value::BorrowedMap(&map);
  vars[l] = Value::BorrowedList(&list);
  tappa::cel::EvalOptions options;
  options.cost_limit = 20'000;
  Value result = compiled.program->Evaluate(vars, options);
  // Rendering walks the whole result: it must be well formed.
  (void)result.Own().DebugString();
  return 0;
}
