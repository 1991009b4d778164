// Value <-> JSON: round trips, literals, error paths, base64, large-array summaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <quiver/core/json.hpp>
#include <set>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

Value round_trip(const Value& v) {
  return from_json(json::parse(to_json(v).dump()));
}

void collect_kinds(const Value& v, std::set<Kind>& kinds) {
  kinds.insert(v.kind());
  if (v.kind() == Kind::list)
    for (const auto& x : v.as_list()) collect_kinds(x, kinds);
  if (v.kind() == Kind::map)
    for (const auto& [k, x] : v.as_map()) collect_kinds(x, kinds);
}

TEST(JsonRoundTrip, SampleHoldsEveryKindAndEveryDType) {
  auto sample = testing::sample_value_of_every_kind();
  std::set<Kind> kinds;
  collect_kinds(sample, kinds);
  EXPECT_EQ(kinds.size(), 10u);
  std::set<DType> dtypes;
  for (const auto& [k, v] : sample.as_map())
    if (v.kind() == Kind::array) dtypes.insert(v.as_array().dtype());
  EXPECT_EQ(dtypes.size(), 12u);
}

TEST(JsonRoundTrip, EveryKindSurvivesJsonText) {
  auto sample = testing::sample_value_of_every_kind();
  EXPECT_EQ(round_trip(sample), sample);
}

TEST(JsonRoundTrip, EachEntryOfTheSampleSurvivesAlone) {
  auto sample = testing::sample_value_of_every_kind();
  for (const auto& [key, v] : sample.as_map())
    EXPECT_EQ(round_trip(v), v) << key << ": " << to_json(v).dump();
}

TEST(JsonRoundTrip, ExtremeScalarsSurvive) {
  for (const Value& v : {Value(std::numeric_limits<std::int64_t>::min()),
                         Value(std::numeric_limits<std::int64_t>::max()), Value(-0.0), Value(0.1),
                         Value(5e-324), Value(1e300), Value(1.0)}) {
    auto back = round_trip(v);
    EXPECT_EQ(back, v) << to_json(v).dump();
    EXPECT_EQ(back.kind(), v.kind()) << to_json(v).dump();
  }
}

TEST(JsonRoundTrip, NegativeZeroKeepsItsSign) {
  EXPECT_TRUE(std::signbit(round_trip(Value(-0.0)).as_double()));
}

TEST(JsonRoundTrip, IntegerValuedFloatStaysAFloat) {
  EXPECT_EQ(round_trip(Value(2.0)).kind(), Kind::floating);
  EXPECT_EQ(round_trip(Value(2)).kind(), Kind::integer);
}

TEST(JsonRoundTrip, MapsWhoseOnlyKeyLooksLikeATagAreEscaped) {
  for (const char* key : {"$array", "$bytes", "$object", "$map", "$", "$other"}) {
    auto v = Value::map({{key, 1}});
    EXPECT_EQ(to_json(v).begin().key(), "$map") << key;
    EXPECT_EQ(round_trip(v), v) << key;
  }
}

TEST(JsonRoundTrip, MapsWithSeveralDollarKeysAreNotEscaped) {
  auto v = Value::map({{"$a", 1}, {"$b", 2}});
  EXPECT_EQ(to_json(v), json::parse(R"({"$a": 1, "$b": 2})"));
  EXPECT_EQ(round_trip(v), v);
}

TEST(JsonForm, UsesTheDocumentedTags) {
  EXPECT_EQ(to_json(Value(Bytes{Buffer::copy_of(std::string_view("foo"))})),
            json::parse(R"({"$bytes": "Zm9v"})"));
  EXPECT_EQ(
      to_json(Value(Array::from(std::vector<std::int16_t>{1, 2, 3, 4}, {2, 2}))),
      json::parse(R"({"$array": {"dtype": "int16", "shape": [2, 2], "data": [1, 2, 3, 4]}})"));
  EXPECT_EQ(to_json(Value(Array::from(std::vector<std::complex<double>>{{1.5, -2.0}}))),
            json::parse(R"({"$array": {"dtype": "complex128", "shape": [1],
                                       "data": [[1.5, -2.0]]}})"));
  EXPECT_EQ(to_json(Value(Object{"demo::P", "xml", Buffer::copy_of(std::string_view("fo"))})),
            json::parse(R"({"$object": {"type": "demo::P", "archive": "xml", "blob": "Zm8="}})"));
}

