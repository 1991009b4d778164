#include <array>
#include <quiver/core/json.hpp>

namespace quiver {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

template <class T>
void put_elements(const Array& a, nlohmann::json& out) {
  for (const auto& x : a.as<T>()) {
    if constexpr (std::is_same_v<T, std::complex<float>> ||
                  std::is_same_v<T, std::complex<double>>) {
      out.push_back(nlohmann::json::array({x.real(), x.imag()}));
    } else {
      out.push_back(x);
    }
  }
}

template <class F>
decltype(auto) dispatch(DType t, F&& f) {
  switch (t) {
    case DType::int8:
      return f(std::int8_t{});
    case DType::int16:
      return f(std::int16_t{});
    case DType::int32:
      return f(std::int32_t{});
    case DType::int64:
      return f(std::int64_t{});
    case DType::uint8:
      return f(std::uint8_t{});
    case DType::uint16:
      return f(std::uint16_t{});
    case DType::uint32:
      return f(std::uint32_t{});
    case DType::uint64:
      return f(std::uint64_t{});
    case DType::float32:
      return f(float{});
    case DType::float64:
      return f(double{});
    case DType::complex64:
      return f(std::complex<float>{});
    case DType::complex128:
      return f(std::complex<double>{});
  }
  throw InvalidArgument("invalid dtype", "quiver::json");
}

nlohmann::json array_to_json(const Array& a, std::uint64_t max_elements) {
  nlohmann::json j;
  j["dtype"] = dtype_name(a.dtype());
  j["shape"] = a.shape();
  if (max_elements && a.size() > max_elements) {
    j["data"] = nullptr;
  } else {
    nlohmann::json data = nlohmann::json::array();
    dispatch(a.dtype(), [&](auto tag) { put_elements<decltype(tag)>(a, data); });
    j["data"] = std::move(data);
  }
  return {{"$array", std::move(j)}};
}

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw InvalidArgument(what, "JSON value at " + path);
}

template <class T>
T element(const nlohmann::json& x, const std::string& path) {
  if constexpr (std::is_same_v<T, std::complex<float>> || std::is_same_v<T, std::complex<double>>) {
    if (!x.is_array() || x.size() != 2 || !x[0].is_number() || !x[1].is_number())
      bad(path, "complex element must be [re, im]");
    using R = typename T::value_type;
    return T(x[0].get<R>(), x[1].get<R>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!x.is_number()) bad(path, "array element must be a number");
    return x.get<T>();
  } else {
    if (!x.is_number_integer()) bad(path, "array element must be an integer");
    if (x.is_number_unsigned()) {
      auto u = x.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
        bad(path, "array element out of range");
      return static_cast<T>(u);
    }
    auto i = x.get<std::int64_t>();
    if (i < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        (i > 0 &&
         static_cast<std::uint64_t>(i) > static_cast<std::uint64_t>(std::numeric_limits<T>::max())))
      bad(path, "array element out of range");
    return static_cast<T>(i);
  }
}

Array array_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("dtype") || !j.contains("data"))
    bad(path, "$array needs dtype and data");
  auto dt = j["dtype"].is_string() ? dtype_from_name(j["dtype"].get<std::string>()) : std::nullopt;
  if (!dt) bad(path + ".dtype", "unknown dtype");
  const auto& data = j["data"];
  if (!data.is_array()) bad(path + ".data", "data must be a flat list");
  Shape shape;
  if (j.contains("shape")) {
    if (!j["shape"].is_array()) bad(path + ".shape", "shape must be a list of sizes");
    for (const auto& d : j["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<std::int64_t>() >= 0))
        bad(path + ".shape", "dimension must be a non-negative integer");
      shape.push_back(d.get<std::uint64_t>());
    }
  } else {
    shape = {data.size()};
  }
  if (shape_elements(shape) != data.size())
    bad(path + ".data", "has " + std::to_string(data.size()) + " elements but shape holds " +
                            std::to_string(shape_elements(shape)));
  Array a(*dt, shape);
  dispatch(*dt, [&](auto tag) {
    using T = decltype(tag);
    auto out = a.as_mutable<T>();
    for (std::size_t i = 0; i < data.size(); ++i)
      out[i] = element<T>(data[i], path + ".data[" + std::to_string(i) + "]");
  });
  return a;
}

Value from_json_at(const nlohmann::json& j, const std::string& path);

Buffer base64_at(std::string_view text, const std::string& path) {
  try {
    return base64_decode(text);
  } catch (const InvalidArgument& e) {
    bad(path, e.message());
  }
}

// The members of a JSON object as a map, without interpreting '$' tags.
Value map_from_json(const nlohmann::json& j, const std::string& path) {
  Value::Map m;
  for (const auto& [key, item] : j.items()) m.emplace(key, from_json_at(item, path + "." + key));
  return Value(std::move(m));
}

