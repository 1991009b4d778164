// The canonical key encoding and digest rules of docs/digest.md, pinned by the golden
// vectors that tests/golden/digest_reference.py (an independent implementation) wrote.
#include <gtest/gtest.h>

#include <bit>
#include <cctype>
#include <fstream>
#include <limits>
#include <quiver/core/call.hpp>
#include <quiver/core/digest.hpp>
#include <quiver/core/json.hpp>
#include <set>

#include "testing/testing.hpp"

namespace quiver {
namespace {

const std::string kGoldenDir = std::string(QUIVER_SOURCE_DIR) + "/tests/golden";

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// Replaces the test-only escape {"$float": "nan" | "inf" | "-inf" | "0x<bits>"} by the
// float64 it stands for; JSON itself cannot write these numbers.
nlohmann::json decode_float_escapes(const nlohmann::json& j) {
  if (j.is_object() && j.size() == 1 && j.contains("$float")) {
    auto s = j["$float"].get<std::string>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    return std::bit_cast<double>(std::stoull(s, nullptr, 16));
  }
  if (j.is_object()) {
    auto out = nlohmann::json::object();
    for (const auto& [k, v] : j.items()) out[k] = decode_float_escapes(v);
    return out;
  }
  if (j.is_array()) {
    auto out = nlohmann::json::array();
    for (const auto& v : j) out.push_back(decode_float_escapes(v));
    return out;
  }
  return j;
}

struct Vector {
  std::string name;
  nlohmann::json call;
  std::string canonical_hex;
  std::string digest;
};

nlohmann::json load_golden() {
  std::ifstream in(kGoldenDir + "/digest_vectors.json");
  if (!in) return nullptr;
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

std::vector<Vector> load_vectors() {
  auto doc = load_golden();
  std::vector<Vector> out;
  if (!doc.is_object() || !doc.contains("vectors")) return out;
  for (const auto& v : doc["vectors"])
    out.push_back({v["name"], v["call"], v["canonical_hex"], v["digest"]});
  return out;
}

Call call_from_description(const nlohmann::json& desc) {
  return Call(desc["function"].get<std::string>(), desc["version"].get<std::string>(),
              from_json(decode_float_escapes(desc["args"])).as_map());
}

TEST(GoldenFile, IsForThisKeyFormatVersionAndCoversEveryKind) {
  auto doc = load_golden();
  ASSERT_TRUE(doc.is_object()) << "cannot read " << kGoldenDir << "/digest_vectors.json";
  EXPECT_EQ(doc["key_format_version"].get<std::uint32_t>(), kKeyFormatVersion);
  auto vectors = load_vectors();
  ASSERT_GE(vectors.size(), 50u);

  std::set<Kind> kinds;
  std::set<DType> dtypes;
  auto visit = [&](auto&& self, const Value& v) -> void {
    kinds.insert(v.kind());
    if (v.kind() == Kind::array) dtypes.insert(v.as_array().dtype());
    if (v.kind() == Kind::list)
      for (const auto& x : v.as_list()) self(self, x);
    if (v.kind() == Kind::map)
      for (const auto& [k, x] : v.as_map()) self(self, x);
  };
  for (const auto& v : vectors) visit(visit, Value(call_from_description(v.call).args));
  EXPECT_EQ(kinds.size(), 10u) << "a Value kind has no golden vector";
  EXPECT_EQ(dtypes.size(), 12u) << "a dtype has no golden vector";
}

void PrintTo(const Vector& v, std::ostream* os) {
  *os << v.name;
}

class GoldenVector : public ::testing::TestWithParam<Vector> {};

TEST_P(GoldenVector, CanonicalBytesMatchTheReference) {
  auto call = call_from_description(GetParam().call);
  EXPECT_EQ(to_hex(canonical_bytes(call)), GetParam().canonical_hex);
}

TEST_P(GoldenVector, DigestMatchesTheReference) {
  auto call = call_from_description(GetParam().call);
  EXPECT_EQ(call.digest().hex(), GetParam().digest);
}

std::string vector_name(const ::testing::TestParamInfo<Vector>& info) {
  std::string name = info.param.name;
  for (auto& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Digest, GoldenVector, ::testing::ValuesIn(load_vectors()), vector_name);

TEST(GoldenFile, AgreesWithTheReferenceImplementationAndTheSpec) {
  auto r = testing::run({"python3", kGoldenDir + "/digest_reference.py", "--check"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(CallDigest, IsSha256OfTheCanonicalBytes) {
  Call call("f", "1", {{"x", 1}, {"y", "two"}});
  Sha256 sha;
  sha.update(canonical_bytes(call));
  EXPECT_EQ(call.digest(), sha.finish());
}

TEST(CallDigest, ArgumentInsertionOrderDoesNotMatter) {
  Call forward("f", "1");
  forward.arg("alpha", 1).arg("beta", 2.5).arg("gamma", "g").arg("delta", Value::list({1, 2}));
  Call backward("f", "1");
  backward.arg("delta", Value::list({1, 2})).arg("gamma", "g").arg("beta", 2.5).arg("alpha", 1);
  EXPECT_EQ(forward.digest(), backward.digest());
}

TEST(CallDigest, IntFloatAndStringOfOneDiffer) {
  auto as_int = Call("f").arg("x", 1).digest();
  auto as_float = Call("f").arg("x", 1.0).digest();
  auto as_string = Call("f").arg("x", "1").digest();
  EXPECT_NE(as_int, as_float);
  EXPECT_NE(as_int, as_string);
  EXPECT_NE(as_float, as_string);
}

TEST(CallDigest, EveryNanEncodesAlike) {
  auto quiet = Call("f").arg("x", std::numeric_limits<double>::quiet_NaN()).digest();
  auto negative = Call("f").arg("x", std::bit_cast<double>(0xfff8000000000001ULL)).digest();
  auto signalling = Call("f").arg("x", std::numeric_limits<double>::signaling_NaN()).digest();
  EXPECT_EQ(quiet, negative);
  EXPECT_EQ(quiet, signalling);
}

TEST(CallDigest, NegativeZeroDiffersFromZero) {
  EXPECT_NE(Call("f").arg("x", -0.0).digest(), Call("f").arg("x", 0.0).digest());
}

TEST(CallDigest, FunctionAndVersionAreBothPartOfTheKey) {
  auto base = Call("f", "1").digest();
  EXPECT_NE(base, Call("g", "1").digest());
  EXPECT_NE(base, Call("f", "2").digest());
  EXPECT_NE(base, Call("f", "").digest());
}

TEST(CallDigest, FieldBoundariesCannotBeShifted) {
  // Length prefixes keep "ab"+"c" apart from "a"+"bc".
  EXPECT_NE(Call("ab", "c").digest(), Call("a", "bc").digest());
  EXPECT_NE(Call("f").arg("ab", "c").digest(), Call("f").arg("a", "bc").digest());
}

TEST(CallDigest, EmptyFunctionNameIsRejected) {
  EXPECT_THROW(Call("").digest(), InvalidArgument);
  EXPECT_THROW(canonical_bytes(Call("", "1")), InvalidArgument);
}

TEST(ValueDigest, IsSha256OfTheValueEncodingInsideACall) {
  // In Call("f", "", {"x": v}) the value's bytes follow a fixed 44-byte head:
  // magic 6, version 4, function 8+1, version 8+0, arg count 8, key 8+1.
  auto v = testing::sample_value_of_every_kind();
  auto bytes = canonical_bytes(Call("f", "", {{"x", v}}));
  ASSERT_GT(bytes.size(), 44u);
  Sha256 sha;
  sha.update(std::string_view(bytes).substr(44));
  EXPECT_EQ(value_digest(v), sha.finish());
}

TEST(Sha256, MatchesTheFips180KnownAnswerForAbc) {
  Sha256 sha;
  sha.update(std::string_view("abc"));
  EXPECT_EQ(sha.finish().hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, MatchesTheKnownAnswerForTheEmptyMessage) {
  EXPECT_EQ(Sha256().finish().hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, IncrementalUpdatesEqualOneUpdate) {
  std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  Sha256 whole;
  whole.update(msg);
  Sha256 parts;
  for (char c : msg) parts.update(&c, 1);
  auto d = whole.finish();
  EXPECT_EQ(d, parts.finish());
  EXPECT_EQ(d.hex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

constexpr std::string_view kSample =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(DigestHex, RoundTripsThroughParse) {
  auto d = Digest::from_hex(kSample);
  EXPECT_EQ(d.hex(), kSample);
  EXPECT_EQ(d.bytes()[0], 0x01);
  EXPECT_EQ(d.bytes()[7], 0xef);
  ASSERT_TRUE(Digest::parse(kSample).has_value());
  EXPECT_EQ(*Digest::parse(kSample), d);
}

TEST(DigestHex, RejectsUppercase) {
  std::string upper(kSample);
  upper[10] = 'A';
  EXPECT_FALSE(Digest::parse(upper).has_value());
  EXPECT_THROW(Digest::from_hex(upper), InvalidArgument);
}

TEST(DigestHex, RejectsWrongLength) {
  EXPECT_FALSE(Digest::parse(kSample.substr(0, 63)).has_value());
  EXPECT_FALSE(Digest::parse(std::string(kSample) + "0").has_value());
  EXPECT_FALSE(Digest::parse("").has_value());
  EXPECT_THROW(Digest::from_hex(kSample.substr(0, 40)), InvalidArgument);
}

TEST(DigestHex, RejectsNonHexCharacters) {
  for (char bad : {'g', ' ', '/', '.', 'x', '\0'}) {
    std::string s(kSample);
    s[63] = bad;
    EXPECT_FALSE(Digest::parse(s).has_value()) << "accepted character " << static_cast<int>(bad);
    EXPECT_THROW(Digest::from_hex(s), InvalidArgument);
  }
}

TEST(DigestHex, ErrorNamesTheBadInput) {
  try {
    Digest::from_hex("not-a-digest");
    FAIL() << "from_hex accepted garbage";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("not-a-digest"), std::string::npos) << e.what();
  }
}

TEST(Prefix, AcceptsLowercaseHexOfAtLeastFourChars) {
  EXPECT_NO_THROW(check_prefix("abcd", "test"));
  EXPECT_NO_THROW(check_prefix("0123456789", "test"));
  EXPECT_NO_THROW(check_prefix(kSample, "test"));
}

TEST(Prefix, RejectsPathsAndEmptyInput) {
  for (std::string_view bad : {"../../etc", "/", "", "abcd/", "ab..", "./abcd"})
    EXPECT_THROW(check_prefix(bad, "test"), InvalidArgument) << "accepted '" << bad << "'";
}

TEST(Prefix, RejectsUppercase) {
  EXPECT_THROW(check_prefix("ABCD", "test"), InvalidArgument);
  EXPECT_THROW(check_prefix("abcD", "test"), InvalidArgument);
}

TEST(Prefix, RejectsTooShort) {
  EXPECT_THROW(check_prefix("abc", "test"), InvalidArgument);
  EXPECT_NO_THROW(check_prefix("ab", "test", 2));
}

TEST(Prefix, RejectsLongerThanADigest) {
  EXPECT_THROW(check_prefix(std::string(kSample) + "0", "test"), InvalidArgument);
}

TEST(Prefix, ErrorNamesWhere) {
  try {
    check_prefix("../../etc", "cache 'lab'");
    FAIL() << "check_prefix accepted a path";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.where(), "cache 'lab'");
  }
}

TEST(Prefix, IsHexPrefixFollowsTheRules) {
  EXPECT_TRUE(is_hex_prefix("0"));
  EXPECT_TRUE(is_hex_prefix(kSample));
  EXPECT_FALSE(is_hex_prefix(""));
  EXPECT_FALSE(is_hex_prefix("F"));
  EXPECT_FALSE(is_hex_prefix(std::string(kSample) + "a"));
}

Digest with_hex(std::string_view head) {
  std::string s(head);
  s.resize(kDigestHexLength, '0');
  return Digest::from_hex(s);
}

TEST(CommonPrefixLength, CountsHexCharacters) {
  EXPECT_EQ(common_prefix_length(with_hex("abcd"), with_hex("abce")), 3u);
  EXPECT_EQ(common_prefix_length(with_hex("abcd"), with_hex("abdd")), 2u);
  EXPECT_EQ(common_prefix_length(with_hex("a0"), with_hex("b0")), 0u);
  EXPECT_EQ(common_prefix_length(with_hex("a1"), with_hex("a2")), 1u);
  EXPECT_EQ(common_prefix_length(with_hex("7"), with_hex("7")), kDigestHexLength);
}

TEST(CommonPrefixLength, FindsADifferenceInTheLastCharacter) {
  std::string a(kSample), b(kSample);
  b[63] = 'e';
  EXPECT_EQ(common_prefix_length(Digest::from_hex(a), Digest::from_hex(b)), 63u);
}

}  // namespace
}  // namespace quiver
