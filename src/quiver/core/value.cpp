#include <charconv>
#include <cstring>
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

void Value::own_borrowed() {
  auto own = [](Buffer& b) {
    if (b.borrowed()) b = Buffer::copy_of(b.span());
  };
  std::visit(
      [&](auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Array>)
          own(x.buffer());
        else if constexpr (std::is_same_v<T, Bytes>)
          own(x.data);
        else if constexpr (std::is_same_v<T, Object>)
          own(x.blob);
        else if constexpr (std::is_same_v<T, List>)
          for (auto& item : x) item.own_borrowed();
        else if constexpr (std::is_same_v<T, Map>)
          for (auto& [key, item] : x) item.own_borrowed();
      },
      v_);
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

std::optional<std::string> destination_mismatch(std::string_view path, DType dtype,
                                                const Shape& shape, const ArrayInto& into) {
  const std::uint64_t nbytes = checked_bytes(dtype, shape);
  if (dtype == into.dtype && nbytes == into.bytes.size()) return std::nullopt;
  std::string dims;
  for (auto d : shape) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  return "the result's array at '" + std::string(path) + "' is " + std::string(dtype_name(dtype)) +
         " [" + dims + "] (" + std::to_string(nbytes) + " bytes); its destination holds " +
         std::to_string(into.bytes.size()) + " bytes of " + std::string(dtype_name(into.dtype));
}

// "" is v itself; '/' separates map keys and list indices.
Value* value_at(Value& v, std::string_view path) {
  Value* node = &v;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (node->kind() == Kind::map) {
      auto& map = node->as_map();
      auto it = map.find(part);
      if (it == map.end()) return nullptr;
      node = &it->second;
    } else if (node->kind() == Kind::list) {
      auto& list = node->as_list();
      std::size_t i = 0;
      auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), i);
      if (ec != std::errc{} || end != part.data() + part.size() || i >= list.size()) return nullptr;
      node = &list[i];
    } else {
      return nullptr;
    }
  }
  return node;
}

void place_arrays(Value& result, const ArrayDestinations& into) {
  std::vector<std::pair<Array*, const ArrayInto*>> places;
  for (const auto& [path, dest] : into) {
    Value* node = value_at(result, path);
    if (!node || node->kind() != Kind::array)
      throw TypeError("the result has no array at '" + path + "'" +
                          (node ? " (it is " + std::string(kind_name(node->kind())) + ")" : ""),
                      "quiver::place_arrays");
    Array& a = node->as_array();
    if (auto why = destination_mismatch(path, a.dtype(), a.shape(), dest))
      throw TypeError(*why, "quiver::place_arrays");
    places.emplace_back(&a, &dest);
  }
  for (auto [a, dest] : places) {
    if (a->buffer().data() == dest->bytes.data()) continue;
    if (!dest->bytes.empty()) std::memcpy(dest->bytes.data(), a->buffer().data(), a->nbytes());
    *a = Array(a->dtype(), a->shape(), Buffer::borrow(dest->bytes.data(), dest->bytes.size()));
  }
}

}  // namespace quiver
