// Value and Array: construction, typed access, shapes, equality and shared buffers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <complex>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <quiver/core/value.hpp>
#include <set>
#include <sstream>
#include <string>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using ::testing::HasSubstr;

TEST(ValueKind, EachConstructorMakesItsKind) {
  EXPECT_EQ(Value().kind(), Kind::null);
  EXPECT_EQ(Value(nullptr).kind(), Kind::null);
  EXPECT_EQ(Value(true).kind(), Kind::boolean);
  EXPECT_EQ(Value(7).kind(), Kind::integer);
  EXPECT_EQ(Value(std::int8_t{-1}).kind(), Kind::integer);
  EXPECT_EQ(Value(std::uint32_t{7}).kind(), Kind::integer);
  EXPECT_EQ(Value(2.5).kind(), Kind::floating);
  EXPECT_EQ(Value(2.5f).kind(), Kind::floating);
  EXPECT_EQ(Value("text").kind(), Kind::string);
  EXPECT_EQ(Value(std::string("text")).kind(), Kind::string);
  EXPECT_EQ(Value(std::string_view("text")).kind(), Kind::string);
  EXPECT_EQ(Value(Bytes{}).kind(), Kind::bytes);
  EXPECT_EQ(Value(Array(DType::int8, {2})).kind(), Kind::array);
  EXPECT_EQ(Value(std::vector<double>{1, 2}).kind(), Kind::array);
  EXPECT_EQ(Value(Value::List{}).kind(), Kind::list);
  EXPECT_EQ(Value(std::vector<std::string>{"a"}).kind(), Kind::list);
  EXPECT_EQ(Value(Value::Map{}).kind(), Kind::map);
  EXPECT_EQ(Value(Object{}).kind(), Kind::object);
}

TEST(ValueKind, CodesAreTheDigestAndWireTags) {
  EXPECT_EQ(static_cast<int>(Kind::null), 0);
  EXPECT_EQ(static_cast<int>(Kind::boolean), 1);
  EXPECT_EQ(static_cast<int>(Kind::integer), 2);
  EXPECT_EQ(static_cast<int>(Kind::floating), 3);
  EXPECT_EQ(static_cast<int>(Kind::string), 4);
  EXPECT_EQ(static_cast<int>(Kind::bytes), 5);
  EXPECT_EQ(static_cast<int>(Kind::array), 6);
  EXPECT_EQ(static_cast<int>(Kind::list), 7);
  EXPECT_EQ(static_cast<int>(Kind::map), 8);
  EXPECT_EQ(static_cast<int>(Kind::object), 9);
}

TEST(ValueKind, NamesAreDistinct) {
  std::set<std::string_view> names;
  for (int k = 0; k <= 9; ++k) names.insert(kind_name(static_cast<Kind>(k)));
  EXPECT_EQ(names.size(), 10u);
  EXPECT_EQ(kind_name(Kind::floating), "float64");
  EXPECT_EQ(kind_name(static_cast<Kind>(42)), "invalid");
}

