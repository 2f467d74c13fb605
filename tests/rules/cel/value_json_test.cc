// The JSON form of conformance Values: the encodings are written out by hand
// from the proto3 JSON mapping of cel.expr.Value (int64 as strings, bytes as
// base64, non-finite doubles as strings, Timestamp/Duration as Any with
// their RFC 3339 / "<seconds>s" text, written with the fewest fraction digits
// as CEL's string() does).
#include "rules/cel/value_json.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rules/cel/containers.h"
#include "rules/cel/stdlib.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

using json = nlohmann::json;

json Encode(const Value& v) {
  absl::StatusOr<json> j = ValueToJson(v);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.value_or(json());
}

Value Decode(const char* text) {
  absl::StatusOr<Value> v = ValueFromJson(json::parse(text), "bindings.x");
  EXPECT_TRUE(v.ok()) << text << ": " << v.status();
  return v.value_or(Value::StaticError("decode failed"));
}

std::string DecodeError(const char* text) {
  absl::StatusOr<Value> v = ValueFromJson(json::parse(text), "bindings.x");
  EXPECT_FALSE(v.ok()) << text << " decoded as " << v->DebugString();
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(v.status().message());
}

Value List(std::vector<Value> elements) {
  return Value::OwnedList(new VectorList(std::move(elements)));
}

TEST(ValueToJsonTest, Scalars) {
  EXPECT_EQ(Encode(Value::Null()), json::parse(R"({"nullValue":null})"));
  EXPECT_EQ(Encode(Value::Bool(true)), json::parse(R"({"boolValue":true})"));
  EXPECT_EQ(Encode(Value::Int(-1)), json::parse(R"({"int64Value":"-1"})"));
  EXPECT_EQ(Encode(Value::Int(std::numeric_limits<int64_t>::min())),
            json::parse(R"({"int64Value":"-9223372036854775808"})"));
  EXPECT_EQ(Encode(Value::Uint(18446744073709551615u)),
            json::parse(R"({"uint64Value":"18446744073709551615"})"));
  EXPECT_EQ(Encode(Value::Double(1.5)), json::parse(R"({"doubleValue":1.5})"));
  EXPECT_EQ(Encode(Value::Double(std::nan(""))),
            json::parse(R"({"doubleValue":"NaN"})"));
  EXPECT_EQ(Encode(Value::Double(HUGE_VAL)),
            json::parse(R"({"doubleValue":"Infinity"})"));
  EXPECT_EQ(Encode(Value::Double(-HUGE_VAL)),
            json::parse(R"({"doubleValue":"-Infinity"})"));
  EXPECT_EQ(Encode(Value::BorrowedString("a\xc3\xbf")),
            json::parse("{\"stringValue\":\"a\xc3\xbf\"}"));
  EXPECT_EQ(Encode(Value::BorrowedBytes(absl::string_view("\0\xff\x10", 3))),
            json::parse(R"({"bytesValue":"AP8Q"})"));
  EXPECT_EQ(Encode(Value::BorrowedBytes("a")),
            json::parse(R"({"bytesValue":"YQ=="})"));
  EXPECT_EQ(Encode(Value::TypeOf(Kind::kInt)),
            json::parse(R"({"typeValue":"int"})"));
  EXPECT_EQ(Encode(Value::TypeOf(Kind::kTimestamp)),
            json::parse(R"({"typeValue":"google.protobuf.Timestamp"})"));
  EXPECT_EQ(Encode(Value::TypeOf(Kind::kNull)),
            json::parse(R"({"typeValue":"null_type"})"));
}

