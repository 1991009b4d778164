#include <quiver/core/value.hpp>

namespace quiver {

std::uint64_t shape_elements(const Shape& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / d)
      throw InvalidArgument("array shape overflows 64 bits", "quiver::Array");
    n *= d;
  }
  return n;
}

namespace {
std::uint64_t checked_bytes(DType dtype, const Shape& shape) {
  auto esize = dtype_size(dtype);
  if (esize == 0) throw InvalidArgument("invalid dtype", "quiver::Array");
  auto n = shape_elements(shape);
  if (n > std::numeric_limits<std::uint64_t>::max() / esize)
    throw InvalidArgument("array size overflows 64 bits", "quiver::Array");
  return n * esize;
}
}  // namespace

Array::Array(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), elements_(shape_elements(shape_)) {
  data_ = Buffer::allocate(checked_bytes(dtype_, shape_));
}

Array::Array(DType dtype, Shape shape, Buffer data)
    : dtype_(dtype),
      shape_(std::move(shape)),
      elements_(shape_elements(shape_)),
      data_(std::move(data)) {
  auto want = checked_bytes(dtype_, shape_);
  if (want != data_.size())
    throw InvalidArgument("array of " + std::to_string(elements_) + " " +
                              std::string(dtype_name(dtype_)) + " needs " + std::to_string(want) +
                              " bytes, got " + std::to_string(data_.size()),
                          "quiver::Array");
}

void Array::check_type(DType wanted) const {
  if (wanted != dtype_)
    throw TypeError("array holds " + std::string(dtype_name(dtype_)) + ", not " +
                        std::string(dtype_name(wanted)),
                    "quiver::Array");
}

std::string_view kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::null:
      return "null";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int64";
    case Kind::floating:
      return "float64";
    case Kind::string:
      return "string";
    case Kind::bytes:
      return "bytes";
    case Kind::array:
      return "array";
    case Kind::list:
      return "list";
    case Kind::map:
      return "map";
    case Kind::object:
      return "object";
  }
  return "invalid";
}

Value::Value(const std::vector<std::string>& strings) {
  List l;
  l.reserve(strings.size());
  for (const auto& s : strings) l.emplace_back(s);
  v_ = std::move(l);
}

void Value::wrong_kind(Kind wanted) const {
  throw TypeError(
      "value is " + std::string(kind_name(kind())) + ", not " + std::string(kind_name(wanted)),
      "quiver::Value");
}

#define QUIVER_ACCESSOR(ret, name, K, T)          \
  ret Value::name() const {                       \
    if (auto* p = std::get_if<T>(&v_)) return *p; \
    wrong_kind(Kind::K);                          \
  }
QUIVER_ACCESSOR(bool, as_bool, boolean, bool)
QUIVER_ACCESSOR(std::int64_t, as_int, integer, std::int64_t)
QUIVER_ACCESSOR(const std::string&, as_string, string, std::string)
QUIVER_ACCESSOR(const Bytes&, as_bytes, bytes, Bytes)
QUIVER_ACCESSOR(const Array&, as_array, array, Array)
QUIVER_ACCESSOR(const Value::List&, as_list, list, List)
QUIVER_ACCESSOR(const Value::Map&, as_map, map, Map)
QUIVER_ACCESSOR(const Object&, as_object, object, Object)
#undef QUIVER_ACCESSOR

Array& Value::as_array() {
  if (auto* p = std::get_if<Array>(&v_)) return *p;
  wrong_kind(Kind::array);
}
Value::List& Value::as_list() {
  if (auto* p = std::get_if<List>(&v_)) return *p;
  wrong_kind(Kind::list);
}
Value::Map& Value::as_map() {
  if (auto* p = std::get_if<Map>(&v_)) return *p;
  wrong_kind(Kind::map);
}

double Value::as_double() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  wrong_kind(Kind::floating);
}

const Value& Value::operator[](std::string_view key) const {
  const auto& m = as_map();
  auto it = m.find(key);
  if (it == m.end()) throw NotFound("no key '" + std::string(key) + "' in map", "quiver::Value");
  return it->second;
}

const Value* Value::find(std::string_view key) const noexcept {
  const auto* m = std::get_if<Map>(&v_);
  if (!m) return nullptr;
  auto it = m->find(key);
  return it == m->end() ? nullptr : &it->second;
}

namespace {
struct PayloadBytes {
  std::uint64_t operator()(const std::string& s) const { return s.size(); }
  std::uint64_t operator()(const Bytes& b) const { return b.data.size(); }
  std::uint64_t operator()(const Array& a) const { return a.nbytes(); }
  std::uint64_t operator()(const Object& o) const { return o.blob.size(); }
  std::uint64_t operator()(const Value::List& l) const {
    std::uint64_t n = 0;
    for (const auto& v : l) n += v.payload_bytes();
    return n;
  }
  std::uint64_t operator()(const Value::Map& m) const {
    std::uint64_t n = 0;
    for (const auto& [k, v] : m) n += k.size() + v.payload_bytes();
    return n;
  }
  template <class T>
  std::uint64_t operator()(const T&) const {
    return 8;
  }
};
}  // namespace

std::uint64_t Value::payload_bytes() const noexcept {
  return std::visit(PayloadBytes{}, v_);
}

}  // namespace quiver