TEST(JsonForm, ArrayWithoutShapeIsOneDimensional) {
  auto v = from_json(json::parse(R"({"$array": {"dtype": "uint8", "data": [1, 2, 3]}})"));
  EXPECT_EQ(v.as_array().shape(), (Shape{3}));
  EXPECT_EQ(v.as_array().to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{1, 2, 3}));
}

TEST(JsonForm, ObjectArchiveDefaultsToBinary) {
  auto v = from_json(json::parse(R"({"$object": {"type": "T", "blob": ""}})"));
  EXPECT_EQ(v.as_object().archive, "binary");
}

TEST(ParseLiteral, NumbersBoolsNullAndContainers) {
  EXPECT_EQ(parse_literal("3"), Value(3));
  EXPECT_EQ(parse_literal("3").kind(), Kind::integer);
  EXPECT_EQ(parse_literal("-3"), Value(-3));
  EXPECT_EQ(parse_literal("3.5"), Value(3.5));
  EXPECT_EQ(parse_literal("3.0").kind(), Kind::floating);
  EXPECT_EQ(parse_literal("1e3").kind(), Kind::floating);
  EXPECT_EQ(parse_literal("true"), Value(true));
  EXPECT_EQ(parse_literal("false"), Value(false));
  EXPECT_EQ(parse_literal("null"), Value());
  EXPECT_EQ(parse_literal("[1,2]"), Value::list({1, 2}));
  EXPECT_EQ(parse_literal("{\"a\":1}"), Value::map({{"a", 1}}));
}

TEST(ParseLiteral, TextThatIsNotJsonIsAString) {
  EXPECT_EQ(parse_literal("hello"), Value("hello"));
  EXPECT_EQ(parse_literal("hello world"), Value("hello world"));
  EXPECT_EQ(parse_literal(""), Value(""));
  EXPECT_EQ(parse_literal("3 4"), Value("3 4"));
  EXPECT_EQ(parse_literal("/scratch/run-1"), Value("/scratch/run-1"));
  EXPECT_EQ(parse_literal("True"), Value("True"));
}

TEST(ParseLiteral, QuotedTextIsTheUnquotedString) {
  EXPECT_EQ(parse_literal("\"quoted\""), Value("quoted"));
  EXPECT_EQ(parse_literal("\"3\""), Value("3"));
}

TEST(ParseLiteral, TaggedObjectsAreDecoded) {
  EXPECT_EQ(parse_literal(R"({"$bytes": "AAE="})"),
            Value(Bytes{Buffer::copy_of(std::string_view("\x00\x01", 2))}));
}

std::string where_of(const std::string& text) {
  try {
    from_json(json::parse(text));
  } catch (const InvalidArgument& e) {
    return e.where();
  }
  return "(accepted)";
}

TEST(JsonErrors, NameThePathOfTheBadElement) {
  EXPECT_EQ(where_of(R"({"a": {"$array": {"dtype": "int8", "shape": [3], "data": [1, 2, 300]}}})"),
            "JSON value at $.a.$array.data[2]");
  EXPECT_EQ(where_of(R"([0, {"b": {"$array": {"dtype": "float64", "data": [1, "x"]}}}])"),
            "JSON value at $[1].b.$array.data[1]");
  EXPECT_EQ(where_of(R"({"c": {"$array": {"dtype": "float128", "data": []}}})"),
            "JSON value at $.c.$array.dtype");
  EXPECT_EQ(where_of(R"({"$nope": 1})"), "JSON value at $");
  EXPECT_EQ(where_of(R"({"x": {"$bytes": "!!!!"}})"), "JSON value at $.x.$bytes");
  EXPECT_EQ(where_of(R"({"x": {"$object": {"type": 5, "blob": ""}}})"),
            "JSON value at $.x.$object.type");
  EXPECT_EQ(where_of(R"({"m": {"$map": {"k": {"$array": 1}}}})"),
            "JSON value at $.m.$map.k.$array");
}

TEST(JsonErrors, ShapeAndDataMustAgree) {
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "int8", "shape": [2, 2], "data": [1, 2, 3]}})"),
            "JSON value at $.$array.data");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "int8", "shape": [-1], "data": []}})"),
            "JSON value at $.$array.shape");
}