TEST(ValueToJsonTest, TimestampAndDuration) {
  EXPECT_EQ(Encode(Value::FromTimestamp({1234567890, 0})), json::parse(R"(
      {"objectValue":{"@type":"type.googleapis.com/google.protobuf.Timestamp",
                      "value":"2009-02-13T23:31:30Z"}})"));
  EXPECT_EQ(Encode(Value::FromDuration({1, 500000000})), json::parse(R"(
      {"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration",
                      "value":"1.5s"}})"));
}

// The text is CEL's string() (TimestampToString / DurationToString): the
// fewest fraction digits, not protobuf's 0/3/6/9.
std::string ObjectText(const Value& v) {
  json j = Encode(v);
  if (!j.contains("objectValue")) return "<no objectValue: " + j.dump() + ">";
  return j["objectValue"]["value"].get<std::string>();
}

TEST(ValueToJsonTest, FewestFractionDigits) {
  auto dur = [](int64_t s, int32_t n) {
    return ObjectText(Value::FromDuration({s, n}));
  };
  auto ts = [](int64_t s, int32_t n) {
    return ObjectText(Value::FromTimestamp({s, n}));
  };
  EXPECT_EQ(dur(1, 500000000), "1.5s");
  EXPECT_EQ(dur(3600, 0), "3600s");
  EXPECT_EQ(dur(0, 0), "0s");
  EXPECT_EQ(dur(0, 1), "0.000000001s");
  EXPECT_EQ(dur(0, -1), "-0.000000001s");
  EXPECT_EQ(dur(-1, -500000), "-1.0005s");
  EXPECT_EQ(dur(0, 120000), "0.00012s");
  EXPECT_EQ(dur(9223372036, 854775807), "9223372036.854775807s");
  EXPECT_EQ(dur(-9223372036, -854775808), "-9223372036.854775808s");
  EXPECT_EQ(ts(1234567890, 0), "2009-02-13T23:31:30Z");
  EXPECT_EQ(ts(1234567890, 500000000), "2009-02-13T23:31:30.5Z");
  EXPECT_EQ(ts(1234567890, 120000), "2009-02-13T23:31:30.00012Z");
  EXPECT_EQ(ts(1234567890, 1), "2009-02-13T23:31:30.000000001Z");
  EXPECT_EQ(ts(-1, 0), "1969-12-31T23:59:59Z");
  EXPECT_EQ(ts(253402300799, 999999999), "9999-12-31T23:59:59.999999999Z");
  // Exactly what string() gives.
  for (Duration d : {Duration{1, 500000000}, Duration{-7, -10}}) {
    EXPECT_EQ(dur(d.seconds, d.nanos), DurationToString(d));
  }
  EXPECT_EQ(ts(1234567890, 250000000),
            TimestampToString({1234567890, 250000000}));
}

TEST(ValueToJsonTest, Containers) {
  EXPECT_EQ(Encode(List({})), json::parse(R"({"listValue":{"values":[]}})"));
  EXPECT_EQ(Encode(List({Value::Int(1), Value::BorrowedString("one")})),
            json::parse(R"({"listValue":{"values":[{"int64Value":"1"},
                                                   {"stringValue":"one"}]}})"));
  auto* map = new VectorMap();
  Value m = Value::OwnedMap(map);
  ASSERT_TRUE(map->Insert(Value::BorrowedString("b"), Value::Bool(false)).ok());
  ASSERT_TRUE(map->Insert(Value::Int(1), List({Value::Null()})).ok());
  EXPECT_EQ(Encode(m), json::parse(R"({"mapValue":{"entries":[
      {"key":{"stringValue":"b"},"value":{"boolValue":false}},
      {"key":{"int64Value":"1"},"value":{"listValue":{"values":[{"nullValue":null}]}}}
  ]}})"));
}

TEST(ValueToJsonTest, Unencodable) {
  absl::StatusOr<json> j = ValueToJson(Value::StaticError("division by zero"));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().message(),
            "cannot encode an error value: division by zero");
  j = ValueToJson(List({Value::Int(1), Value::StaticError("inner")}));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().message(), "cannot encode an error value: inner");
  j = ValueToJson(Value::BorrowedString("\xff"));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().message(), "string is not valid UTF-8");
  Value deep = Value::Int(0);
  for (int i = 0; i < kMaxJsonValueDepth + 1; ++i) deep = List({deep});
  j = ValueToJson(deep);
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("nested deeper than"), std::string::npos);
}

