#include "rules/cel/value_json.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rules/cel/containers.h"
#include "rules/cel/stdlib.h"

namespace tappa::cel {
namespace {

using json = nlohmann::json;

constexpr absl::string_view kTimestampTypeUrl =
    "type.googleapis.com/google.protobuf.Timestamp";
constexpr absl::string_view kDurationTypeUrl =
    "type.googleapis.com/google.protobuf.Duration";

// ---- Encoding --------------------------------------------------------------

absl::Status TooDeep() {
  return absl::InvalidArgumentError(
      absl::StrCat("value nested deeper than ", kMaxJsonValueDepth, " levels"));
}

absl::StatusOr<json> Encode(const Value& v, int depth) {
  if (depth > kMaxJsonValueDepth) return TooDeep();
  json out = json::object();
  switch (v.kind()) {
    case Kind::kNull:
      out["nullValue"] = nullptr;
      break;
    case Kind::kBool:
      out["boolValue"] = v.bool_value();
      break;
    case Kind::kInt:
      out["int64Value"] = absl::StrCat(v.int_value());
      break;
    case Kind::kUint:
      out["uint64Value"] = absl::StrCat(v.uint_value());
      break;
    case Kind::kDouble: {
      double d = v.double_value();
      if (std::isnan(d)) {
        out["doubleValue"] = "NaN";
      } else if (std::isinf(d)) {
        out["doubleValue"] = d > 0 ? "Infinity" : "-Infinity";
      } else {
        out["doubleValue"] = d;
      }
      break;
    }
    case Kind::kString: {
      absl::string_view s = v.string_value();
      // nlohmann's dump() throws on invalid UTF-8: refuse it here instead.
      if (!IsValidUtf8(s)) {
        return absl::InvalidArgumentError("string is not valid UTF-8");
      }
      out["stringValue"] = std::string(s);
      break;
    }
    case Kind::kBytes:
      out["bytesValue"] = absl::Base64Escape(v.bytes_value());
      break;
    case Kind::kList: {
      const ListValue& list = v.list_value();
      json values = json::array();
      for (size_t i = 0; i < list.size(); ++i) {
        absl::StatusOr<json> e = Encode(list.Get(i), depth + 1);
        if (!e.ok()) return e.status();
        values.push_back(*std::move(e));
      }
      out["listValue"] = json{{"values", std::move(values)}};
      break;
    }
    case Kind::kMap: {
      const MapValue& map = v.map_value();
      json entries = json::array();
      for (size_t i = 0; i < map.size(); ++i) {
        absl::StatusOr<json> key = Encode(map.KeyAt(i), depth + 1);
        if (!key.ok()) return key.status();
        absl::StatusOr<json> value = Encode(map.ValueAt(i), depth + 1);
        if (!value.ok()) return value.status();
        entries.push_back(
            json{{"key", *std::move(key)}, {"value", *std::move(value)}});
      }
      out["mapValue"] = json{{"entries", std::move(entries)}};
      break;
    }
    case Kind::kTimestamp:
      out["objectValue"] =
          json{{"@type", std::string(kTimestampTypeUrl)},
               {"value", TimestampToString(v.timestamp_value())}};
      break;
    case Kind::kDuration:
      out["objectValue"] =
          json{{"@type", std::string(kDurationTypeUrl)},
               {"value", DurationToString(v.duration_value())}};
      break;
    case Kind::kType:
      out["typeValue"] = std::string(v.type_name());
      break;
    case Kind::kError:
      return absl::InvalidArgumentError(
          absl::StrCat("cannot encode an error value: ", v.error_message()));
  }
  return out;
}

// ---- Decoding --------------------------------------------------------------

class Decoder {
 public:
  absl::StatusOr<Value> Decode(const json& j, const std::string& path,
                               int depth) {
    if (depth > kMaxJsonValueDepth) return Fail(path, TooDeep().message());
    if (!j.is_object()) return Fail(path, "expected a JSON object");
    if (j.size() != 1) {
      return Fail(path,
                  absl::StrCat("expected exactly one member, got ", j.size()));
    }
    const std::string& member = j.begin().key();
    const json& body = j.begin().value();
    if (member == "nullValue") {
      if (body.is_null() || (body.is_string() && body == "NULL_VALUE")) {
        return Value::Null();
      }
      return Fail(path, "nullValue: expected null");
    }
    if (member == "boolValue") {
      if (!body.is_boolean())
        return Fail(path, "boolValue: expected true or false");
      return Value::Bool(body.get<bool>());
    }
    if (member == "int64Value") return DecodeInt(body, path);
    if (member == "uint64Value") return DecodeUint(body, path);
    if (member == "doubleValue") return DecodeDouble(body, path);
    if (member == "stringValue") {
      if (!body.is_string())
        return Fail(path, "stringValue: expected a string");
      const std::string& s = body.get_ref<const std::string&>();
      if (!IsValidUtf8(s)) return Fail(path, "stringValue: not valid UTF-8");
      return Value::String(absl::string_view(s));
    }
    if (member == "bytesValue") return DecodeBytes(body, path);
    if (member == "listValue") return DecodeList(body, path, depth);
    if (member == "mapValue") return DecodeMap(body, path, depth);
    if (member == "objectValue") return DecodeObject(body, path);
    if (member == "typeValue") return DecodeType(body, path);
    return Fail(path, absl::StrCat("unknown member \"",
                                   absl::CHexEscape(member), "\""));
  }