TEST(JsonErrors, ElementsMustFitTheDType) {
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "uint8", "data": [-1]}})"),
            "JSON value at $.$array.data[0]");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "int16", "data": [32768]}})"),
            "JSON value at $.$array.data[0]");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "int64", "data": [9223372036854775808]}})"),
            "JSON value at $.$array.data[0]");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "int32", "data": [1.5]}})"),
            "JSON value at $.$array.data[0]");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "complex64", "data": [[1]]}})"),
            "JSON value at $.$array.data[0]");
  EXPECT_EQ(where_of(R"({"$array": {"dtype": "uint64", "data": [18446744073709551615]}})"),
            "(accepted)");
}

TEST(JsonErrors, IntegerBeyondInt64IsRejected) {
  EXPECT_EQ(where_of(R"({"n": 9223372036854775808})"), "JSON value at $.n");
}

// RFC 4648 section 10 test vectors.
TEST(Base64, MatchesTheRfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {{"", ""},
                                                                   {"f", "Zg=="},
                                                                   {"fo", "Zm8="},
                                                                   {"foo", "Zm9v"},
                                                                   {"foob", "Zm9vYg=="},
                                                                   {"fooba", "Zm9vYmE="},
                                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(std::as_bytes(std::span(plain.data(), plain.size()))), encoded);
    EXPECT_EQ(base64_decode(encoded).view(), plain);
  }
}

TEST(Base64, RoundTripsEveryLengthUpTo20) {
  for (std::size_t n = 0; n <= 20; ++n) {
    std::string bytes;
    for (std::size_t i = 0; i < n; ++i) bytes += static_cast<char>((i * 97 + 251) & 0xff);
    auto encoded = base64_encode(std::as_bytes(std::span(bytes.data(), bytes.size())));
    EXPECT_EQ(encoded.size(), (n + 2) / 3 * 4) << n;
    EXPECT_EQ(base64_decode(encoded).view(), bytes) << n;
  }
}

TEST(Base64, UsesTheStandardAlphabet) {
  std::string high = "\xfb\xff\xbf";
  EXPECT_EQ(base64_encode(std::as_bytes(std::span(high.data(), high.size()))), "+/+/");
}

TEST(Base64, AcceptsMissingPadding) {
  EXPECT_EQ(base64_decode("Zg").view(), "f");
  EXPECT_EQ(base64_decode("Zm8").view(), "fo");
}

TEST(Base64, RejectsMalformedInput) {
  for (std::string_view bad : {"Z", "Zm9vY", "Zm9v!", "Zm 9v", "Zm9v\n",
                               "Z===", "Zg===", "Zm9v=", "Zm=8", "=Zm8", "Zh==", "Zm9=", "Zm-_"})
    EXPECT_THROW(base64_decode(bad), InvalidArgument) << "accepted '" << bad << "'";
}

TEST(ArraySummary, LargeArraysBecomeASummary) {
  Value big(testing::ramp(1000));
  auto j = to_json(big, 100);
  EXPECT_EQ(j, json::parse(R"({"$array": {"dtype": "float64", "shape": [1000], "data": null}})"));
}

TEST(ArraySummary, ArraysWithinTheLimitAreWritten) {
  Value small(testing::ramp(100));
  auto j = to_json(small, 100);
  ASSERT_TRUE(j["$array"]["data"].is_array());
  EXPECT_EQ(j["$array"]["data"].size(), 100u);
  EXPECT_EQ(j["$array"]["data"][99], 49.5);
}

TEST(ArraySummary, ZeroMeansNoLimit) {
  EXPECT_EQ(to_json(Value(testing::ramp(5000)), 0)["$array"]["data"].size(), 5000u);
}

TEST(ArraySummary, LimitAppliesInsideNestedValues) {
  auto v = Value::map({{"a", Value::list({Value(testing::ramp(50))})}, {"b", testing::ramp(5)}});
  auto j = to_json(v, 10);
  EXPECT_TRUE(j["a"][0]["$array"]["data"].is_null());
  EXPECT_EQ(j["b"]["$array"]["data"].size(), 5u);
}

}  // namespace
}  // namespace quiver