TEST(ValueFromJsonTest, Scalars) {
  EXPECT_TRUE(Decode(R"({"nullValue":null})").IsNull());
  EXPECT_TRUE(Decode(R"({"nullValue":"NULL_VALUE"})").IsNull());
  Value v = Decode(R"({"boolValue":true})");
  ASSERT_TRUE(v.IsBool());
  EXPECT_TRUE(v.bool_value());
  for (const char* text : {R"({"int64Value":"-1"})", R"({"int64Value":-1})",
                           R"({"int64Value":-1.0})"}) {
    v = Decode(text);
    ASSERT_TRUE(v.IsInt()) << text;
    EXPECT_EQ(v.int_value(), -1);
  }
  v = Decode(R"({"int64Value":"9223372036854775807"})");
  ASSERT_TRUE(v.IsInt());
  EXPECT_EQ(v.int_value(), 9223372036854775807);
  v = Decode(R"({"int64Value":9223372036854775807})");
  ASSERT_TRUE(v.IsInt());
  EXPECT_EQ(v.int_value(), 9223372036854775807);
  for (const char* text : {R"({"uint64Value":"18446744073709551615"})",
                           R"({"uint64Value":18446744073709551615})"}) {
    v = Decode(text);
    ASSERT_TRUE(v.IsUint()) << text;
    EXPECT_EQ(v.uint_value(), 18446744073709551615u);
  }
  v = Decode(R"({"doubleValue":1.5})");
  ASSERT_TRUE(v.IsDouble());
  EXPECT_EQ(v.double_value(), 1.5);
  v = Decode(R"({"doubleValue":3})");
  ASSERT_TRUE(v.IsDouble());
  EXPECT_EQ(v.double_value(), 3.0);
  v = Decode(R"({"doubleValue":"2.5e1"})");
  ASSERT_TRUE(v.IsDouble());
  EXPECT_EQ(v.double_value(), 25.0);
  v = Decode(R"({"doubleValue":"NaN"})");
  ASSERT_TRUE(v.IsDouble());
  EXPECT_TRUE(std::isnan(v.double_value()));
  v = Decode(R"({"doubleValue":"-Infinity"})");
  ASSERT_TRUE(v.IsDouble());
  EXPECT_EQ(v.double_value(), -HUGE_VAL);
  v = Decode(R"({"stringValue":"a\u00ff"})");
  ASSERT_TRUE(v.IsString());
  EXPECT_EQ(v.string_value(), "a\xc3\xbf");
  for (const char* text :
       {R"({"bytesValue":"AP8Q"})", R"({"bytesValue":"AP8Q"})",
        R"({"bytesValue":"AP-_"})"}) {
    v = Decode(text);
    ASSERT_TRUE(v.IsBytes()) << text;
  }
  EXPECT_EQ(Decode(R"({"bytesValue":"AP8Q"})").bytes_value(),
            absl::string_view("\0\xff\x10", 3));
  EXPECT_EQ(Decode(R"({"bytesValue":"AP-_"})").bytes_value(),
            absl::string_view("\0\xff\xbf", 3));  // URL-safe alphabet
  EXPECT_EQ(Decode(R"({"bytesValue":"YQ=="})").bytes_value(), "a");
  EXPECT_EQ(Decode(R"({"bytesValue":"YQ"})").bytes_value(), "a");
  EXPECT_EQ(Decode(R"({"bytesValue":""})").bytes_value(), "");
  v = Decode(R"({"typeValue":"google.protobuf.Duration"})");
  ASSERT_TRUE(v.IsType());
  EXPECT_EQ(v.type_name(), "google.protobuf.Duration");
}

TEST(ValueFromJsonTest, Objects) {
  Value v = Decode(R"({"objectValue":{
      "@type":"type.googleapis.com/google.protobuf.Timestamp",
      "value":"2009-02-14T01:31:30.5+02:00"}})");
  ASSERT_TRUE(v.IsTimestamp());
  EXPECT_EQ(v.timestamp_value(), (Timestamp{1234567890, 500000000}));
  v = Decode(R"({"objectValue":{
      "@type":"type.googleapis.com/google.protobuf.Duration","value":"-1.5s"}})");
  ASSERT_TRUE(v.IsDuration());
  EXPECT_EQ(v.duration_value(), (Duration{-1, -500000000}));
}

