#include "rules/cel/value.h"

#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "rules/cel/containers.h"

namespace tappa::cel {
namespace {

// Heap storage of owned strings, bytes and error messages.
class StringRep final : public RefCounted {
 public:
  explicit StringRep(std::string s) : s_(std::move(s)) {}
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

void AppendDebug(const Value& v, std::string* out);

void AppendQuoted(absl::string_view s, std::string* out) {
  out->push_back('"');
  out->append(absl::Utf8SafeCEscape(s));
  out->push_back('"');
}

void AppendDebug(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Kind::kNull:
      out->append("null");
      return;
    case Kind::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return;
    case Kind::kInt:
      absl::StrAppend(out, v.int_value());
      return;
    case Kind::kUint:
      absl::StrAppend(out, v.uint_value(), "u");
      return;
    case Kind::kDouble: {
      double d = v.double_value();
      if (std::isnan(d)) {
        out->append("double(\"NaN\")");
      } else if (std::isinf(d)) {
        out->append(d > 0 ? "double(\"Infinity\")" : "double(\"-Infinity\")");
      } else {
        // The shortest text that reads back as the same double.
        char buf[64];
        auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
        std::string s(buf, ec == std::errc() ? end : buf);
        if (s.find_first_of(".eEn") == std::string::npos) s.append(".0");
        out->append(s);
      }
      return;
    }
    case Kind::kString:
      AppendQuoted(v.string_value(), out);
      return;
    case Kind::kBytes:
      out->append("b\"");
      out->append(absl::CHexEscape(v.bytes_value()));
      out->push_back('"');
      return;
    case Kind::kList: {
      const ListValue& list = v.list_value();
      out->push_back('[');
      for (size_t i = 0; i < list.size(); ++i) {
        if (i > 0) out->append(", ");
        AppendDebug(list.Get(i), out);
      }
      out->push_back(']');
      return;
    }
    case Kind::kMap: {
      const MapValue& map = v.map_value();
      out->push_back('{');
      for (size_t i = 0; i < map.size(); ++i) {
        if (i > 0) out->append(", ");
        AppendDebug(map.KeyAt(i), out);
        out->append(": ");
        AppendDebug(map.ValueAt(i), out);
      }
      out->push_back('}');
      return;
    }
    case Kind::kTimestamp: {
      Timestamp t = v.timestamp_value();
      absl::Time time =
          absl::FromUnixSeconds(t.seconds) + absl::Nanoseconds(t.nanos);
      absl::StrAppend(
          out, "timestamp(\"",
          absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", time, absl::UTCTimeZone()),
          "\")");
      return;
    }
    case Kind::kDuration: {
      Duration d = v.duration_value();
      absl::Duration dur =
          absl::Seconds(d.seconds) + absl::Nanoseconds(d.nanos);
      absl::StrAppend(out, "duration(\"", absl::FormatDuration(dur), "\")");
      return;
    }
    case Kind::kType:
      absl::StrAppend(out, v.type_name());
      return;
    case Kind::kError:
      out->append("error(");
      AppendQuoted(v.error_message(), out);
      out->push_back(')');
      return;
  }
}

}  // namespace

absl::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
    case Kind::kTimestamp:
      return "google.protobuf.Timestamp";
    case Kind::kDuration:
      return "google.protobuf.Duration";
    case Kind::kType:
      return "type";
    case Kind::kError:
      return "error";
  }
  return "error";
}

Value Value::String(absl::string_view s) { return String(std::string(s)); }
Value Value::Bytes(absl::string_view b) { return Bytes(std::string(b)); }

Value Value::String(std::string&& s) {
  auto* rep = new StringRep(std::move(s));
  return Value(Kind::kString, rep->str().data(), rep->str().size(), rep);
}

Value Value::Bytes(std::string&& b) {
  auto* rep = new StringRep(std::move(b));
  return Value(Kind::kBytes, rep->str().data(), rep->str().size(), rep);
}

Value Value::Error(absl::string_view message) {
  auto* rep = new StringRep(std::string(message));
  return Value(Kind::kError, rep->str().data(), rep->str().size(), rep);
}

Value Value::BorrowedList(const ListValue* list) {
  Value v(Kind::kList);
  v.u_.list = list;
  return v;
}

Value Value::BorrowedMap(const MapValue* map) {
  Value v(Kind::kMap);
  v.u_.map = map;
  return v;
}

Value Value::OwnedList(const ListValue* list) {
  Value v(Kind::kList);
  v.u_.list = list;
  v.owner_ = list;
  list->Ref();
  return v;
}

Value Value::OwnedMap(const MapValue* map) {
  Value v(Kind::kMap);
  v.u_.map = map;
  v.owner_ = map;
  map->Ref();
  return v;
}

Value Value::Own() const {
  switch (kind_) {
    case Kind::kString:
      return owner_ != nullptr ? *this : String(string_value());
    case Kind::kBytes:
      return owner_ != nullptr ? *this : Bytes(bytes_value());
    case Kind::kError:
      return owner_ != nullptr ? *this : Error(error_message());
    case Kind::kList: {
      // Elements of even an owned list may borrow, so copy deeply.
      const ListValue& list = list_value();
      auto* copy = new VectorList();
      copy->Reserve(list.size());
      for (size_t i = 0; i < list.size(); ++i) copy->Append(list.Get(i).Own());
      return OwnedList(copy);
    }
    case Kind::kMap: {
      const MapValue& map = map_value();
      auto* copy = new VectorMap();
      for (size_t i = 0; i < map.size(); ++i) {
        // Keys of an existing map are valid and distinct: Insert cannot fail.
        copy->Insert(map.KeyAt(i).Own(), map.ValueAt(i).Own()).IgnoreError();
      }
      return OwnedMap(copy);
    }
    default:
      // Scalars and type values (static names) borrow nothing.
      return *this;
  }
}

std::string Value::DebugString() const {
  std::string out;
  AppendDebug(*this, &out);
  return out;
}

}  // namespace tappa::cel
