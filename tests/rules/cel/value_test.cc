#include "rules/cel/value.h"

#include <string>

#include "gtest/gtest.h"
#include "rules/cel/containers.h"
#include "rules/cel/source.h"
#include "rules/cel/types.h"

namespace tappa::cel {
namespace {

TEST(ValueTest, ScalarsAreInline) {
  EXPECT_TRUE(Value().IsNull());
  EXPECT_EQ(Value::Int(-3).int_value(), -3);
  EXPECT_EQ(Value::Uint(3).uint_value(), 3u);
  EXPECT_EQ(Value::Double(1.5).double_value(), 1.5);
  EXPECT_TRUE(Value::Bool(true).bool_value());
  EXPECT_FALSE(Value::Int(1).IsOwned());
  EXPECT_EQ(sizeof(Value), 32u);
}

TEST(ValueTest, OwnedStringsSurviveTheirSource) {
  Value copy;
  {
    std::string source = "consideration";
    Value v = Value::String(source);
    source.assign("xxxxxxxxxxxxx");
    copy = v;
  }
  EXPECT_TRUE(copy.IsOwned());
  EXPECT_EQ(copy.string_value(), "consideration");
}

TEST(ValueTest, OwnCopiesBorrowedDataDeeply) {
  std::string s = "web";
  VectorList list;
  list.Append(Value::BorrowedString(s));
  Value owned = Value::BorrowedList(&list).Own();
  s.assign("app");
  ASSERT_TRUE(owned.IsList());
  EXPECT_EQ(owned.list_value().Get(0).string_value(), "web");
}

TEST(ValueTest, MoveLeavesNull) {
  Value a = Value::String("x");
  Value b = std::move(a);
  EXPECT_TRUE(a.IsNull());  // NOLINT(bugprone-use-after-move): documented.
  EXPECT_EQ(b.string_value(), "x");
}

TEST(ValueTest, DebugString) {
  EXPECT_EQ(Value::Int(1).DebugString(), "1");
  EXPECT_EQ(Value::Uint(2).DebugString(), "2u");
  EXPECT_EQ(Value::Double(1.5).DebugString(), "1.5");
  EXPECT_EQ(Value::Double(2).DebugString(), "2.0");
  EXPECT_EQ(Value::String("a\"b").DebugString(), "\"a\\\"b\"");
  EXPECT_EQ(Value::TypeOf(Kind::kInt).DebugString(), "int");
  EXPECT_EQ(Value::FromTimestamp({1234567890, 0}).DebugString(),
            "timestamp(\"2009-02-13T23:31:30Z\")");
  EXPECT_EQ(Value::Error("boom").DebugString(), "error(\"boom\")");
}

TEST(VectorMapTest, HeterogeneousNumericKeysFindTheSameEntry) {
  VectorMap map;
  ASSERT_TRUE(map.Insert(Value::Int(1), Value::String("one")).ok());
  Value out;
  EXPECT_TRUE(map.Find(Value::Uint(1), &out));
  EXPECT_EQ(out.string_value(), "one");
  EXPECT_TRUE(map.Find(Value::Double(1.0), &out));
  EXPECT_FALSE(map.Find(Value::Double(1.5), &out));
  EXPECT_FALSE(map.Find(Value::String("1"), &out));
  EXPECT_EQ(map.Insert(Value::Uint(1), Value::Null()).message(),
            "Failed with repeated key");
  EXPECT_EQ(map.Insert(Value::Double(2), Value::Null()).message(),
            "unsupported key type");
}

TEST(VectorMapTest, LargeMapsUseTheIndex) {
  VectorMap map;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(
        map.Insert(Value::String("k" + std::to_string(i)), Value::Int(i)).ok());
  }
  ASSERT_TRUE(map.Insert(Value::Int(-5), Value::Int(-5)).ok());
  Value out;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(map.FindString("k" + std::to_string(i), &out)) << i;
    EXPECT_EQ(out.int_value(), i);
  }
  EXPECT_TRUE(map.Find(Value::Double(-5), &out));
  EXPECT_FALSE(map.FindString("k1000", &out));
  EXPECT_EQ(map.KeyAt(3).string_value(), "k3");  // insertion order
}

TEST(SourceTest, PositionsCountCodePoints) {
  absl::string_view src = "a\n\xc3\xa9x";
  EXPECT_EQ(PositionOf(src, 0).line, 1);
  EXPECT_EQ(PositionOf(src, 2).line, 2);
  EXPECT_EQ(PositionOf(src, 2).column, 1);
  EXPECT_EQ(PositionOf(src, 4).column, 2);  // after the 2-byte é
  EXPECT_EQ(IssuesToStatus({{{2, 3}, "bad"}}).message(), "2:3: bad");
}

TEST(TypeTest, Spelling) {
  EXPECT_EQ(Type::Map(Type::String(), Type::List(Type::Int())).DebugString(),
            "map(string, list(int))");
  Type contact = Type::Object("contact", {{"phase", Type::String()}});
  EXPECT_EQ(contact.DebugString(), "contact");
  ASSERT_NE(contact.FindField("phase"), nullptr);
  EXPECT_EQ(contact.FindField("phase")->kind(), Type::Kind::kString);
  EXPECT_EQ(contact.FindField("phse"), nullptr);
  EXPECT_TRUE(Type() == Type::Dyn());
}

}  // namespace
}  // namespace tappa::cel
