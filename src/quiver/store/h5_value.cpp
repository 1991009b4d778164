#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <quiver/store/h5_chunks.hpp>
#include <quiver/store/h5_value.hpp>

namespace quiver::h5 {

namespace {

constexpr char kKindAttr[] = "quiver_kind";
// Arrays up to this size live inside their (checksummed) object header.
constexpr std::uint64_t kCompactBytes = 1024;
// Strings up to this size are stored compact; longer fixed-length strings are contiguous.
constexpr std::size_t kCompactStringBytes = 16 * 1024;
// Largest single H5Dread/H5Dwrite; larger arrays move in slabs of whole rows.
constexpr std::uint64_t kSlabBytes = std::uint64_t{1} << 30;
// HDF5 limits a chunk to 4 GiB; stay well below.
constexpr std::uint64_t kMaxChunkBytes = std::uint64_t{1} << 30;

hid_t predefined(DType t) {
  switch (t) {
    case DType::int8:
      return H5T_STD_I8LE;
    case DType::int16:
      return H5T_STD_I16LE;
    case DType::int32:
      return H5T_STD_I32LE;
    case DType::int64:
      return H5T_STD_I64LE;
    case DType::uint8:
      return H5T_STD_U8LE;
    case DType::uint16:
      return H5T_STD_U16LE;
    case DType::uint32:
      return H5T_STD_U32LE;
    case DType::uint64:
      return H5T_STD_U64LE;
    case DType::float32:
    case DType::complex64:
      return H5T_IEEE_F32LE;
    case DType::float64:
    case DType::complex128:
      return H5T_IEEE_F64LE;
  }
  return H5T_STD_U8LE;
}

// The little-endian HDF5 type of t: arrays are little-endian in memory and in the file, so
// it serves as both memory and file type. Complex numbers are h5py's compound {r, i}.
Handle le_type(DType t, const Site& site) {
  if (t != DType::complex64 && t != DType::complex128)
    return own(H5Tcopy(predefined(t)), "H5Tcopy", site);
  std::size_t size = dtype_size(t);
  Handle c = own(H5Tcreate(H5T_COMPOUND, size), "H5Tcreate(compound)", site);
  check(H5Tinsert(c.id(), "r", 0, predefined(t)), "H5Tinsert(r)", site);
  check(H5Tinsert(c.id(), "i", size / 2, predefined(t)), "H5Tinsert(i)", site);
  return c;
}

// h5py's bool: an int8 enum {FALSE = 0, TRUE = 1}.
Handle bool_type(const Site& site) {
  Handle t = own(H5Tenum_create(H5T_NATIVE_INT8), "H5Tenum_create", site);
  const std::int8_t no = 0, yes = 1;
  check(H5Tenum_insert(t.id(), "FALSE", &no), "H5Tenum_insert", site);
  check(H5Tenum_insert(t.id(), "TRUE", &yes), "H5Tenum_insert", site);
  return t;
}

struct FreeH5 {
  void operator()(char* p) const noexcept { H5free_memory(p); }
};

std::string member_name(hid_t type, unsigned i) {
  std::unique_ptr<char, FreeH5> name(H5Tget_member_name(type, i));
  return name ? std::string(name.get()) : std::string();
}

bool is_bool_enum(hid_t type) {
  if (H5Tget_class(type) != H5T_ENUM || H5Tget_size(type) != 1 || H5Tget_nmembers(type) != 2)
    return false;
  char name[8] = {};
  const std::int8_t no = 0, yes = 1;
  if (H5Tenum_nameof(type, &no, name, sizeof name) < 0 || std::string_view(name) != "FALSE")
    return false;
  return H5Tenum_nameof(type, &yes, name, sizeof name) >= 0 && std::string_view(name) == "TRUE";
}

// The DType an HDF5 datatype reads as, if any.
std::optional<DType> dtype_of_type(hid_t type, const Site& site) {
  std::size_t size = H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      bool sign = H5Tget_sign(type) == H5T_SGN_2;
      switch (size) {
        case 1:
          return sign ? DType::int8 : DType::uint8;
        case 2:
          return sign ? DType::int16 : DType::uint16;
        case 4:
          return sign ? DType::int32 : DType::uint32;
        case 8:
          return sign ? DType::int64 : DType::uint64;
        default:
          return std::nullopt;
      }
    }
    case H5T_FLOAT:
      if (size == 4) return DType::float32;
      if (size == 8) return DType::float64;
      return std::nullopt;
    case H5T_COMPOUND: {
      if (H5Tget_nmembers(type) != 2 || member_name(type, 0) != "r" || member_name(type, 1) != "i")
        return std::nullopt;
      Handle r = own(H5Tget_member_type(type, 0), "H5Tget_member_type", site);
      Handle i = own(H5Tget_member_type(type, 1), "H5Tget_member_type", site);
      auto rt = dtype_of_type(r.id(), site), it = dtype_of_type(i.id(), site);
      if (rt != it) return std::nullopt;
      if (rt == DType::float32) return DType::complex64;
      if (rt == DType::float64) return DType::complex128;
      return std::nullopt;
    }
    case H5T_ENUM: {
      Handle base = own(H5Tget_super(type), "H5Tget_super", site);
      return dtype_of_type(base.id(), site);
    }
    default:
      return std::nullopt;
  }
}

