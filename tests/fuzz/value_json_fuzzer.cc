// libFuzzer target for the conformance JSON value codec (tappactl expr's
// bindings): any JSON must decode to a value or an error naming the path,
// and a decoded value must encode again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "nlohmann/json.hpp"
#include "rules/cel/value_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nlohmann::json json = nlohmann::json::parse(data, data + size, nullptr,
                                              /*allow_exceptions=*/false);
  if (json.is_discarded()) return 0;
  absl::StatusOr<tappa::cel::Value> value =
      tappa::cel::ValueFromJson(json, "bindings.x");
  if (!value.ok()) return 0;
  absl::StatusOr<nlohmann::json> back = tappa::cel::ValueToJson(*value);
  // Everything that decodes is encodable, except strings that are not
  // UTF-8 (JSON text cannot carry them).
  if (!back.ok() &&
      back.status().message().find("UTF-8") == absl::string_view::npos) {
    std::abort();
  }
  return 0;
}