 private:
  static absl::Status Fail(absl::string_view path, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  }

  static absl::StatusOr<Value> DecodeInt(const json& body,
                                         const std::string& path) {
    if (body.is_number_integer() && !body.is_number_unsigned()) {
      return Value::Int(body.get<int64_t>());
    }
    if (body.is_number_unsigned()) {
      uint64_t u = body.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) {
        return Fail(path, "int64Value: out of range");
      }
      return Value::Int(static_cast<int64_t>(u));
    }
    if (body.is_number_float()) {
      double d = body.get<double>();
      if (d != std::trunc(d)) return Fail(path, "int64Value: not an integer");
      Value v = ToInt(Value::Double(d));
      if (v.IsError()) return Fail(path, "int64Value: out of range");
      return v;
    }
    if (body.is_string()) {
      Value v =
          ToInt(Value::BorrowedString(body.get_ref<const std::string&>()));
      if (v.IsError()) {
        return Fail(path, absl::StrCat("int64Value: ",
                                       v.error_message() == "range error"
                                           ? "out of range"
                                           : "not an integer"));
      }
      return v;
    }
    return Fail(path, "int64Value: not an integer");
  }

  static absl::StatusOr<Value> DecodeUint(const json& body,
                                          const std::string& path) {
    if (body.is_number_unsigned()) return Value::Uint(body.get<uint64_t>());
    if (body.is_number_integer()) {
      return Fail(path, "uint64Value: out of range");  // negative
    }
    if (body.is_number_float()) {
      double d = body.get<double>();
      if (d != std::trunc(d)) return Fail(path, "uint64Value: not an integer");
      Value v = ToUint(Value::Double(d));
      if (v.IsError()) return Fail(path, "uint64Value: out of range");
      return v;
    }
    if (body.is_string()) {
      Value v =
          ToUint(Value::BorrowedString(body.get_ref<const std::string&>()));
      if (v.IsError()) {
        return Fail(path, absl::StrCat("uint64Value: ",
                                       v.error_message() == "range error"
                                           ? "out of range"
                                           : "not an unsigned integer"));
      }
      return v;
    }
    return Fail(path, "uint64Value: not an unsigned integer");
  }

  static absl::StatusOr<Value> DecodeDouble(const json& body,
                                            const std::string& path) {
    if (body.is_number()) return Value::Double(body.get<double>());
    if (body.is_string()) {
      const std::string& s = body.get_ref<const std::string&>();
      if (s == "NaN") return Value::Double(std::nan(""));
      if (s == "Infinity") return Value::Double(HUGE_VAL);
      if (s == "-Infinity") return Value::Double(-HUGE_VAL);
      Value v = ToDouble(Value::BorrowedString(s));
      if (!v.IsError()) return v;
    }
    return Fail(path, "doubleValue: not a number");
  }

  static absl::StatusOr<Value> DecodeBytes(const json& body,
                                           const std::string& path) {
    if (!body.is_string()) return Fail(path, "bytesValue: expected a string");
    const std::string& text = body.get_ref<const std::string&>();
    std::string bytes;
    if (!absl::Base64Unescape(text, &bytes) &&
        !absl::WebSafeBase64Unescape(text, &bytes)) {
      return Fail(path, "bytesValue: not valid base64");
    }
    return Value::Bytes(std::move(bytes));
  }

