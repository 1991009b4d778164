// The wire codec: every Value kind and every message round-trips; the byte layouts match
// docs/protocol.md; malformed input is a ProtocolError naming what and where, found before
// anything large is allocated.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <quiver/wire/protocol.hpp>
#include <set>

#include "fuzz/wire_samples.hpp"
#include "testing/testing.hpp"
#include "unit/wire_allocations.hpp"

namespace {

using namespace quiver;
using namespace quiver::wire;
using ::testing::HasSubstr;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string hex_of(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

Value decode_value_body(const std::string& body, const WireLimits& limits = {}) {
  Value v;
  read_flat_body(bytes_of(body), limits, [&](Reader& r) { decode(r, v); });
  return v;
}

Value round_trip(const Value& v) {
  Writer w;
  encode(w, v);
  return decode_value_body(w.flatten());
}

// The what() of the ProtocolError f throws; a test failure when it throws none.
template <class F>
std::string protocol_error_of(F&& f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ProtocolError thrown";
  return {};
}

// Field-wise equality of messages (Entry and Query have no operator==).
bool same(const Entry& a, const Entry& b) {
  return a.digest == b.digest && a.call == b.call && a.result == b.result && a.meta == b.meta;
}
bool same(const Query& a, const Query& b) {
  return a.function == b.function && a.args == b.args && a.created_after == b.created_after &&
         a.created_before == b.created_before && a.host == b.host && a.limit == b.limit;
}
template <class T>
bool same(const T& a, const T& b) {
  return a == b;
}
template <class T>
bool same(const std::optional<T>& a, const std::optional<T>& b) {
  return a.has_value() == b.has_value() && (!a || same(*a, *b));
}
template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return same(x, y); });
}
template <class... A>
bool same_fields(const std::tuple<A...>& x, const std::tuple<A...>& y) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (same(std::get<I>(x), std::get<I>(y)) && ...);
  }
  (std::index_sequence_for<A...>{});
}
bool same_message(const Message& a, const Message& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return true;
        } else {
          return same_fields(x.fields(), std::get<T>(b).fields());
        }
      },
      a);
}

// ---------------------------------------------------------------------------------------------
// Round trips

TEST(WireCodec, EveryValueKindRoundTrips) {
  auto v = quiver::testing::sample_value_of_every_kind();
  EXPECT_EQ(round_trip(v), v);
}

TEST(WireCodec, FloatBitsArePreservedExactly) {
  for (double d :
       {-0.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::denorm_min(),
        std::bit_cast<double>(0x7ff8dead0000beefULL)}) {
    auto back = round_trip(Value(d)).as_double();
    EXPECT_EQ(std::bit_cast<std::uint64_t>(back), std::bit_cast<std::uint64_t>(d));
  }
}

TEST(WireCodec, ArrayPayloadsTravelInTheBulkNotTheSkeleton) {
  Writer w;
  auto a = quiver::testing::ramp(1000);
  encode(w, Value(a));
  EXPECT_LT(w.skeleton().size(), 32u);
  ASSERT_EQ(w.bulk_pieces().size(), 1u);
  EXPECT_EQ(w.bulk_pieces()[0].data(), a.buffer().data());  // referenced, not copied
  EXPECT_EQ(w.bulk_bytes(), a.nbytes());
}

// receive_into points the bulk of the arrays that fit their destination straight at it; the
// others (and paths naming no array) are left to place_arrays, which copies or reports them.
TEST(WireCodec, ReceiveIntoReadsFittingArraysStraightIntoTheirDestination) {
  Value::Map m;
  m["T"] = Value(quiver::testing::ramp(1000, 1.0));
  m["list"] = Value(Value::List{Value(std::int64_t{1}), Value(quiver::testing::ramp(8, 2.0))});
  m["small"] = Value(quiver::testing::ramp(4, 3.0));
  const Value sent(std::move(m));
  Writer w;
  encode(w, sent);
  const auto body = w.flatten();

  std::vector<double> t(1000), item(8), too_big(5);
  ArrayDestinations into{{"T", ArrayInto::of(std::span(t))},
                         {"list/1", ArrayInto::of(std::span(item))},
                         {"small", ArrayInto::of(std::span(too_big))},
                         {"list/0", ArrayInto::of(std::span(item).first(1))}};
  Value v;
  read_flat_body(bytes_of(body), {}, [&](Reader& r) {
    decode(r, v);
    receive_into(r, v, into);
  });
  EXPECT_EQ(v, sent);
  EXPECT_EQ(v.as_map().at("T").as_array().buffer().data(), reinterpret_cast<std::byte*>(t.data()));
  EXPECT_EQ(v.as_map().at("list").as_list()[1].as_array().buffer().data(),
            reinterpret_cast<std::byte*>(item.data()));
  EXPECT_EQ(t[999], sent.as_map().at("T").as_array().as<double>()[999]);
  EXPECT_NE(v.as_map().at("small").as_array().buffer().data(),
            reinterpret_cast<std::byte*>(too_big.data()));
  EXPECT_THAT(quiver::testing::error_of<TypeError>([&] { place_arrays(v, into); }),
              HasSubstr("'list/0'"));
  into.erase("list/0");
  EXPECT_THAT(quiver::testing::error_of<TypeError>([&] { place_arrays(v, into); }),
              HasSubstr("'small'"));
}

