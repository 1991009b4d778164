// Typed errors: codes, names, classes and messages.
#include <gtest/gtest.h>

#include <quiver/core/errors.hpp>
#include <set>

namespace quiver {
namespace {

struct Row {
  ErrorCode code;
  int number;
  std::string_view name;
};

// The published table (codes cross the wire: they must never change).
constexpr Row kTable[] = {
    {ErrorCode::invalid_argument, 1, "invalid_argument"},
    {ErrorCode::not_found, 2, "not_found"},
    {ErrorCode::ambiguous_digest, 3, "ambiguous_digest"},
    {ErrorCode::rejected, 4, "rejected"},
    {ErrorCode::corrupt_entry, 5, "corrupt_entry"},
    {ErrorCode::store_error, 6, "store_error"},
    {ErrorCode::config_error, 7, "config_error"},
    {ErrorCode::type_error, 8, "type_error"},
    {ErrorCode::remote_connection, 9, "remote_connection"},
    {ErrorCode::timeout, 10, "timeout"},
    {ErrorCode::protocol_error, 11, "protocol_error"},
    {ErrorCode::server_error, 12, "server_error"},
};

TEST(ErrorCode, NumbersAndNamesAreStable) {
  for (const auto& r : kTable) {
    EXPECT_EQ(static_cast<int>(r.code), r.number) << r.name;
    EXPECT_EQ(error_code_name(r.code), r.name);
  }
}

TEST(ErrorCode, EveryCodeHasADistinctName) {
  std::set<std::string_view> names;
#define QUIVER_X(cls, name, num) names.insert(error_code_name(ErrorCode::name));
  QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X
  EXPECT_EQ(names.size(), std::size(kTable));
  EXPECT_EQ(names.count("unknown"), 0u);
}

TEST(ErrorCode, UnknownCodeIsNamedUnknown) {
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(0)), "unknown");
  EXPECT_EQ(error_code_name(static_cast<ErrorCode>(999)), "unknown");
}

template <class E>
void expect_thrown_as(ErrorCode code) {
  try {
    throw_error(code, "the message", "the place");
  } catch (const E& e) {
    EXPECT_EQ(e.code(), code);
    EXPECT_EQ(e.message(), "the message");
    EXPECT_EQ(e.where(), "the place");
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << error_code_name(code) << " raised the wrong class: " << e.what();
    return;
  }
}

TEST(ThrowError, RaisesTheClassOfEveryCode) {
#define QUIVER_X(cls, name, num) expect_thrown_as<cls>(ErrorCode::name);
  QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X
}

TEST(ThrowError, ClassesAreDistinct) {
  EXPECT_THROW(throw_error(ErrorCode::not_found, "m"), NotFound);
  try {
    throw_error(ErrorCode::not_found, "m");
  } catch (const AmbiguousDigest&) {
    FAIL() << "NotFound was caught as AmbiguousDigest";
  } catch (const NotFound&) {
  }
}

TEST(ThrowError, UnknownCodeBecomesServerError) {
  try {
    throw_error(static_cast<ErrorCode>(999), "from a newer server", "remote");
    FAIL() << "throw_error returned";
  } catch (const ServerError& e) {
    EXPECT_EQ(e.message(), "from a newer server");
    EXPECT_EQ(e.where(), "remote");
  }
}

TEST(ErrorWhat, IsWhereColonMessage) {
  StoreError e("cannot rename x: No space left on device", "/scratch/cache");
  EXPECT_STREQ(e.what(), "/scratch/cache: cannot rename x: No space left on device");
  EXPECT_EQ(e.code(), ErrorCode::store_error);
}

TEST(ErrorWhat, IsTheMessageAloneWithoutWhere) {
  EXPECT_STREQ(NotFound("no entry").what(), "no entry");
  EXPECT_EQ(NotFound("no entry").where(), "");
}

TEST(ErrorClasses, AreCatchableAsErrorAndRuntimeError) {
  EXPECT_THROW(throw TimeoutError("late"), Error);
  EXPECT_THROW(throw TimeoutError("late"), std::runtime_error);
}

}  // namespace
}  // namespace quiver
