// Value: the tree a cached result (or an argument) is made of.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <quiver/core/buffer.hpp>
#include <quiver/core/dtype.hpp>
#include <quiver/core/errors.hpp>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace quiver {

/// Shape of an n-dimensional array, outermost dimension first (C order).
using Shape = std::vector<std::uint64_t>;

/// Number of elements of shape (1 for rank 0); throws InvalidArgument on overflow.
std::uint64_t shape_elements(const Shape& shape);

/// An n-dimensional array of one DType, C order, little-endian in memory on every
/// supported host. Copies share the bytes (see Buffer).
class Array {
 public:
  Array() = default;
  /// An uninitialised array of dtype and shape.
  Array(DType dtype, Shape shape);
  /// An array over existing bytes; throws InvalidArgument when sizes disagree.
  Array(DType dtype, Shape shape, Buffer data);

  /// Copies values into a new 1-D array of values.size() elements.
  template <Element T>
  static Array from(std::span<const T> values) {
    return from(values, Shape{values.size()});
  }
  /// Copies values into a new array of shape (Shape{} is rank 0, one element); throws
  /// InvalidArgument when the shape does not hold values.size() elements.
  template <Element T>
  static Array from(std::span<const T> values, Shape shape) {
    return Array(dtype_of<T>(), std::move(shape), Buffer::copy_of(std::as_bytes(values)));
  }
  template <Element T>
  static Array from(const std::vector<T>& values) {
    return from(std::span<const T>(values));
  }
  template <Element T>
  static Array from(const std::vector<T>& values, Shape shape) {
    return from(std::span<const T>(values), std::move(shape));
  }
  /// Wraps values without copying as a 1-D array; the caller keeps them alive and unchanged.
  template <Element T>
  static Array view(std::span<const T> values) {
    return view(values, Shape{values.size()});
  }
  /// Wraps values without copying, with shape (as for from()).
  template <Element T>
  static Array view(std::span<const T> values, Shape shape) {
    return Array(dtype_of<T>(), std::move(shape),
                 Buffer::borrow(values.data(), values.size_bytes()));
  }

  DType dtype() const noexcept { return dtype_; }
  const Shape& shape() const noexcept { return shape_; }
  std::size_t rank() const noexcept { return shape_.size(); }
  std::uint64_t size() const noexcept { return elements_; }
  std::uint64_t nbytes() const noexcept { return data_.size(); }
  const Buffer& buffer() const noexcept { return data_; }
  Buffer& buffer() noexcept { return data_; }

  /// The elements as T; throws TypeError when T is not the dtype.
  template <Element T>
  std::span<const T> as() const {
    check_type(dtype_of<T>());
    return {reinterpret_cast<const T*>(data_.data()), static_cast<std::size_t>(elements_)};
  }
  /// Writable elements, for filling a freshly made array.
  template <Element T>
  std::span<T> as_mutable() {
    check_type(dtype_of<T>());
    return {reinterpret_cast<T*>(data_.mutable_data()), static_cast<std::size_t>(elements_)};
  }
  template <Element T>
  std::vector<T> to_vector() const {
    auto s = as<T>();
    return {s.begin(), s.end()};
  }

  friend bool operator==(const Array& a, const Array& b) noexcept {
    return a.dtype_ == b.dtype_ && a.shape_ == b.shape_ && a.data_ == b.data_;
  }

 private:
  void check_type(DType wanted) const;

  DType dtype_ = DType::float64;
  Shape shape_{0};
  std::uint64_t elements_ = 0;
  Buffer data_;
};

/// Raw bytes (not text).
struct Bytes {
  Buffer data;
  friend bool operator==(const Bytes&, const Bytes&) = default;
};

/// A user C++ object serialised with Boost.Serialization: an opaque blob tagged with its
/// type name and archive kind ("binary", "text", "xml"). See <quiver/core/object.hpp>.
struct Object {
  std::string type_name;
  std::string archive;
  Buffer blob;
  friend bool operator==(const Object&, const Object&) = default;
};

/// Kinds of Value. The numeric codes are part of the digest and wire formats.
enum class Kind : std::uint8_t {
  null = 0,
  boolean = 1,
  integer = 2,
  floating = 3,
  string = 4,
  bytes = 5,
  array = 6,
  list = 7,
  map = 8,
  object = 9,
};
std::string_view kind_name(Kind k) noexcept;