Object object_from_json(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("type") || !j.contains("blob"))
    bad(path, "$object needs type, archive and blob");
  if (!j["type"].is_string()) bad(path + ".type", "type must be a string");
  if (!j["blob"].is_string()) bad(path + ".blob", "blob must be a base64 string");
  if (j.contains("archive") && !j["archive"].is_string())
    bad(path + ".archive", "archive must be a string");
  return Object{j["type"].get<std::string>(),
                j.contains("archive") ? j["archive"].get<std::string>() : std::string("binary"),
                base64_at(j["blob"].get<std::string>(), path + ".blob")};
}

Value from_json_at(const nlohmann::json& j, const std::string& path) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value();
    case nlohmann::json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        bad(path, "integer does not fit in int64");
      return Value(static_cast<std::int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      Value::List l;
      l.reserve(j.size());
      for (std::size_t i = 0; i < j.size(); ++i)
        l.push_back(from_json_at(j[i], path + "[" + std::to_string(i) + "]"));
      return Value(std::move(l));
    }
    case nlohmann::json::value_t::object: {
      if (j.size() == 1) {
        // Through an iterator of j: a binding to *j.items().begin() would dangle.
        const auto first = j.begin();
        const std::string& key = first.key();
        const nlohmann::json& inner = first.value();
        if (key == "$array") return Value(array_from_json(inner, path + ".$array"));
        if (key == "$bytes") {
          if (!inner.is_string()) bad(path, "$bytes needs a base64 string");
          return Value(Bytes{base64_at(inner.get<std::string>(), path + ".$bytes")});
        }
        if (key == "$object") return Value(object_from_json(inner, path + ".$object"));
        if (key == "$map") {
          if (!inner.is_object()) bad(path + ".$map", "$map needs a JSON object");
          return map_from_json(inner, path + ".$map");
        }
        if (!key.empty() && key[0] == '$') bad(path, "unknown tag '" + key + "'");
      }
      return map_from_json(j, path);
    }
    default:
      bad(path, "unsupported JSON type");
  }
}

}  // namespace

nlohmann::json to_json(const Value& v, std::uint64_t max_array_elements) {
  switch (v.kind()) {
    case Kind::null:
      return nullptr;
    case Kind::boolean:
      return v.as_bool();
    case Kind::integer:
      return v.as_int();
    case Kind::floating:
      return v.as_double();
    case Kind::string:
      return v.as_string();
    case Kind::bytes:
      return {{"$bytes", base64_encode(v.as_bytes().data.span())}};
    case Kind::array:
      return array_to_json(v.as_array(), max_array_elements);
    case Kind::list: {
      auto out = nlohmann::json::array();
      for (const auto& item : v.as_list()) out.push_back(to_json(item, max_array_elements));
      return out;
    }
    case Kind::map: {
      auto out = nlohmann::json::object();
      for (const auto& [k, item] : v.as_map()) out[k] = to_json(item, max_array_elements);
      if (out.size() == 1 && !out.begin().key().empty() && out.begin().key()[0] == '$')
        return {{"$map", std::move(out)}};
      return out;
    }
    case Kind::object: {
      const auto& o = v.as_object();
      return {{"$object",
               {{"type", o.type_name},
                {"archive", o.archive},
                {"blob", base64_encode(o.blob.span())}}}};
    }
  }
  return nullptr;
}

Value from_json(const nlohmann::json& j) {
  return from_json_at(j, "$");
}

Value parse_literal(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Value(std::string(text));
  return from_json(j);
}

std::string base64_encode(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    auto n = std::to_integer<unsigned>(bytes[i]) << 16 |
             std::to_integer<unsigned>(bytes[i + 1]) << 8 | std::to_integer<unsigned>(bytes[i + 2]);
    out += kB64[n >> 18];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i < bytes.size()) {
    unsigned n = std::to_integer<unsigned>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= std::to_integer<unsigned>(bytes[i + 1]) << 8;
    out += kB64[n >> 18];
    out += kB64[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kB64[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Buffer base64_decode(std::string_view text) {
  static const auto rev = [] {
    std::array<int, 256> r;
    r.fill(-1);
    for (int i = 0; i < 64; ++i) r[static_cast<unsigned char>(kB64[i])] = i;
    return r;
  }();
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
    ++padding;
  }
  if (text.size() % 4 == 1 || padding > 2 || (padding && (text.size() + padding) % 4 != 0))
    throw InvalidArgument("malformed base64 (length or padding)", "quiver::base64");
  Buffer out = Buffer::allocate(text.size() * 3 / 4);
  auto* p = out.mutable_data();
  unsigned acc = 0;
  int bits = 0;
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    int v = rev[static_cast<unsigned char>(text[i])];
    if (v < 0)
      throw InvalidArgument("malformed base64 at offset " + std::to_string(i), "quiver::base64");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      p[n++] = static_cast<std::byte>((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0)
    throw InvalidArgument("malformed base64 (non-zero trailing bits)", "quiver::base64");
  return out.first(n);
}

}  // namespace quiver