TEST(ValueOwnBorrowed, CopiesOnlyTheBuffersThatBorrowCallerMemory) {
  std::vector<double> mine{1.0, 2.0};
  const Array owned = Array::from(std::vector<double>{3.0, 4.0});
  Value v = Value::map({{"mine", Array::view(std::span<const double>(mine))},
                        {"owned", owned},
                        {"bytes", Bytes{Buffer::borrow(mine.data(), 8)}}});
  v.own_borrowed();
  EXPECT_NE(v["mine"].as_array().buffer().data(), reinterpret_cast<std::byte*>(mine.data()));
  EXPECT_FALSE(v["mine"].as_array().buffer().borrowed());
  EXPECT_FALSE(v["bytes"].as_bytes().data.borrowed());
  EXPECT_EQ(v["owned"].as_array().buffer().data(), owned.buffer().data()) << "owned stays shared";
  mine.assign({-1.0, -1.0});
  EXPECT_EQ(v["mine"].as_array().to_vector<double>(), (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(v["bytes"].as_bytes().data,
            Buffer::copy_of(std::as_bytes(std::span<const double>(std::vector<double>{1.0}))));
}

TEST(ValueAccess, ScalarsReadBack) {
  EXPECT_TRUE(Value(true).as_bool());
  EXPECT_FALSE(Value(false).as_bool());
  EXPECT_EQ(Value(-42).as_int(), -42);
  EXPECT_EQ(Value(std::numeric_limits<std::int64_t>::min()).as_int(),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(Value(std::uint64_t{9223372036854775807ULL}).as_int(),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(Value(0.25).as_double(), 0.25);
  EXPECT_EQ(Value(0.5f).as_double(), 0.5);
  EXPECT_EQ(Value("héllo").as_string(), "héllo");
  EXPECT_TRUE(Value().is_null());
  EXPECT_FALSE(Value(0).is_null());
}

TEST(ValueAccess, AsDoubleConvertsAnInt) {
  EXPECT_EQ(Value(3).as_double(), 3.0);
}

TEST(ValueAccess, AsIntDoesNotConvertAFloat) {
  EXPECT_THROW(Value(3.0).as_int(), TypeError);
}

TEST(ValueAccess, CompositesReadBack) {
  Bytes b{Buffer::copy_of(std::string_view("\x00\x01", 2))};
  EXPECT_EQ(Value(b).as_bytes().data.size(), 2u);
  auto l = Value::list({1, "two"});
  ASSERT_EQ(l.as_list().size(), 2u);
  EXPECT_EQ(l.as_list()[1].as_string(), "two");
  auto m = Value::map({{"a", 1}, {"b", Value::list({})}});
  EXPECT_EQ(m.as_map().size(), 2u);
  EXPECT_EQ(m["a"].as_int(), 1);
  Object o{"T", "text", Buffer::copy_of(std::string_view("blob"))};
  EXPECT_EQ(Value(o).as_object().type_name, "T");
  EXPECT_EQ(Value(o).as_object().blob.view(), "blob");
}

TEST(ValueAccess, MutableAccessorsChangeTheValue) {
  auto m = Value::map({{"a", 1}});
  m.as_map()["b"] = 2;
  EXPECT_EQ(m["b"].as_int(), 2);
  auto l = Value::list({1});
  l.as_list().push_back("x");
  EXPECT_EQ(l.as_list().size(), 2u);
  Value a(Array(DType::int32, {2}));
  a.as_array().as_mutable<std::int32_t>()[1] = 9;
  EXPECT_EQ(a.as_array().as<std::int32_t>()[1], 9);
}

TEST(ValueAccess, VectorOfStringsIsAListOfStrings) {
  Value v(std::vector<std::string>{"a", "b"});
  ASSERT_EQ(v.as_list().size(), 2u);
  EXPECT_EQ(v.as_list()[0].as_string(), "a");
  EXPECT_EQ(v.as_list()[1].as_string(), "b");
}

std::string type_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const TypeError& e) {
    return e.what();
  }
  return "(no TypeError)";
}

TEST(ValueAccess, WrongKindNamesTheActualKind) {
  EXPECT_THAT(type_error_of([] { (void)Value("s").as_int(); }), HasSubstr("value is string"));
  EXPECT_THAT(type_error_of([] { (void)Value("s").as_int(); }), HasSubstr("not int64"));
  EXPECT_THAT(type_error_of([] { (void)Value(1).as_string(); }), HasSubstr("value is int64"));
  EXPECT_THAT(type_error_of([] { (void)Value().as_bool(); }), HasSubstr("value is null"));
  EXPECT_THAT(type_error_of([] { (void)Value(1.5).as_map(); }), HasSubstr("value is float64"));
  EXPECT_THAT(type_error_of([] { (void)Value(true).as_list(); }), HasSubstr("value is bool"));
  EXPECT_THAT(type_error_of([] { (void)Value(Bytes{}).as_array(); }), HasSubstr("value is bytes"));
  EXPECT_THAT(type_error_of([] { (void)Value(Value::List{}).as_object(); }),
              HasSubstr("value is list"));
  EXPECT_THAT(type_error_of([] { (void)Value(Value::Map{}).as_bytes(); }),
              HasSubstr("value is map"));
  EXPECT_THAT(type_error_of([] { (void)Value(Object{}).as_double(); }),
              HasSubstr("value is object"));
  EXPECT_THAT(type_error_of([] { (void)Value(Array()).as_string(); }), HasSubstr("value is array"));
}

TEST(ValueAccess, MutableAccessorOfWrongKindThrows) {
  Value v(1);
  EXPECT_THROW(v.as_map(), TypeError);
  EXPECT_THROW(v.as_list(), TypeError);
  EXPECT_THROW(v.as_array(), TypeError);
}

TEST(ValueMapLookup, MissingKeyIsNotFoundNamingTheKey) {
  auto m = Value::map({{"a", 1}});
  try {
    (void)m["missing"];
    FAIL() << "lookup of a missing key succeeded";
  } catch (const NotFound& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing"));
  }
}

TEST(ValueMapLookup, IndexingANonMapIsATypeError) {
  EXPECT_THROW((void)Value(1)["a"], TypeError);
}

TEST(ValueMapLookup, FindReturnsNullWhenAbsentOrNotAMap) {
  auto m = Value::map({{"a", 1}});
  ASSERT_NE(m.find("a"), nullptr);
  EXPECT_EQ(m.find("a")->as_int(), 1);
  EXPECT_EQ(m.find("b"), nullptr);
  EXPECT_EQ(Value(1).find("a"), nullptr);
}

TEST(ValueInteger, Uint64AboveInt64MaxIsRejected) {
  EXPECT_THROW((Value(std::uint64_t{9223372036854775808ULL})), InvalidArgument);
  EXPECT_THROW((Value(std::numeric_limits<std::uint64_t>::max())), InvalidArgument);
}

TEST(ValueInteger, SmallUnsignedTypesAlwaysFit) {
  EXPECT_EQ(Value(std::numeric_limits<std::uint32_t>::max()).as_int(), 4294967295LL);
  EXPECT_EQ(Value(std::numeric_limits<std::uint16_t>::max()).as_int(), 65535);
}

TEST(ValueEquality, ComparesKindAndContent) {
  EXPECT_EQ(Value(1), Value(1));
  EXPECT_NE(Value(1), Value(2));
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_NE(Value(1), Value("1"));
  EXPECT_NE(Value(true), Value(1));
  EXPECT_EQ(Value(), Value(nullptr));
  EXPECT_EQ(Value::map({{"a", 1}, {"b", 2}}), Value::map({{"b", 2}, {"a", 1}}));
  EXPECT_NE(Value::map({{"a", 1}}), Value::map({{"a", 2}}));
  EXPECT_NE(Value::list({1, 2}), Value::list({2, 1}));
  EXPECT_EQ(testing::sample_value_of_every_kind(), testing::sample_value_of_every_kind());
}

TEST(ValueEquality, FloatsCompareByValue) {
  EXPECT_EQ(Value(0.0), Value(-0.0));
  EXPECT_NE(Value(std::numeric_limits<double>::quiet_NaN()),
            Value(std::numeric_limits<double>::quiet_NaN()));
}

TEST(ValueEquality, StringAndBytesWithTheSameContentDiffer) {
  EXPECT_NE(Value("ab"), Value(Bytes{Buffer::copy_of(std::string_view("ab"))}));
}

TEST(ValueEquality, BytesCompareByContentNotStorage) {
  std::string a = "same", b = "same";
  EXPECT_EQ(Value(Bytes{Buffer::borrow(a.data(), a.size())}),
            Value(Bytes{Buffer::borrow(b.data(), b.size())}));
  b[0] = 'S';
  EXPECT_NE(Value(Bytes{Buffer::borrow(a.data(), a.size())}),
            Value(Bytes{Buffer::borrow(b.data(), b.size())}));
}

TEST(ValueEquality, ObjectsCompareAllFields) {
  Object o{"T", "text", Buffer::copy_of(std::string_view("1"))};
  Object other_type = o, other_archive = o, other_blob = o;
  other_type.type_name = "U";
  other_archive.archive = "xml";
  other_blob.blob = Buffer::copy_of(std::string_view("2"));
  EXPECT_EQ(Value(o), Value(Object{"T", "text", Buffer::copy_of(std::string_view("1"))}));
  EXPECT_NE(Value(o), Value(other_type));
  EXPECT_NE(Value(o), Value(other_archive));
  EXPECT_NE(Value(o), Value(other_blob));
}

TEST(ValueCopy, CopiesShareArrayBytes) {
  Value a(testing::ramp(1000));
  Value b = a;
  EXPECT_EQ(a.as_array().buffer().data(), b.as_array().buffer().data());
  EXPECT_EQ(a, b);
}

TEST(ValueCopy, SharedBytesOutliveTheOriginal) {
  Value copy;
  {
    Value original(testing::ramp(16, 1.0));
    copy = original;
  }
  EXPECT_EQ(copy.as_array().as<double>()[15], 8.5);
}

TEST(ValuePayload, CountsArrayBytesStringsAndKeys) {
  EXPECT_EQ(Value(Array(DType::float64, {10, 3})).payload_bytes(), 240u);
  EXPECT_EQ(Value("abcd").payload_bytes(), 4u);
  EXPECT_EQ(Value(Bytes{Buffer::copy_of(std::string_view("xyz"))}).payload_bytes(), 3u);
  EXPECT_EQ(Value(Object{"T", "text", Buffer::copy_of(std::string_view("12345"))}).payload_bytes(),
            5u);
  // keys "ab" (2) + "c" (1) + string "xyz" (3) + array 4 x int32 (16) + list of "q" (1)
  auto tree = Value::map(
      {{"ab", "xyz"}, {"c", Value::list({Value(Array(DType::int32, {4})), Value("q")})}});
  EXPECT_EQ(tree.payload_bytes(), 2u + 1u + 3u + 16u + 1u);
}

// Array --------------------------------------------------------------------------------

template <class T>
class ArrayOfEveryDType : public ::testing::Test {};

using AllElements = ::testing::Types<std::int8_t, std::int16_t, std::int32_t, std::int64_t,
                                     std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t,
                                     float, double, std::complex<float>, std::complex<double>>;
TYPED_TEST_SUITE(ArrayOfEveryDType, AllElements);

template <class T>
std::vector<T> six_values() {
  std::vector<T> v;
  for (int i = 0; i < 6; ++i) {
    if constexpr (std::is_same_v<T, std::complex<float>> ||
                  std::is_same_v<T, std::complex<double>>) {
      using R = typename T::value_type;
      v.emplace_back(static_cast<R>(i), static_cast<R>(-i));
    } else {
      v.push_back(static_cast<T>(i * 3 + 1));
    }
  }
  return v;
}

TYPED_TEST(ArrayOfEveryDType, FromCopiesValuesAndReadsThemBack) {
  auto values = six_values<TypeParam>();
  Array a = Array::from(values, {2, 3});
  EXPECT_EQ(a.dtype(), dtype_of<TypeParam>());
  EXPECT_EQ(a.shape(), (Shape{2, 3}));
  EXPECT_EQ(a.rank(), 2u);
  EXPECT_EQ(a.size(), 6u);
  EXPECT_EQ(a.nbytes(), 6 * sizeof(TypeParam));
  EXPECT_EQ(a.nbytes(), 6 * dtype_size(a.dtype()));
  EXPECT_NE(static_cast<const void*>(a.buffer().data()), static_cast<const void*>(values.data()));
  values[0] = values[1];  // the array holds its own copy
  EXPECT_EQ(a.to_vector<TypeParam>(), six_values<TypeParam>());
}

TYPED_TEST(ArrayOfEveryDType, ViewWrapsWithoutCopying) {
  auto values = six_values<TypeParam>();
  Array a = Array::view(std::span<const TypeParam>(values));
  EXPECT_EQ(static_cast<const void*>(a.buffer().data()), static_cast<const void*>(values.data()));
  EXPECT_EQ(a.shape(), (Shape{6}));
  values[2] = values[5];
  EXPECT_EQ(a.as<TypeParam>()[2], values[5]);
}

TYPED_TEST(ArrayOfEveryDType, AsOtherTypeIsATypeErrorNamingBothDTypes) {
  Array a = Array::from(six_values<TypeParam>());
  auto wrong = [&] {
    if constexpr (std::is_same_v<TypeParam, std::int8_t>)
      (void)a.as<std::uint8_t>();
    else
      (void)a.as<std::int8_t>();
  };
  try {
    wrong();
    FAIL() << "as<> of the wrong element type succeeded";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::string(dtype_name(dtype_of<TypeParam>()))));
  }
}