// Protobuf's 0/3/6/9-digit forms (and any other valid text) are still read;
// re-encoding gives the fewest digits.
TEST(ValueFromJsonTest, ObjectsInProtobufForm) {
  struct Case {
    const char* type;
    const char* in;
    const char* out;
  };
  for (const Case& c : {
           Case{"Duration", "1.500s", "1.5s"},
           Case{"Duration", "-0.000000001s", "-0.000000001s"},
           Case{"Duration", "3600.000s", "3600s"},
           Case{"Duration", "0.000120s", "0.00012s"},
           Case{"Duration", "1h30m", "5400s"},
           Case{"Timestamp", "2009-02-13T23:31:30.500Z",
                "2009-02-13T23:31:30.5Z"},
           Case{"Timestamp", "2009-02-13T23:31:30.000120Z",
                "2009-02-13T23:31:30.00012Z"},
           Case{"Timestamp", "2009-02-13T23:31:30.000Z",
                "2009-02-13T23:31:30Z"},
       }) {
    json in = {{"objectValue",
                {{"@type",
                  absl::StrCat("type.googleapis.com/google.protobuf.", c.type)},
                 {"value", c.in}}}};
    absl::StatusOr<Value> v = ValueFromJson(in);
    ASSERT_TRUE(v.ok()) << c.in << ": " << v.status();
    EXPECT_EQ(ObjectText(*v), c.out) << c.in;
  }
}

TEST(ValueFromJsonTest, ContainersAreOwned) {
  Value v;
  {
    json j = json::parse(R"({"listValue":{"values":[
        {"stringValue":"a long string that would be on the heap"},
        {"mapValue":{"entries":[{"key":{"stringValue":"k"},
                                 "value":{"bytesValue":"YQ=="}}]}}]}})");
    absl::StatusOr<Value> decoded = ValueFromJson(j);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    v = *decoded;
  }  // the json is gone; the value must not refer to it
  ASSERT_TRUE(v.IsList());
  ASSERT_EQ(v.list_value().size(), 2u);
  EXPECT_EQ(v.list_value().Get(0).string_value(),
            "a long string that would be on the heap");
  Value m = v.list_value().Get(1);
  ASSERT_TRUE(m.IsMap());
  Value found;
  ASSERT_TRUE(m.map_value().FindString("k", &found));
  EXPECT_EQ(found.bytes_value(), "a");
  Value empty = Decode(R"({"listValue":{}})");
  ASSERT_TRUE(empty.IsList());
  EXPECT_EQ(empty.list_value().size(), 0u);
  empty = Decode(R"({"mapValue":{}})");
  ASSERT_TRUE(empty.IsMap());
  EXPECT_EQ(empty.map_value().size(), 0u);
}

TEST(ValueFromJsonTest, RoundTrips) {
  for (
      const char* text : {
          R"({"nullValue":null})",
          R"({"boolValue":false})",
          R"({"int64Value":"-9223372036854775808"})",
          R"({"uint64Value":"0"})",
          R"({"doubleValue":-0.25})",
          R"({"doubleValue":"Infinity"})",
          R"({"stringValue":""})",
          R"({"bytesValue":"AP8Q"})",
          R"({"typeValue":"map"})",
          R"({"listValue":{"values":[{"int64Value":"1"},{"listValue":{"values":[]}}]}})",
          R"({"mapValue":{"entries":[{"key":{"boolValue":true},"value":{"uint64Value":"2"}}]}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"0001-01-01T00:00:00.000001Z"}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"-9223372036.854775808s"}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"9223372036.854775807s"}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.5s"}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration","value":"0.000000001s"}})",
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2009-02-13T23:31:30.5Z"}})",
      }) {
    json original = json::parse(text);
    absl::StatusOr<Value> v = ValueFromJson(original);
    ASSERT_TRUE(v.ok()) << text << ": " << v.status();
    absl::StatusOr<json> back = ValueToJson(*v);
    ASSERT_TRUE(back.ok()) << text << ": " << back.status();
    EXPECT_EQ(*back, original) << text;
  }
}