// Chunk dimensions of about target_bytes, splitting the outermost dimensions first.
std::vector<hsize_t> chunk_shape(const Shape& shape, std::size_t esize,
                                 std::uint64_t target_bytes) {
  std::uint64_t left = std::max<std::uint64_t>(1, std::min(target_bytes, kMaxChunkBytes) / esize);
  std::vector<hsize_t> chunk(shape.size());
  for (std::size_t i = shape.size(); i-- > 0;) {
    std::uint64_t c = std::clamp<std::uint64_t>(left, 1, shape[i]);
    c = std::min<std::uint64_t>(c, 0xffffffffu);
    chunk[i] = c;
    left /= c;
  }
  return chunk;
}

// Calls io(memory space, file space, byte offset) once per slab of whole rows (and whole
// chunks) of about kSlabBytes, or once for the whole array when it is small.
template <class Io>
void by_slabs(hid_t ds, const Shape& shape, std::size_t esize, const Site& site, Io&& io) {
  std::uint64_t total = shape_elements(shape) * esize;
  if (shape.empty() || total <= kSlabBytes) {
    io(H5S_ALL, H5S_ALL, std::uint64_t{0});
    return;
  }
  std::uint64_t row_elements = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) row_elements *= shape[i];
  std::uint64_t row_bytes = row_elements * esize;
  std::uint64_t rows = std::max<std::uint64_t>(1, kSlabBytes / row_bytes);
  Handle dcpl = own(H5Dget_create_plist(ds), "H5Dget_create_plist", site);
  if (H5Pget_layout(dcpl.id()) == H5D_CHUNKED) {  // whole chunks per slab: none is split
    std::vector<hsize_t> chunk(shape.size());
    check(H5Pget_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), "H5Pget_chunk",
          site);
    rows = std::max<std::uint64_t>(chunk[0], rows / chunk[0] * chunk[0]);
  }
  Handle file_space = own(H5Dget_space(ds), "H5Dget_space", site);
  std::vector<hsize_t> start(shape.size(), 0), count(shape.begin(), shape.end());
  for (std::uint64_t r = 0; r < shape[0]; r += rows) {
    start[0] = r;
    count[0] = std::min(rows, shape[0] - r);
    check(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                              nullptr),
          "H5Sselect_hyperslab", site);
    // A memory space of the selection's own shape lets HDF5 map chunks without iterating
    // element by element.
    Handle mem_space = own(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                           "H5Screate_simple", site);
    io(mem_space.id(), file_space.id(), r * row_bytes);
  }
}

struct Link {
  std::string name;
  bool hard;
};

herr_t collect_link(hid_t, const char* name, const H5L_info_t* info, void* data) noexcept {
  try {
    static_cast<std::vector<Link>*>(data)->push_back({name, info->type == H5L_TYPE_HARD});
    return 0;
  } catch (...) {
    return -1;
  }
}