TEST(ArrayDType, CodesSizesAndNamesAreFixed) {
  struct Row {
    DType t;
    int code;
    std::size_t size;
    std::string_view name;
  };
  for (auto r :
       {Row{DType::int8, 1, 1, "int8"}, Row{DType::int16, 2, 2, "int16"},
        Row{DType::int32, 3, 4, "int32"}, Row{DType::int64, 4, 8, "int64"},
        Row{DType::uint8, 5, 1, "uint8"}, Row{DType::uint16, 6, 2, "uint16"},
        Row{DType::uint32, 7, 4, "uint32"}, Row{DType::uint64, 8, 8, "uint64"},
        Row{DType::float32, 9, 4, "float32"}, Row{DType::float64, 10, 8, "float64"},
        Row{DType::complex64, 11, 8, "complex64"}, Row{DType::complex128, 12, 16, "complex128"}}) {
    EXPECT_EQ(static_cast<int>(r.t), r.code) << r.name;
    EXPECT_EQ(dtype_size(r.t), r.size) << r.name;
    EXPECT_EQ(dtype_name(r.t), r.name);
    EXPECT_EQ(dtype_from_name(r.name), r.t);
    EXPECT_EQ(dtype_from_code(static_cast<std::uint8_t>(r.code)), r.t);
  }
  EXPECT_EQ(dtype_component_size(DType::complex64), 4u);
  EXPECT_EQ(dtype_component_size(DType::complex128), 8u);
  EXPECT_FALSE(dtype_from_code(0).has_value());
  EXPECT_FALSE(dtype_from_code(13).has_value());
  EXPECT_FALSE(dtype_from_name("float").has_value());
}