TEST(WireCodec, SamplesCoverEveryMessageType) {
  std::set<MessageType> covered;
  for (const auto& m : quiver::testing::sample_messages()) covered.insert(type_of(m));
  std::set<MessageType> all;
#define QUIVER_X(S, name, code) all.insert(MessageType::name);
  QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
  EXPECT_EQ(covered, all);
}

class WireMessageRoundTrip : public ::testing::TestWithParam<Message> {};

TEST_P(WireMessageRoundTrip, PreservesEveryField) {
  const Message& m = GetParam();
  auto body = encode_body(m);
  auto back = decode_body(type_of(m), bytes_of(body));
  EXPECT_TRUE(same_message(m, back)) << message_type_name(type_of(m));
}

INSTANTIATE_TEST_SUITE_P(EveryType, WireMessageRoundTrip,
                         ::testing::ValuesIn(quiver::testing::sample_messages()),
                         [](const ::testing::TestParamInfo<Message>& p) {
                           return std::string(message_type_name(type_of(p.param)));
                         });

// ---------------------------------------------------------------------------------------------
// Layouts written out from docs/protocol.md

TEST(WireCodecLayout, IntegerIsKindThenLittleEndianInt64) {
  Writer w;
  encode(w, Value(-2));
  EXPECT_EQ(hex_of(w.skeleton()), "02feffffffffffffff");
  EXPECT_EQ(w.bulk_bytes(), 0u);
}

TEST(WireCodecLayout, ArrayIsDtypeRankDimsWithThePayloadInTheBulk) {
  Value v(Array::from(std::vector<std::int16_t>{1, -1}));  // outlives w, which references it
  Writer w;
  encode(w, v);
  // preamble: skeleton 11 bytes, bulk 4 bytes | kind 6, dtype int16 = 2, rank 1, dim 2 | bulk
  EXPECT_EQ(hex_of(w.flatten()),
            "0b00000000000000"
            "0400000000000000"
            "060201"
            "0200000000000000"
            "0100ffff");
}

TEST(WireCodecLayout, MapKeysAreWrittenInBytewiseOrder) {
  Writer w;
  encode(w, Value::map({{"b", true}, {"a", Value()}}));
  EXPECT_EQ(hex_of(w.skeleton()),
            "08"
            "0200000000000000"
            "010000000000000061"
            "00"
            "010000000000000062"
            "0101");
}

TEST(WireCodecLayout, BytesAndObjectsDeclareTheirLengthAndUseTheBulk) {
  Value v(Bytes{Buffer::copy_of(std::string_view("xyz"))});
  Writer w;
  encode(w, v);
  EXPECT_EQ(hex_of(w.flatten()),
            "0900000000000000"
            "0300000000000000"
            "05"
            "0300000000000000"
            "78797a");
}

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(WireCodecMalformed, UnknownKindCodeIsRejectedAtItsOffset) {
  Writer w;
  w.u8(8);
  w.u64(1);
  w.str("k");
  w.u8(42);
  auto what = protocol_error_of([&] { decode_value_body(w.flatten()); });
  EXPECT_THAT(what, HasSubstr("unknown value kind code 42 at skeleton byte 18"));
}

TEST(WireCodecMalformed, UnknownDtypeCodeIsRejected) {
  Writer w;
  w.u8(6);
  w.u8(13);
  w.u8(1);
  w.u64(1);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("unknown dtype code 13 at skeleton byte 1"));
}