TEST(ValueFromJsonTest, ErrorsNameTheOffendingPart) {
  EXPECT_EQ(DecodeError(R"({"int64Value":"abc"})"),
            "bindings.x: int64Value: not an integer");
  EXPECT_EQ(DecodeError(R"({"int64Value":1.5})"),
            "bindings.x: int64Value: not an integer");
  EXPECT_EQ(DecodeError(R"({"int64Value":true})"),
            "bindings.x: int64Value: not an integer");
  EXPECT_EQ(DecodeError(R"({"int64Value":"9223372036854775808"})"),
            "bindings.x: int64Value: out of range");
  EXPECT_EQ(DecodeError(R"({"int64Value":9223372036854775808})"),
            "bindings.x: int64Value: out of range");
  EXPECT_EQ(DecodeError(R"({"int64Value":1e300})"),
            "bindings.x: int64Value: out of range");
  EXPECT_EQ(DecodeError(R"({"uint64Value":-1})"),
            "bindings.x: uint64Value: out of range");
  EXPECT_EQ(DecodeError(R"({"uint64Value":"-1"})"),
            "bindings.x: uint64Value: not an unsigned integer");
  EXPECT_EQ(DecodeError(R"({"uint64Value":"18446744073709551616"})"),
            "bindings.x: uint64Value: out of range");
  EXPECT_EQ(DecodeError(R"({"uint64Value":0.5})"),
            "bindings.x: uint64Value: not an integer");
  EXPECT_EQ(DecodeError(R"({"doubleValue":"fast"})"),
            "bindings.x: doubleValue: not a number");
  EXPECT_EQ(DecodeError(R"({"doubleValue":null})"),
            "bindings.x: doubleValue: not a number");
  EXPECT_EQ(DecodeError(R"({"boolValue":"true"})"),
            "bindings.x: boolValue: expected true or false");
  EXPECT_EQ(DecodeError(R"({"nullValue":0})"),
            "bindings.x: nullValue: expected null");
  EXPECT_EQ(DecodeError(R"({"stringValue":1})"),
            "bindings.x: stringValue: expected a string");
  EXPECT_EQ(DecodeError(R"({"bytesValue":"!!!"})"),
            "bindings.x: bytesValue: not valid base64");
  EXPECT_EQ(DecodeError(R"({"bytesValue":1})"),
            "bindings.x: bytesValue: expected a string");
  EXPECT_EQ(DecodeError(R"({"typeValue":"integer"})"),
            "bindings.x: typeValue: unknown type \"integer\"");
  EXPECT_EQ(DecodeError(R"({"typeValue":"error"})"),
            "bindings.x: typeValue: unknown type \"error\"");
  EXPECT_EQ(DecodeError(R"(1)"), "bindings.x: expected a JSON object");
  EXPECT_EQ(DecodeError(R"({})"),
            "bindings.x: expected exactly one member, got 0");
  EXPECT_EQ(DecodeError(R"({"boolValue":true,"int64Value":"1"})"),
            "bindings.x: expected exactly one member, got 2");
  EXPECT_EQ(DecodeError(R"({"floatValue":1})"),
            "bindings.x: unknown member \"floatValue\"");
}