TEST(ArrayShape, DefaultIsOneDimensionalForEveryLength) {
  EXPECT_EQ(Array::from(std::vector<double>{}).shape(), (Shape{0}));
  EXPECT_EQ(Array::from(std::vector<double>{1.0}).shape(), (Shape{1}));
  EXPECT_EQ(Array::from(std::vector<double>{1.0, 2.0}).shape(), (Shape{2}));
  EXPECT_EQ(Value(std::vector<std::int32_t>{7}).as_array().shape(), (Shape{1}));
  double one = 1.0;
  EXPECT_EQ(Array::view(std::span<const double>(&one, 1)).shape(), (Shape{1}));
}

TEST(ArrayShape, EmptyShapeIsAScalar) {
  auto a = Array::from(std::vector<double>{42.0}, Shape{});
  EXPECT_EQ(a.rank(), 0u);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(a.nbytes(), 8u);
  EXPECT_EQ(a.as<double>()[0], 42.0);
  EXPECT_EQ(shape_elements({}), 1u);
}

TEST(ArrayShape, ZeroSizeArraysHaveNoBytes) {
  Array a(DType::int32, {2, 0, 3});
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.nbytes(), 0u);
  EXPECT_EQ(a.rank(), 3u);
  EXPECT_TRUE(a.as<std::int32_t>().empty());
  EXPECT_NE(a, Array(DType::int32, {0}));
}