TEST(WireCodecMalformed, HugeDeclaredArrayShapeWithSmallPayloadFailsWithoutAllocating) {
  std::array<std::byte, 8> payload{};
  Writer w;
  w.u8(6);
  w.u8(10);  // float64
  w.u8(1);
  w.u64(1'000'000'000'000ULL);
  w.bulk_implied(payload);
  auto body = w.flatten();
  quiver::testing::LargeAllocations large(1 << 20);
  auto what = protocol_error_of([&] { decode_value_body(body); });
  EXPECT_THAT(what, HasSubstr("8000000000000 bytes"));
  EXPECT_THAT(what, HasSubstr("only 8 more bulk bytes"));
  EXPECT_EQ(large.count(), 0);
}

TEST(WireCodecMalformed, ArrayShapeOverflowingSixtyFourBitsIsRejected) {
  Writer w;
  w.u8(6);
  w.u8(10);
  w.u8(2);
  w.u64(1ULL << 40);
  w.u64(1ULL << 40);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("overflows 64 bits"));
}

TEST(WireCodecMalformed, RankAboveTheMaximumIsRejected) {
  Writer w;
  w.u8(6);
  w.u8(1);
  w.u8(kMaxRank + 1);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("array rank 33 exceeds the maximum of 32"));
}

// Lists nested `lists` deep around a null.
std::string nested_lists(std::size_t lists) {
  Writer w;
  for (std::size_t i = 0; i < lists; ++i) {
    w.u8(7);
    w.u64(1);
  }
  w.u8(0);
  return w.flatten();
}

TEST(WireCodecMalformed, NestingAtTheLimitIsAccepted) {
  EXPECT_NO_THROW(decode_value_body(nested_lists(kMaxDepth - 1)));
}

TEST(WireCodecMalformed, NestingBeyondTheLimitIsRejected) {
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(nested_lists(kMaxDepth)); }),
              HasSubstr("nests deeper than 64 levels"));
}

TEST(WireCodecMalformed, EncodingAValueNestedTooDeepIsAnInvalidArgument) {
  Value v;
  for (std::size_t i = 0; i < kMaxDepth; ++i) v = Value::list({v});
  Writer w;
  EXPECT_THROW(encode(w, v), InvalidArgument);
}

TEST(WireCodecMalformed, DuplicateMapKeysAreRejected) {
  Writer w;
  w.u8(8);
  w.u64(2);
  w.str("a");
  w.u8(0);
  w.str("a");
  w.u8(0);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("duplicate map key \"a\" at skeleton byte 19"));
}

TEST(WireCodecMalformed, UnsortedMapKeysAreRejected) {
  Writer w;
  w.u8(8);
  w.u64(2);
  w.str("b");
  w.u8(0);
  w.str("a");
  w.u8(0);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("map key \"a\" is not after \"b\""));
}

TEST(WireCodecMalformed, TrailingBytesInTheSkeletonAreRejected) {
  Writer w;
  encode(w, Value(1));
  w.u8(0);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("1 trailing bytes after the last field"));
}

TEST(WireCodecMalformed, TrailingBytesAfterTheBodyAreRejected) {
  Writer w;
  encode(w, Value(1));
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten() + "x"); }),
              HasSubstr("declares a body of 25 bytes, it has 26"));
}

TEST(WireCodecMalformed, BulkNotClaimedByTheSkeletonIsRejected) {
  std::array<std::byte, 8> payload{};
  Writer w;
  encode(w, Value(1));
  w.bulk_implied(payload);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("declares 0 bulk bytes, the body carries 8"));
}

TEST(WireCodecMalformed, BooleanByteOtherThanZeroOrOneIsRejected) {
  Writer w;
  w.u8(1);
  w.u8(2);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("boolean byte 2 is neither 0 nor 1 at skeleton byte 1"));
}

TEST(WireCodecMalformed, StringLongerThanTheSkeletonIsRejected) {
  Writer w;
  w.u8(4);
  w.u64(1000);
  w.raw("abc", 3);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten()); }),
              HasSubstr("string of 1000 bytes, but only 3 bytes left"));
}

TEST(WireCodecMalformed, HugeListCountFailsWithoutAllocating) {
  Writer w;
  w.u8(7);
  w.u64(1ULL << 60);
  auto body = w.flatten();
  quiver::testing::LargeAllocations large(1 << 20);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(body); }),
              HasSubstr("count of 1152921504606846976 elements, but only 0 bytes left"));
  EXPECT_EQ(large.count(), 0);
}

