#include "server/service/validation.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/ruleset/loader.h"

namespace tappa::server {
namespace {

using ::testing::StartsWith;

constexpr char kRules[] = R"yaml(
phases: [awareness]
channels: [web, email]
placements:
  - {id: web.home, channel: web}
  - {id: email.slot, channel: email}
actions:
  - {id: hello, kind: message, placements: [web.home]}
)yaml";

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ValidationTest, Ids) {
  EXPECT_TRUE(ValidateId("contact_id", "ada@example.com").ok());
  EXPECT_TRUE(ValidateId("contact_id", "caf\xc3\xa9").ok());
  for (std::string bad :
       {std::string(), std::string(129, 'x'), std::string("a\nb"),
        std::string("\xff\xfe"), std::string("a\x7f")}) {
    absl::Status s = ValidateId("contact_id", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(
        Message(s),
        "contact_id: must be 1-128 bytes of UTF-8 without control characters");
  }
  EXPECT_TRUE(ValidateId("contact_id", std::string(128, 'x')).ok());
}

TEST(ValidationTest, EventTypes) {
  EXPECT_TRUE(ValidateEventType("type", "product_view").ok());
  EXPECT_TRUE(ValidateEventType("type", "a").ok());
  for (const char* bad : {"", "Product", "9lives", "bad-type", "a b"}) {
    EXPECT_THAT(Message(ValidateEventType("type", bad)), StartsWith("type: "))
        << bad;
  }
  EXPECT_FALSE(ValidateEventType("type", std::string(65, 'a')).ok());
}

TEST(ValidationTest, ChannelsAndPlacementsComeFromTheRuleset) {
  auto rs = ruleset::LoadRulesetFromString(kRules, "v.yaml");
  ASSERT_TRUE(rs.ok()) << rs.status();
  int channel = -1, placement = -1;
  EXPECT_TRUE(ValidateChannel(**rs, "channel", "web", &channel).ok());
  EXPECT_EQ(Message(ValidateChannel(**rs, "channel", "fax", &channel)),
            "channel: 'fax' is not a channel of the ruleset");
  channel = (*rs)->FindChannel("web");
  EXPECT_TRUE(
      ValidatePlacement(**rs, "placement", "", channel, true, &placement).ok());
  EXPECT_EQ(placement, -1);
  EXPECT_EQ(Message(ValidatePlacement(**rs, "placement", "", channel, false,
                                      &placement)),
            "placement: is required");
  EXPECT_EQ(Message(ValidatePlacement(**rs, "placement", "email.slot", channel,
                                      false, &placement)),
            "placement: 'email.slot' is not on channel 'web'");
  EXPECT_THAT(Message(ValidatePlacement(**rs, "placement", "nope", channel,
                                        false, &placement)),
              StartsWith("placement: 'nope' is not a placement"));
}

TEST(ValidationTest, ValueMaps) {
  google::protobuf::Map<std::string, google::protobuf::Value> map;
  map["n"].set_number_value(3);
  map["d"].set_number_value(2.5);
  map["s"].set_string_value("x");
  map["b"].set_bool_value(true);
  std::vector<std::pair<std::string, cel::Value>> out;
  ASSERT_TRUE(ConvertValueMap("properties", map, 64, false, &out).ok());
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].first, "b");  // sorted
  EXPECT_TRUE(out[2].second.IsInt());
  EXPECT_TRUE(out[1].second.IsDouble());

  auto fails = [](google::protobuf::Map<std::string, google::protobuf::Value> m,
                  size_t max, bool allow_null) {
    std::vector<std::pair<std::string, cel::Value>> o;
    return Message(ConvertValueMap("properties", m, max, allow_null, &o));
  };
  google::protobuf::Map<std::string, google::protobuf::Value> big;
  for (int i = 0; i < 65; ++i)
    big["k" + std::to_string(i)].set_bool_value(true);
  EXPECT_EQ(fails(big, 64, false), "properties: at most 64 entries");
  google::protobuf::Map<std::string, google::protobuf::Value> bad_key;
  bad_key["bad key"].set_bool_value(true);
  EXPECT_THAT(fails(bad_key, 64, false),
              StartsWith("properties.'bad key': keys must match"));
  google::protobuf::Map<std::string, google::protobuf::Value> long_value;
  long_value["s"].set_string_value(std::string(1025, 'x'));
  EXPECT_EQ(fails(long_value, 64, false),
            "properties.s: string values are at most 1024 bytes");
  google::protobuf::Map<std::string, google::protobuf::Value> null_value;
  null_value["x"].set_null_value(google::protobuf::NULL_VALUE);
  EXPECT_THAT(fails(null_value, 64, false), StartsWith("properties.x: null"));
  EXPECT_EQ(fails(null_value, 64, true), "");
  google::protobuf::Map<std::string, google::protobuf::Value> nested;
  nested["x"].mutable_struct_value();
  EXPECT_THAT(fails(nested, 64, false),
              StartsWith("properties.x: values must be"));
}

}  // namespace
}  // namespace tappa::server
