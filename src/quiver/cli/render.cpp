#include <cctype>
#include <cmath>
#include <cstring>
#include <quiver/cli/output.hpp>
#include <quiver/cli/render.hpp>
#include <quiver/core/json.hpp>

namespace quiver::cli {

namespace {

constexpr std::uint64_t kFullArrayLimit = 1000;  // larger arrays are elided in the middle
constexpr std::uint64_t kEdgeItems = 3;          // kept at each end of an elided dimension
constexpr std::size_t kMaxChildren = 50;         // children listed per map or list
constexpr std::size_t kShortString = 60;         // longer strings are truncated in summaries
constexpr std::size_t kLineWidth = 100;
constexpr std::size_t kInlineBytes = 96;  // bytes values up to this are shown

std::string spaces(std::size_t n) {
  return std::string(n, ' ');
}

/// "1 key", "2 keys".
std::string count(std::size_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

std::string json_quoted(std::string_view s) {
  return nlohmann::json(std::string(s))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string format_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return nlohmann::json(d).dump();
}

/// One element as JSON (see to_json) to text: numbers, or re+imj for complex.
std::string format_element(const nlohmann::json& x) {
  if (x.is_array()) {
    double im = x[1].get<double>();
    return format_double(x[0].get<double>()) + (std::signbit(im) ? "-" : "+") +
           format_double(std::fabs(im)) + "j";
  }
  if (x.is_number_float()) return format_double(x.get<double>());
  return x.dump();
}

std::string shape_text(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string key_text(std::string_view key) {
  bool plain = !key.empty();
  for (char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("_-./%", c)) plain = false;
  return plain ? std::string(key) : json_quoted(key);
}

bool is_container(const Value& v) {
  return (v.kind() == Kind::list && !v.as_list().empty()) ||
         (v.kind() == Kind::map && !v.as_map().empty());
}

/// Renders an array as nested brackets, eliding the middle of long dimensions.
class ArrayText {
 public:
  ArrayText(const Array& a, std::size_t indent) : a_(a), indent_(indent) {
    bool elide = a.size() > kFullArrayLimit;
    for (auto n : a.shape()) {
      std::vector<std::uint64_t> idx;
      for (std::uint64_t i = 0; i < n; ++i) {
        if (elide && n > 2 * kEdgeItems && i == kEdgeItems) {
          idx.push_back(kElided);
          i = n - kEdgeItems - 1;
          continue;
        }
        idx.push_back(i);
      }
      picks_.push_back(std::move(idx));
    }
    gather();
  }

  std::string text() {
    std::string out;
    if (a_.rank() == 0) return elements_.empty() ? "[]" : elements_[0];
    next_ = 0;
    emit(0, out);
    return out;
  }

 private:
  static constexpr std::uint64_t kElided = ~std::uint64_t{0};

  /// Copies the picked elements into a small array and formats each through to_json.
  void gather() {
    std::size_t esize = dtype_size(a_.dtype());
    std::vector<std::uint64_t> flat;
    collect(0, 0, flat);
    Array picked(a_.dtype(), Shape{flat.size()});
    for (std::size_t i = 0; i < flat.size(); ++i)
      std::memcpy(picked.buffer().mutable_data() + i * esize, a_.buffer().data() + flat[i] * esize,
                  esize);
    const auto j = to_json(Value(std::move(picked)));
    for (const auto& x : j["$array"]["data"]) elements_.push_back(format_element(x));
  }

  void collect(std::size_t dim, std::uint64_t offset, std::vector<std::uint64_t>& flat) const {
    if (dim == a_.rank()) {
      flat.push_back(offset);
      return;
    }
    std::uint64_t stride = 1;
    for (std::size_t d = dim + 1; d < a_.rank(); ++d) stride *= a_.shape()[d];
    for (auto i : picks_[dim])
      if (i != kElided) collect(dim + 1, offset + i * stride, flat);
  }

  /// Column of the end of out, which starts at column indent_.
  std::size_t column(const std::string& out) const {
    auto nl = out.rfind('\n');
    return nl == std::string::npos ? indent_ + out.size() : out.size() - nl - 1;
  }

  void emit(std::size_t dim, std::string& out) {
    out += '[';
    const auto& picks = picks_[dim];
    bool last_dim = dim + 1 == a_.rank();
    std::string newline = '\n' + spaces(indent_ + dim + 1);
    for (std::size_t k = 0; k < picks.size(); ++k) {
      if (k) {
        out += ',';
        bool wrap =
            !last_dim ||
            column(out) + 2 + (picks[k] == kElided ? 3 : elements_[next_].size()) > kLineWidth;
        out += wrap ? newline : " ";
      }
      if (picks[k] == kElided)
        out += "...";
      else if (last_dim)
        out += elements_[next_++];
      else
        emit(dim + 1, out);
    }
    out += ']';
  }

  const Array& a_;
  std::size_t indent_;
  std::vector<std::vector<std::uint64_t>> picks_;
  std::vector<std::string> elements_;
  std::size_t next_ = 0;
};

std::string array_header(const Array& a) {
  return std::string(dtype_name(a.dtype())) + " " + shape_text(a.shape());
}

/// A value that fits on one line in render_value, or "" when it needs a block.
std::string inline_text(const Value& v, bool top_level) {
  switch (v.kind()) {
    case Kind::null:
      return "null";
    case Kind::boolean:
      return v.as_bool() ? "true" : "false";
    case Kind::integer:
      return std::to_string(v.as_int());
    case Kind::floating:
      return format_double(v.as_double());
    case Kind::string:
      return top_level ? v.as_string() : json_quoted(v.as_string());
    case Kind::bytes: {
      const auto& b = v.as_bytes().data;
      std::string s = "bytes (" + format_bytes(b.size()) + ")";
      if (b.size() <= kInlineBytes) s += " base64:" + base64_encode(b.span());
      return s;
    }
    case Kind::object: {
      const auto& o = v.as_object();
      return "object " + o.type_name + " (" + o.archive + " archive, " +
             format_bytes(o.blob.size()) + ")";
    }
    case Kind::list:
      return v.as_list().empty() ? "[]" : "";
    case Kind::map:
      return v.as_map().empty() ? "{}" : "";
    case Kind::array:
      return "";
  }
  return "";
}

void render_block(const Value& v, std::size_t indent, std::string& out);

/// One "label value" item of a map or list block.
void render_item(const std::string& label, const Value& v, std::size_t indent, std::string& out) {
  out += spaces(indent) + label;
  if (v.kind() == Kind::array) {
    const auto& a = v.as_array();
    out +=
        ' ' + array_header(a) + '\n' + spaces(indent + 2) + ArrayText(a, indent + 2).text() + '\n';
  } else if (is_container(v)) {
    out += '\n';
    render_block(v, indent + 2, out);
  } else {
    out += ' ' + inline_text(v, false) + '\n';
  }
}

void render_block(const Value& v, std::size_t indent, std::string& out) {
  if (v.kind() == Kind::map) {
    for (const auto& [key, child] : v.as_map())
      render_item(key_text(key) + ":", child, indent, out);
  } else {
    for (const auto& child : v.as_list()) render_item("-", child, indent, out);
  }
}

void tree(const Value& v, std::size_t indent, std::string& out) {
  out += describe_value(v) + '\n';
  auto more = [&](std::size_t total) {
    if (total > kMaxChildren)
      out += spaces(indent + 2) + "... (" + std::to_string(total - kMaxChildren) + " more)\n";
  };
  if (v.kind() == Kind::map) {
    std::size_t n = 0;
    for (const auto& [key, child] : v.as_map()) {
      if (n++ == kMaxChildren) break;
      out += spaces(indent + 2) + key_text(key) + ": ";
      tree(child, indent + 2, out);
    }
    more(v.as_map().size());
  } else if (v.kind() == Kind::list) {
    const auto& list = v.as_list();
    for (std::size_t i = 0; i < list.size() && i < kMaxChildren; ++i) {
      out += spaces(indent + 2) + "[" + std::to_string(i) + "]: ";
      tree(list[i], indent + 2, out);
    }
    more(list.size());
  }
}

}  // namespace

std::string render_value(const Value& v) {
  if (v.kind() == Kind::array) {
    const auto& a = v.as_array();
    return array_header(a) + '\n' + ArrayText(a, 0).text() + '\n';
  }
  if (is_container(v)) {
    std::string out;
    render_block(v, 0, out);
    return out;
  }
  return inline_text(v, true) + '\n';
}

std::string describe_value(const Value& v) {
  switch (v.kind()) {
    case Kind::null:
      return "null";
    case Kind::boolean:
    case Kind::integer:
    case Kind::floating:
      return std::string(kind_name(v.kind())) + " " + inline_text(v, false);
    case Kind::string: {
      const auto& s = v.as_string();
      if (s.size() <= kShortString) return "string " + json_quoted(s);
      return "string (" + format_bytes(s.size()) + ") " + json_quoted(s.substr(0, kShortString)) +
             "...";
    }
    case Kind::bytes:
      return "bytes (" + format_bytes(v.as_bytes().data.size()) + ")";
    case Kind::object:
      return inline_text(v, false);
    case Kind::array: {
      const auto& a = v.as_array();
      return "array " + array_header(a) + " (" + format_bytes(a.nbytes()) + ")";
    }
    case Kind::list:
      return "list (" + count(v.as_list().size(), "item") + ", " + format_bytes(v.payload_bytes()) +
             ")";
    case Kind::map:
      return "map (" + count(v.as_map().size(), "key") + ", " + format_bytes(v.payload_bytes()) +
             ")";
  }
  return "";
}

std::string describe_tree(const Value& v, std::size_t indent) {
  std::string out;
  tree(v, indent, out);
  return out;
}

nlohmann::json describe_json(const Value& v) {
  nlohmann::json j = {{"kind", kind_name(v.kind())}, {"bytes", v.payload_bytes()}};
  switch (v.kind()) {
    case Kind::null:
    case Kind::boolean:
    case Kind::integer:
    case Kind::floating:
      j["value"] = to_json(v);
      break;
    case Kind::string:
      j["length"] = v.as_string().size();
      if (v.as_string().size() <= kShortString) j["value"] = v.as_string();
      break;
    case Kind::bytes:
      j["length"] = v.as_bytes().data.size();
      break;
    case Kind::array:
      j["dtype"] = dtype_name(v.as_array().dtype());
      j["shape"] = v.as_array().shape();
      break;
    case Kind::object:
      j["type"] = v.as_object().type_name;
      j["archive"] = v.as_object().archive;
      break;
    case Kind::list: {
      auto items = nlohmann::json::array();
      for (const auto& child : v.as_list()) {
        if (items.size() == kMaxChildren) break;
        items.push_back(describe_json(child));
      }
      j["length"] = v.as_list().size();
      j["items"] = std::move(items);
      break;
    }
    case Kind::map: {
      auto items = nlohmann::json::object();
      for (const auto& [key, child] : v.as_map()) {
        if (items.size() == kMaxChildren) break;
        items[key] = describe_json(child);
      }
      j["length"] = v.as_map().size();
      j["items"] = std::move(items);
      break;
    }
  }
  if (j.contains("items") && j["length"].get<std::size_t>() > kMaxChildren)
    j["more"] = j["length"].get<std::size_t>() - kMaxChildren;
  return j;
}

}  // namespace quiver::cli