TEST(ArrayShape, DefaultArrayIsEmptyFloat64) {
  Array a;
  EXPECT_EQ(a.dtype(), DType::float64);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.nbytes(), 0u);
}

TEST(ArrayShape, SizeMismatchIsInvalidArgument) {
  EXPECT_THROW(Array::from(std::vector<double>{1, 2, 3}, {2, 2}), InvalidArgument);
  EXPECT_THROW(Array::from(std::vector<double>{1, 2}, Shape{}), InvalidArgument);
  EXPECT_THROW(Array(DType::float64, {3}, Buffer::allocate(16)), InvalidArgument);
  try {
    Array(DType::float32, {2}, Buffer::allocate(7));
    FAIL() << "accepted 7 bytes for 2 float32";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("needs 8 bytes, got 7"));
  }
}

TEST(ArrayShape, ElementCountOverflowIsInvalidArgument) {
  constexpr std::uint64_t big = std::uint64_t{1} << 33;
  EXPECT_THROW(shape_elements({big, big}), InvalidArgument);
  EXPECT_THROW(Array(DType::int8, {big, big}), InvalidArgument);
}

TEST(ArrayShape, ByteCountOverflowIsInvalidArgument) {
  // 2^62 elements fit in 64 bits; 2^62 x 16 bytes do not.
  EXPECT_THROW(Array(DType::complex128, {std::uint64_t{1} << 62}), InvalidArgument);
}