std::vector<Link> links_of(hid_t group, const Site& site) {
  std::vector<Link> links;
  hsize_t index = 0;
  check(H5Literate(group, H5_INDEX_NAME, H5_ITER_NATIVE, &index, collect_link, &links),
        "H5Literate", site);
  return links;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string child_path(const std::string& parent, const std::string& name) {
  return parent.ends_with('/') ? parent + name : parent + "/" + name;
}

std::optional<std::size_t> list_index(std::string_view name) {
  if (name.empty() || (name.size() > 1 && name[0] == '0')) return std::nullopt;
  std::size_t i = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), i);
  if (ec != std::errc() || end != name.data() + name.size()) return std::nullopt;
  return i;
}

}  // namespace

std::string escape_key(std::string_view key) {
  if (key.empty()) return "%";
  if (key == ".") return "%2E";
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '%')
      out += "%25";
    else if (c == '/')
      out += "%2F";
    else if (c == '\0')
      out += "%00";
    else
      out += c;
  }
  return out;
}

std::string unescape_key(std::string_view name) {
  if (name == "%") return {};
  std::string out;
  out.reserve(name.size());
  for (std::size_t i = 0; i < name.size(); ++i) {
    int hi = -1, lo = -1;
    if (name[i] == '%' && i + 2 < name.size()) {
      hi = hex_digit(name[i + 1]);
      lo = hex_digit(name[i + 2]);
    }
    if (hi >= 0 && lo >= 0) {
      out += static_cast<char>(hi << 4 | lo);
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

ValueWriter::ValueWriter(const WriteOptions& options, const Site& site)
    : options_(options), site_(site) {
  links_ = utf8_links(site_);
  compact_ = own(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)", site_);
  check(H5Pset_layout(compact_.id(), H5D_COMPACT), "H5Pset_layout", site_);
  check(H5Pset_obj_track_times(compact_.id(), false), "H5Pset_obj_track_times", site_);
  plain_ = own(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate(dataset create)", site_);
  check(H5Pset_obj_track_times(plain_.id(), false), "H5Pset_obj_track_times", site_);
  check(H5Pset_fill_time(plain_.id(), H5D_FILL_TIME_NEVER), "H5Pset_fill_time", site_);
  groups_ = own(H5Pcreate(H5P_GROUP_CREATE), "H5Pcreate(group create)", site_);
  check(H5Pset_obj_track_times(groups_.id(), false), "H5Pset_obj_track_times", site_);
}

void ValueWriter::write(hid_t parent, const std::string& name, const Value& v) {
  Handle obj;
  switch (v.kind()) {
    case Kind::null: {
      Handle space = own(H5Screate(H5S_NULL), "H5Screate(null)", site_);
      obj = own(H5Dcreate2(parent, name.c_str(), H5T_STD_I8LE, space.id(), links_.id(), plain_.id(),
                           H5P_DEFAULT),
                "H5Dcreate2(" + name + ")", site_);
      break;
    }
    case Kind::boolean: {
      const std::int8_t b = v.as_bool() ? 1 : 0;
      obj = scalar(parent, name, bool_type(site_).id(), &b);
      break;
    }
    case Kind::integer: {
      const std::int64_t i = v.as_int();
      obj = scalar(parent, name, H5T_STD_I64LE, &i);
      break;
    }
    case Kind::floating: {
      const double d = v.as_double();
      obj = scalar(parent, name, H5T_IEEE_F64LE, &d);
      break;
    }
    case Kind::string:
      obj = string(parent, name, v.as_string());
      break;
    case Kind::bytes:
      obj = bytes(parent, name, v.as_bytes().data);
      break;
    case Kind::array: {
      const Array& a = v.as_array();
      obj = array(parent, name, a.dtype(), a.shape(), a.buffer().data());
      break;
    }
    case Kind::list: {
      obj = group(parent, name);
      const auto& list = v.as_list();
      for (std::size_t i = 0; i < list.size(); ++i) write(obj.id(), std::to_string(i), list[i]);
      break;
    }
    case Kind::map:
      obj = write_map(parent, name, v.as_map());
      break;
    case Kind::object: {
      const Object& o = v.as_object();
      obj = bytes(parent, name, o.blob);
      write_string_attr(obj.id(), "type_name", o.type_name, site_);
      write_string_attr(obj.id(), "archive", o.archive, site_);
      break;
    }
  }
  write_string_attr(obj.id(), kKindAttr, kind_name(v.kind()), site_);
}

Handle ValueWriter::write_map(hid_t parent, const std::string& name, const Value::Map& map) {
  Handle obj = group(parent, name);
  for (const auto& [key, item] : map) write(obj.id(), escape_key(key), item);
  return obj;
}

Handle ValueWriter::scalar(hid_t parent, const std::string& name, hid_t type, const void* data) {
  Handle space = own(H5Screate(H5S_SCALAR), "H5Screate", site_);
  Handle ds = own(
      H5Dcreate2(parent, name.c_str(), type, space.id(), links_.id(), compact_.id(), H5P_DEFAULT),
      "H5Dcreate2(" + name + ")", site_);
  check(H5Dwrite(ds.id(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite(" + name + ")",
        site_);
  return ds;
}

Handle ValueWriter::string(hid_t parent, const std::string& name, const std::string& s) {
  Handle type = string_type(s, site_);
  Handle space = own(H5Screate(H5S_SCALAR), "H5Screate", site_);
  const Handle& dcpl = s.size() <= kCompactStringBytes ? compact_ : plain_;
  Handle ds = own(
      H5Dcreate2(parent, name.c_str(), type.id(), space.id(), links_.id(), dcpl.id(), H5P_DEFAULT),
      "H5Dcreate2(" + name + ")", site_);
  write_string(ds.id(), Holder::dataset, s, type.id(), site_);
  return ds;
}

Handle ValueWriter::bytes(hid_t parent, const std::string& name, const Buffer& data) {
  return array(parent, name, DType::uint8, Shape{data.size()}, data.data());
}

Handle ValueWriter::array(hid_t parent, const std::string& name, DType dtype, const Shape& shape,
                          const std::byte* data) {
  Handle type = le_type(dtype, site_);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space = shape.empty()
                     ? own(H5Screate(H5S_SCALAR), "H5Screate", site_)
                     : own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                           "H5Screate_simple", site_);
  std::size_t esize = dtype_size(dtype);
  std::uint64_t elements = shape_elements(shape), nbytes = elements * esize;
  Handle chunked;
  const Handle* dcpl = &plain_;
  if (elements > 0 && nbytes <= kCompactBytes) {
    dcpl = &compact_;
  } else if (elements > 0) {
    chunked = own(H5Pcopy(plain_.id()), "H5Pcopy", site_);
    auto chunk = chunk_shape(shape, esize, options_.chunk_bytes);
    check(H5Pset_chunk(chunked.id(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk",
          site_);
    if (options_.gzip > 0)
      check(H5Pset_deflate(chunked.id(), static_cast<unsigned>(std::min(options_.gzip, 9))),
            "H5Pset_deflate", site_);
    if (options_.checksum) check(H5Pset_fletcher32(chunked.id()), "H5Pset_fletcher32", site_);
    dcpl = &chunked;
  }
  Handle ds = own(
      H5Dcreate2(parent, name.c_str(), type.id(), space.id(), links_.id(), dcpl->id(), H5P_DEFAULT),
      "H5Dcreate2(" + name + ")", site_);
  if (nbytes > 0 &&
      !write_checksummed_chunks(ds.id(), shape, esize, data, options_.durable, site_)) {
    by_slabs(ds.id(), shape, esize, site_, [&](hid_t mem, hid_t file, std::uint64_t offset) {
      check(H5Dwrite(ds.id(), type.id(), mem, file, H5P_DEFAULT, data + offset),
            "H5Dwrite(" + name + ")", site_);
    });
  }
  return ds;
}

Handle ValueWriter::group(hid_t parent, const std::string& name) {
  return own(H5Gcreate2(parent, name.c_str(), links_.id(), groups_.id(), H5P_DEFAULT),
             "H5Gcreate2(" + name + ")", site_);
}

void ValueReader::reject_node(const std::string& path, const std::string& why) const {
  reject(path + ": " + why, site_);
}

Value ValueReader::read(hid_t parent, const std::string& name, const std::string& path) {
  Handle obj = own(H5Oopen(parent, name.c_str(), H5P_DEFAULT), "H5Oopen(" + path + ")", site_);
  auto kind = find_string_attr(obj.id(), kKindAttr, site_);
  if (!kind && mode_ == Decode::strict) reject_node(path, "no quiver_kind attribute");
  switch (H5Iget_type(obj.id())) {
    case H5I_GROUP:
      return read_group(obj.id(), kind.value_or(""), path);
    case H5I_DATASET:
      return kind ? read_dataset(obj.id(), *kind, path) : infer_dataset(obj.id(), path);
    default:
      reject_node(path, "neither a group nor a dataset");
  }
}

Value ValueReader::read_child(hid_t group, const std::string& name, const std::string& path,
                              std::string_view part) {
  if (!into_) return read(group, name, child_path(path, name));  // no destinations to match
  std::string parent = std::move(at_);
  at_ = parent.empty() ? std::string(part) : parent + "/" + std::string(part);
  Value v = read(group, name, child_path(path, name));
  at_ = std::move(parent);
  return v;
}

Value ValueReader::read_group(hid_t group, const std::string& kind, const std::string& path) {
  auto links = links_of(group, site_);
  if (kind == "list") {
    Value::List list(links.size());
    std::vector<bool> seen(links.size());
    for (const auto& link : links) {
      auto i = list_index(link.name);
      if (!link.hard || !i || *i >= list.size() || seen[*i])
        reject_node(path, "'" + link.name + "' is not a list item");
      seen[*i] = true;
      list[*i] = read_child(group, link.name, path, link.name);
    }
    return list;
  }
  if (kind != "map" && !kind.empty()) reject_node(path, "a group of kind '" + kind + "'");
  Value::Map map;
  for (const auto& link : links) {
    if (!link.hard) {
      if (mode_ == Decode::strict) reject_node(path, "'" + link.name + "' is not a hard link");
      continue;
    }
    auto key = kind.empty() ? link.name : unescape_key(link.name);
    Value item = read_child(group, link.name, path, key);
    if (!map.emplace(std::move(key), std::move(item)).second)
      reject_node(path, "duplicate key for '" + link.name + "'");
  }
  return map;
}

Value ValueReader::read_dataset(hid_t ds, const std::string& kind, const std::string& path) {
  Handle type = own(H5Dget_type(ds), "H5Dget_type", site_);
  Handle space = own(H5Dget_space(ds), "H5Dget_space", site_);
  H5S_class_t shape = H5Sget_simple_extent_type(space.id());
  H5T_class_t cls = H5Tget_class(type.id());
  auto require = [&](bool ok, const char* what) {
    if (!ok) reject_node(path, "a " + kind + " node needs " + what);
  };
  if (kind == "null") {
    require(shape == H5S_NULL, "a null dataspace");
    return Value();
  }
  if (kind == "bool" || kind == "int64" || kind == "float64")
    require(shape == H5S_SCALAR, "a scalar dataspace");
  if (kind == "bool") {
    require((cls == H5T_ENUM || cls == H5T_INTEGER) && H5Tget_size(type.id()) == 1,
            "a one-byte type");
    Handle mem = own(H5Tcopy(type.id()), "H5Tcopy", site_);
    std::int8_t b = 0;
    check(H5Dread(ds, mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &b), "H5Dread(" + path + ")", site_);
    return Value(b != 0);
  }
  if (kind == "int64") {
    require(cls == H5T_INTEGER, "an integer type");
    std::int64_t i = 0;
    check(H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &i), "H5Dread(" + path + ")",
          site_);
    return Value(i);
  }
  if (kind == "float64") {
    require(cls == H5T_FLOAT, "a floating-point type");
    double d = 0;
    check(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &d),
          "H5Dread(" + path + ")", site_);
    return Value(d);
  }
  if (kind == "string") {
    require(cls == H5T_STRING, "a string type");
    return Value(read_string(ds, Holder::dataset, type.id(), Padding::keep, site_));
  }
  if (kind == "bytes") return Value(Bytes{read_bytes(ds, path)});
  if (kind == "array") {
    const ArrayInto* dest = nullptr;
    if (into_) {
      auto it = into_->find(at_);
      if (it != into_->end()) dest = &it->second;
    }
    return Value(read_array(ds, type.id(), path, dest));
  }
  if (kind == "object") {
    auto type_name = read_string_attr(ds, "type_name", site_);
    auto archive = read_string_attr(ds, "archive", site_);
    return Value(Object{std::move(type_name), std::move(archive), read_bytes(ds, path)});
  }
  reject_node(path, "unknown quiver_kind '" + kind + "'");
}

Value ValueReader::infer_dataset(hid_t ds, const std::string& path) {
  Handle type = own(H5Dget_type(ds), "H5Dget_type", site_);
  Handle space = own(H5Dget_space(ds), "H5Dget_space", site_);
  H5S_class_t shape = H5Sget_simple_extent_type(space.id());
  if (shape == H5S_NULL) return Value();
  int rank = check(H5Sget_simple_extent_ndims(space.id()), "H5Sget_simple_extent_ndims", site_);
  switch (H5Tget_class(type.id())) {
    case H5T_STRING: {
      auto strings = read_strings(ds, Holder::dataset, type.id(), Padding::strip, site_);
      if (shape == H5S_SCALAR) return Value(std::move(strings.front()));
      if (rank == 1) return Value(strings);
      reject_node(path, "string datasets of rank > 1 are not supported");
    }
    case H5T_ENUM:
      if (shape == H5S_SCALAR && is_bool_enum(type.id())) {
        std::int8_t b = 0;
        check(H5Dread(ds, type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &b), "H5Dread(" + path + ")",
              site_);
        return Value(b != 0);
      }
      return Value(read_array(ds, type.id(), path));
    case H5T_INTEGER:
    case H5T_FLOAT:
    case H5T_COMPOUND:
      return Value(read_array(ds, type.id(), path));
    case H5T_OPAQUE: {  // bytes: every element's bytes, in order
      auto n = static_cast<std::size_t>(
          check(H5Sget_simple_extent_npoints(space.id()), "H5Sget_simple_extent_npoints", site_));
      Buffer b = Buffer::allocate(n * H5Tget_size(type.id()));
      if (!b.empty())
        check(H5Dread(ds, type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, b.mutable_data()),
              "H5Dread(" + path + ")", site_);
      return Value(Bytes{std::move(b)});
    }
    default:
      reject_node(path, "unsupported datatype");
  }
}

Array ValueReader::read_array(hid_t ds, hid_t type, const std::string& path,
                              const ArrayInto* dest) {
  auto dtype = dtype_of_type(type, site_);
  if (!dtype) reject_node(path, "datatype has no array dtype");
  Handle space = own(H5Dget_space(ds), "H5Dget_space", site_);
  H5S_class_t cls = H5Sget_simple_extent_type(space.id());
  if (cls != H5S_SCALAR && cls != H5S_SIMPLE) reject_node(path, "an array needs a dataspace");
  int rank = check(H5Sget_simple_extent_ndims(space.id()), "H5Sget_simple_extent_ndims", site_);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr), "H5Sget_simple_extent_dims",
        site_);
  Shape shape(dims.begin(), dims.end());
  Array a;
  if (dest) {
    if (auto why = destination_mismatch(at_, *dtype, shape, *dest))
      throw DestinationMismatch(*why, site_.path);
    a = Array(*dtype, shape, Buffer::borrow(dest->bytes.data(), dest->bytes.size()));
  } else {
    a = Array(*dtype, shape);
  }
  if (a.nbytes() == 0) return a;
  Handle mem = H5Tget_class(type) == H5T_ENUM
                   ? own(H5Tget_native_type(type, H5T_DIR_ASCEND), "H5Tget_native_type", site_)
                   : le_type(*dtype, site_);
  std::byte* data = a.buffer().mutable_data();
  if (check(H5Tequal(type, mem.id()), "H5Tequal", site_) > 0 &&
      read_checksummed_chunks(ds, shape, dtype_size(*dtype), data, site_))
    return a;
  by_slabs(ds, shape, dtype_size(*dtype), site_,
           [&](hid_t mem_space, hid_t file_space, std::uint64_t offset) {
             check(H5Dread(ds, mem.id(), mem_space, file_space, H5P_DEFAULT, data + offset),
                   "H5Dread(" + path + ")", site_);
           });
  return a;
}

Buffer ValueReader::read_bytes(hid_t ds, const std::string& path) {
  Handle type = own(H5Dget_type(ds), "H5Dget_type", site_);
  Array a = read_array(ds, type.id(), path);
  if (a.dtype() != DType::uint8 || a.rank() != 1)
    reject_node(path, "bytes need a 1-D uint8 dataset");
  return a.buffer();
}

}  // namespace quiver::h5