  absl::StatusOr<Value> DecodeList(const json& body, const std::string& path,
                                   int depth) {
    if (!body.is_object()) return Fail(path, "listValue: expected an object");
    const json* values = nullptr;
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "values") {
        return Fail(path, absl::StrCat("listValue: unknown member \"",
                                       absl::CHexEscape(it.key()), "\""));
      }
      values = &it.value();
    }
    auto* list = new VectorList();
    Value result = Value::OwnedList(list);  // owns `list` from here on
    if (values == nullptr || values->is_null()) return result;
    if (!values->is_array()) {
      return Fail(path, "listValue.values: expected an array");
    }
    list->Reserve(values->size());
    for (size_t i = 0; i < values->size(); ++i) {
      absl::StatusOr<Value> e =
          Decode((*values)[i], absl::StrCat(path, ".listValue.values[", i, "]"),
                 depth + 1);
      if (!e.ok()) return e.status();
      list->Append(*std::move(e));
    }
    return result;
  }

  absl::StatusOr<Value> DecodeMap(const json& body, const std::string& path,
                                  int depth) {
    if (!body.is_object()) return Fail(path, "mapValue: expected an object");
    const json* entries = nullptr;
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "entries") {
        return Fail(path, absl::StrCat("mapValue: unknown member \"",
                                       absl::CHexEscape(it.key()), "\""));
      }
      entries = &it.value();
    }
    auto* map = new VectorMap();
    Value result = Value::OwnedMap(map);  // owns `map` from here on
    if (entries == nullptr || entries->is_null()) return result;
    if (!entries->is_array()) {
      return Fail(path, "mapValue.entries: expected an array");
    }
    for (size_t i = 0; i < entries->size(); ++i) {
      std::string entry_path = absl::StrCat(path, ".mapValue.entries[", i, "]");
      const json& entry = (*entries)[i];
      if (!entry.is_object()) {
        return Fail(entry_path, "expected an object with key and value");
      }
      const json* key_json = nullptr;
      const json* value_json = nullptr;
      for (auto it = entry.begin(); it != entry.end(); ++it) {
        if (it.key() == "key") {
          key_json = &it.value();
        } else if (it.key() == "value") {
          value_json = &it.value();
        } else {
          return Fail(entry_path,
                      absl::StrCat("unknown member \"",
                                   absl::CHexEscape(it.key()), "\""));
        }
      }
      if (key_json == nullptr) return Fail(entry_path, "missing key");
      if (value_json == nullptr) return Fail(entry_path, "missing value");
      absl::StatusOr<Value> key =
          Decode(*key_json, absl::StrCat(entry_path, ".key"), depth + 1);
      if (!key.ok()) return key.status();
      absl::StatusOr<Value> value =
          Decode(*value_json, absl::StrCat(entry_path, ".value"), depth + 1);
      if (!value.ok()) return value.status();
      absl::Status inserted = map->Insert(*std::move(key), *std::move(value));
      if (!inserted.ok()) {
        return Fail(absl::StrCat(entry_path, ".key"), inserted.message());
      }
    }
    return result;
  }

  static absl::StatusOr<Value> DecodeObject(const json& body,
                                            const std::string& path) {
    if (!body.is_object()) return Fail(path, "objectValue: expected an object");
    auto type = body.find("@type");
    auto text = body.find("value");
    if (type == body.end() || !type->is_string()) {
      return Fail(path, "objectValue: missing \"@type\"");
    }
    if (body.size() != 2 || text == body.end() || !text->is_string()) {
      return Fail(path,
                  "objectValue: expected {\"@type\": ..., \"value\": \"...\"}");
    }
    const std::string& url = type->get_ref<const std::string&>();
    const std::string& s = text->get_ref<const std::string&>();
    if (url == kTimestampTypeUrl) {
      absl::StatusOr<Timestamp> t = ParseTimestamp(s);
      if (!t.ok())
        return Fail(path, absl::StrCat("objectValue: ", t.status().message()));
      return Value::FromTimestamp(*t);
    }
    if (url == kDurationTypeUrl) {
      absl::StatusOr<Duration> d = ParseDuration(s);
      if (!d.ok())
        return Fail(path, absl::StrCat("objectValue: ", d.status().message()));
      return Value::FromDuration(*d);
    }
    return Fail(path, absl::StrCat("objectValue: unsupported type \"",
                                   absl::CHexEscape(url), "\""));
  }

  static absl::StatusOr<Value> DecodeType(const json& body,
                                          const std::string& path) {
    if (!body.is_string()) return Fail(path, "typeValue: expected a string");
    const std::string& name = body.get_ref<const std::string&>();
    for (Kind k :
         {Kind::kNull, Kind::kBool, Kind::kInt, Kind::kUint, Kind::kDouble,
          Kind::kString, Kind::kBytes, Kind::kList, Kind::kMap,
          Kind::kTimestamp, Kind::kDuration, Kind::kType}) {
      if (KindName(k) == name) return Value::TypeOf(k);
    }
    return Fail(path, absl::StrCat("typeValue: unknown type \"",
                                   absl::CHexEscape(name), "\""));
  }
};

}  // namespace

absl::StatusOr<nlohmann::json> ValueToJson(const Value& value) {
  return Encode(value, 0);
}

absl::StatusOr<Value> ValueFromJson(const nlohmann::json& json,
                                    absl::string_view path) {
  // Nothing here should throw (types are checked before every access), but a
  // library exception must not cross the module boundary either way.
  try {
    return Decoder().Decode(json, std::string(path), 0);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace tappa::cel