TEST(ArrayShape, ZeroDimensionMakesAnyShapeValid) {
  constexpr std::uint64_t huge = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(shape_elements({huge, 0, huge}), 0u);
}

TEST(ArrayEquality, ComparesDTypeShapeAndBytes) {
  auto a = Array::from(std::vector<std::int32_t>{1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(a, Array::from(std::vector<std::int32_t>{1, 2, 3, 4}, {2, 2}));
  EXPECT_NE(a, Array::from(std::vector<std::int32_t>{1, 2, 3, 4}, {4}));
  EXPECT_NE(a, Array::from(std::vector<std::uint32_t>{1, 2, 3, 4}, {2, 2}));
  EXPECT_NE(a, Array::from(std::vector<std::int32_t>{1, 2, 3, 5}, {2, 2}));
}

TEST(ArrayCopy, CopiesShareBytes) {
  auto a = testing::ramp(100);
  Array b = a;
  EXPECT_EQ(a.buffer().data(), b.buffer().data());
  a.as_mutable<double>()[3] = -1.0;
  EXPECT_EQ(b.as<double>()[3], -1.0);
}

TEST(Buffer, FirstSharesStorageAndClamps) {
  auto b = Buffer::copy_of(std::string_view("abcdef"));
  EXPECT_EQ(b.first(3).view(), "abc");
  EXPECT_EQ(b.first(3).data(), b.data());
  EXPECT_EQ(b.first(100).size(), 6u);
}

TEST(Buffer, AdoptKeepsTheOwnerAlive) {
  auto owner = std::make_shared<std::string>("owned bytes");
  std::weak_ptr<std::string> watch = owner;
  Buffer b = Buffer::adopt(owner, owner->data(), owner->size());
  owner.reset();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(b.view(), "owned bytes");
  b = Buffer();
  EXPECT_TRUE(watch.expired());
}

TEST(Buffer, LargeBuffersStartOnAHugePageBoundaryAndHoldWhatIsWritten) {
  for (std::size_t n : {Buffer::kHugePageBytes, 3 * Buffer::kHugePageBytes + 5}) {
    Buffer b = Buffer::allocate(n);
    ASSERT_EQ(b.size(), n);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % Buffer::kHugePageBytes, 0u) << n;
    for (std::size_t i = 0; i < n; ++i) b.mutable_data()[i] = static_cast<std::byte>(i * 7 + 1);
    Buffer copy = Buffer::copy_of(b.span());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(copy.data()) % Buffer::kHugePageBytes, 0u) << n;
    EXPECT_EQ(copy, b);
    EXPECT_EQ(copy.data()[n - 1], static_cast<std::byte>((n - 1) * 7 + 1));
  }
}

TEST(Buffer, SmallBuffersAreOrdinaryAllocations) {
  Buffer b = Buffer::allocate(Buffer::kHugePageBytes - 1);
  EXPECT_EQ(b.size(), Buffer::kHugePageBytes - 1);
  std::memset(b.mutable_data(), 0x5a, b.size());
  EXPECT_EQ(b.data()[b.size() - 1], std::byte{0x5a});
}

// The VmFlags line of the mapping holding address p in /proc/self/smaps; empty if none.
std::string vm_flags_of(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> begin >> dash >> end && dash == '-') {
      inside = begin <= addr && addr < end;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return {};
}

TEST(Buffer, LargeBuffersAskForTransparentHugePages) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  Buffer b = Buffer::allocate(4 * Buffer::kHugePageBytes);
  const std::string flags = vm_flags_of(b.data());
  ASSERT_FALSE(flags.empty()) << "no mapping holds the buffer";
  EXPECT_THAT(flags + " ", HasSubstr(" hg ")) << "madvise(MADV_HUGEPAGE) missing";
}

}  // namespace
}  // namespace quiver