TEST(WireCodecMalformed, SkeletonOverTheLimitFailsWithoutAllocating) {
  std::string body(kPreambleSize, '\0');
  body[5] = 1;  // skeleton length 2^40
  quiver::testing::LargeAllocations large(1 << 20);
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(body); }),
              HasSubstr("skeleton of 1099511627776 bytes exceeds the maximum"));
  EXPECT_EQ(large.count(), 0);
}

TEST(WireCodecMalformed, BulkOverTheLimitIsRejected) {
  Value v(Bytes{Buffer::copy_of(std::string(4096, 'x'))});
  Writer w;
  encode(w, v);
  WireLimits limits;
  limits.max_bulk = 1024;
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(w.flatten(), limits); }),
              HasSubstr("bulk of 4096 bytes exceeds the maximum of 1024"));
}

TEST(WireCodecMalformed, TruncatedBodyIsRejected) {
  Writer w;
  encode(w, Value("hello"));
  auto body = w.flatten();
  EXPECT_THAT(protocol_error_of([&] { decode_value_body(body.substr(0, 10)); }),
              HasSubstr("truncated body"));
}

TEST(WireCodecMalformed, MalformedJsonInAnInfoReplyIsRejected) {
  Writer w;
  w.str("{\"cache\": ");
  EXPECT_THAT(
      protocol_error_of([&] { decode_body(MessageType::info_reply, bytes_of(w.flatten())); }),
      HasSubstr("malformed JSON text"));
}

TEST(WireCodecMalformed, GreetingOfAnotherProtocolVersionNamesBothVersions) {
  Writer w;
  w.u32(kProtocolVersion + 1);
  EXPECT_THAT(protocol_error_of([&] { decode_body(MessageType::greeting, bytes_of(w.flatten())); }),
              HasSubstr("the peer speaks quiver wire protocol 2, this side speaks protocol 1"));
}

TEST(WireCodecMalformed, FrameLimitBelowTheMinimumIsRejected) {
  Hello hello;
  hello.limits.max_frame = 1000;
  EXPECT_THAT(
      protocol_error_of([&] { decode_body(MessageType::hello, bytes_of(encode_body(hello))); }),
      HasSubstr("maximum frame size 1000 is below the minimum of 65536"));
}

// ---------------------------------------------------------------------------------------------
// Message types and errors

TEST(WireMessageTypes, EachReplyCodeIsItsRequestCodePlusOne) {
  EXPECT_EQ(reply_type(MessageType::load), MessageType::load_reply);
  EXPECT_EQ(reply_type(MessageType::save_many), MessageType::save_many_reply);
  EXPECT_EQ(reply_type(MessageType::load_reply), std::nullopt);
  EXPECT_EQ(reply_type(MessageType::greeting), std::nullopt);
}

TEST(WireMessageTypes, UnknownCodesHaveNoType) {
  EXPECT_EQ(message_type_from_code(0), std::nullopt);
  EXPECT_EQ(message_type_from_code(0x002c), std::nullopt);
  EXPECT_EQ(message_type_from_code(0x0016), MessageType::load);
}

TEST(WireErrors, ErrorReplyRaisesTheTypedException) {
  auto reply = ErrorReply::from(NotFound("no entry for 'abcd'", "quiver::Hdf5Store"));
  auto back = std::get<ErrorReply>(decode_body(MessageType::error, bytes_of(encode_body(reply))));
  try {
    back.raise();
    FAIL() << "raise() returned";
  } catch (const NotFound& e) {
    EXPECT_EQ(e.message(), "no entry for 'abcd'");
    EXPECT_EQ(e.where(), "quiver::Hdf5Store");
  }
}

TEST(WireErrors, ForeignExceptionsBecomeServerErrors) {
  auto reply = ErrorReply::from(std::runtime_error("disk on fire"));
  EXPECT_EQ(reply.code, ErrorCode::server_error);
  EXPECT_THROW(reply.raise(), ServerError);
}

TEST(WireErrors, ExpectReplyRaisesErrorsAndRejectsOtherTypes) {
  Incoming error{7, ErrorReply{ErrorCode::rejected, "read-only", "quiver serve"}};
  EXPECT_THROW(expect_reply<SaveReply>(std::move(error)), Rejected);
  Incoming pong{8, Pong{}};
  EXPECT_THAT(protocol_error_of([&] { expect_reply<SaveReply>(std::move(pong)); }),
              HasSubstr("expected a save_reply message for request 8, got pong"));
}

}  // namespace