/// A result or argument: null, bool, int64, float64, string, bytes, array, list of
/// Values, string-keyed map of Values, or a serialised user object.
class Value {
 public:
  using List = std::vector<Value>;
  using Map = std::map<std::string, Value, std::less<>>;

  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}
  Value(bool b) noexcept : v_(b) {}
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Value(T i) : v_(to_int64(i)) {}
  template <std::floating_point T>
  Value(T d) noexcept : v_(static_cast<double>(d)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) noexcept : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(Bytes b) noexcept : v_(std::move(b)) {}
  Value(Array a) noexcept : v_(std::move(a)) {}
  Value(List l) noexcept : v_(std::move(l)) {}
  Value(Map m) noexcept : v_(std::move(m)) {}
  Value(Object o) noexcept : v_(std::move(o)) {}
  /// A 1-D array copied from values.
  template <Element T>
  Value(const std::vector<T>& values) : v_(Array::from(values)) {}
  /// A list of strings.
  Value(const std::vector<std::string>& strings);

  /// A map from {key, value} pairs.
  static Value map(std::initializer_list<std::pair<const std::string, Value>> items) {
    return Value(Map(items));
  }
  /// A list from values.
  static Value list(std::initializer_list<Value> items) { return Value(List(items)); }

  Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  bool is_null() const noexcept { return kind() == Kind::null; }

  /// Typed accessors: throw TypeError naming the actual kind when it differs.
  bool as_bool() const;
  std::int64_t as_int() const;
  /// The float64, or the int64 converted.
  double as_double() const;
  const std::string& as_string() const;
  const Bytes& as_bytes() const;
  const Array& as_array() const;
  Array& as_array();
  const List& as_list() const;
  List& as_list();
  const Map& as_map() const;
  Map& as_map();
  /// Gives every buffer in this value that borrows caller memory (Buffer::borrow,
  /// Array::view, arrays placed by load_value_into) a copy of its own, so that the value no
  /// longer depends on that memory. Owned buffers stay shared.
  void own_borrowed();
  const Object& as_object() const;

  /// Map lookup; throws TypeError when not a map, NotFound when key is absent.
  const Value& operator[](std::string_view key) const;
  /// Map lookup; nullptr when not a map or key absent.
  const Value* find(std::string_view key) const noexcept;

  /// Deep equality (arrays compare dtype, shape and bytes; floats compare by value).
  friend bool operator==(const Value& a, const Value& b) noexcept { return a.v_ == b.v_; }

  /// Total bytes of array, bytes, string and object payloads in the tree.
  std::uint64_t payload_bytes() const noexcept;

 private:
  template <std::integral T>
  static std::int64_t to_int64(T i) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= 8) {
      if (i > static_cast<T>(std::numeric_limits<std::int64_t>::max()))
        throw InvalidArgument("integer " + std::to_string(i) + " does not fit in int64",
                              "quiver::Value");
    }
    return static_cast<std::int64_t>(i);
  }
  [[noreturn]] void wrong_kind(Kind wanted) const;

  std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, Array, List, Map,
               Object>
      v_;
};

/// Caller memory that an array of a loaded result is read into (Cache::load_value_into):
/// it must hold exactly the array's bytes, of the array's dtype.
struct ArrayInto {
  DType dtype = DType::uint8;
  std::span<std::byte> bytes;

  /// The memory of values, for an array of T.
  template <Element T>
  static ArrayInto of(std::span<T> values) noexcept {
    return {dtype_of<T>(), std::as_writable_bytes(values)};
  }
};

/// Destinations of arrays by their path in a result: "" is a result that is itself an array,
/// "T" the item of key T of a map result, "fields/T" a key of a nested map, "2" item 2 of a
/// list. Keys that contain '/' cannot be named.
using ArrayDestinations = std::map<std::string, ArrayInto, std::less<>>;

/// Why an array of dtype and shape at path does not fit into, or nullopt when it does.
std::optional<std::string> destination_mismatch(std::string_view path, DType dtype,
                                                const Shape& shape, const ArrayInto& into);

/// The item of result at path (named as in ArrayDestinations), or nullptr when there is none.
Value* value_at(Value& result, std::string_view path);

/// Makes every array of result at a path of into live in its destination: one that already
/// does (read there in place) is left alone; any other is copied there and then borrows it.
/// Throws TypeError, having written nothing, when a path names no array of result or an array
/// does not fit its destination.
void place_arrays(Value& result, const ArrayDestinations& into);

}  // namespace quiver