TEST(ValueFromJsonTest, ContainerErrors) {
  EXPECT_EQ(DecodeError(R"({"listValue":[]})"),
            "bindings.x: listValue: expected an object");
  EXPECT_EQ(DecodeError(R"({"listValue":{"values":{}}})"),
            "bindings.x: listValue.values: expected an array");
  EXPECT_EQ(DecodeError(R"({"listValue":{"elements":[]}})"),
            "bindings.x: listValue: unknown member \"elements\"");
  EXPECT_EQ(
      DecodeError(
          R"({"listValue":{"values":[{"int64Value":"1"},{"int64Value":"x"}]}})"),
      "bindings.x.listValue.values[1]: int64Value: not an integer");
  EXPECT_EQ(
      DecodeError(R"({"mapValue":{"entries":[{"key":{"stringValue":"a"}}]}})"),
      "bindings.x.mapValue.entries[0]: missing value");
  EXPECT_EQ(DecodeError(
                R"({"mapValue":{"entries":[{"value":{"stringValue":"a"}}]}})"),
            "bindings.x.mapValue.entries[0]: missing key");
  EXPECT_EQ(
      DecodeError(
          R"({"mapValue":{"entries":[{"key":{"int64Value":"1"},"value":{"nullValue":null},"extra":1}]}})"),
      "bindings.x.mapValue.entries[0]: unknown member \"extra\"");
  EXPECT_EQ(
      DecodeError(R"({"mapValue":{"entries":[1]}})"),
      "bindings.x.mapValue.entries[0]: expected an object with key and value");
  EXPECT_EQ(
      DecodeError(
          R"({"mapValue":{"entries":[{"key":{"stringValue":"a"},"value":{"int64Value":"?"}}]}})"),
      "bindings.x.mapValue.entries[0].value: int64Value: not an integer");
  // Keys the map refuses (CEL map keys are bool, int, uint or string).
  std::string bad_key = DecodeError(
      R"({"mapValue":{"entries":[{"key":{"doubleValue":1.5},"value":{"nullValue":null}}]}})");
  EXPECT_EQ(bad_key.rfind("bindings.x.mapValue.entries[0].key: ", 0), 0u)
      << bad_key;
  std::string repeated = DecodeError(R"({"mapValue":{"entries":[
      {"key":{"int64Value":"1"},"value":{"nullValue":null}},
      {"key":{"uint64Value":"1"},"value":{"nullValue":null}}]}})");
  EXPECT_EQ(repeated.rfind("bindings.x.mapValue.entries[1].key: ", 0), 0u)
      << repeated;
}

TEST(ValueFromJsonTest, ObjectErrors) {
  EXPECT_EQ(DecodeError(R"({"objectValue":{"value":"1s"}})"),
            "bindings.x: objectValue: missing \"@type\"");
  EXPECT_EQ(
      DecodeError(
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Duration"}})"),
      "bindings.x: objectValue: expected {\"@type\": ..., \"value\": \"...\"}");
  EXPECT_EQ(
      DecodeError(
          R"({"objectValue":{"@type":"type.googleapis.com/google.protobuf.Any","value":"x"}})"),
      "bindings.x: objectValue: unsupported type "
      "\"type.googleapis.com/google.protobuf.Any\"");
  std::string ts = DecodeError(R"({"objectValue":{
      "@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2009-02-30T00:00:00Z"}})");
  EXPECT_EQ(ts.rfind("bindings.x: objectValue: invalid timestamp", 0), 0u)
      << ts;
  std::string range = DecodeError(R"({"objectValue":{
      "@type":"type.googleapis.com/google.protobuf.Duration","value":"320000000000s"}})");
  EXPECT_EQ(range.rfind("bindings.x: objectValue: duration out of range", 0),
            0u)
      << range;
  // CEL's range is int64 nanoseconds: one past either end is refused.
  for (const char* text :
       {"9223372036.854775808s", "-9223372036.854775809s", "315576000000s"}) {
    json j = {{"objectValue",
               {{"@type", "type.googleapis.com/google.protobuf.Duration"},
                {"value", text}}}};
    absl::StatusOr<Value> v = ValueFromJson(j, "bindings.x");
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(v.status().message().rfind(
                  "bindings.x: objectValue: duration out of range", 0),
              0u)
        << v.status();
  }
}

TEST(ValueFromJsonTest, DepthIsBounded) {
  std::string text;
  const int kDepth = 10000;
  for (int i = 0; i < kDepth; ++i) text += R"({"listValue":{"values":[)";
  text += R"({"nullValue":null})";
  for (int i = 0; i < kDepth; ++i) text += "]}}";
  absl::StatusOr<Value> v = ValueFromJson(json::parse(text), "bindings.deep");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("nested deeper than"), std::string::npos);
}

}  // namespace
}  // namespace tappa::cel
