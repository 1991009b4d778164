#include <algorithm>
#include <cstdlib>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/store/h5.hpp>

// HDF5 gained H5Pset_file_locking in 1.10.7 and 1.12.1, and H5Treclaim in 1.12.0.
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
#define QUIVER_H5_HAVE_FILE_LOCKING 1
#endif
#if H5_VERSION_GE(1, 12, 0)
#define QUIVER_H5_HAVE_TRECLAIM 1
#endif

namespace quiver::h5 {

namespace {

std::recursive_mutex& mutex() {
  static std::recursive_mutex m;
  return m;
}

/// The frames of an HDF5 error stack, outermost first.
struct Frames {
  std::string all;        // every frame, "; "-separated
  std::string innermost;  // the description of the last one: what actually went wrong
};

herr_t collect_frame(unsigned, const H5E_error2_t* e, void* data) {
  auto& out = *static_cast<Frames*>(data);
  auto message = [](hid_t id) {
    char buf[256] = {};
    H5E_type_t type;
    return H5Eget_msg(id, &type, buf, sizeof buf) > 0 ? std::string(buf) : std::string();
  };
  if (!out.all.empty()) out.all += "; ";
  out.all += e->func_name ? e->func_name : "?";
  out.all += "(): ";
  out.all += e->desc ? e->desc : "";
  auto major = message(e->maj_num), minor = message(e->min_num);
  if (!major.empty() || !minor.empty()) out.all += " [" + major + ": " + minor + "]";
  out.innermost = e->desc ? e->desc : "";
  return 0;
}

/// The calling thread's HDF5 error stack.
Frames frames() {
  Frames out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_frame, &out);
  for (auto* text : {&out.all, &out.innermost}) std::replace(text->begin(), text->end(), '\n', ' ');
  return out;
}

/// A failure in one line: the innermost frame's description, with the system's own words
/// when HDF5 quotes them ("unable to open file: No such file or directory").
std::string summary(const Frames& f) {
  const std::string_view quoted = "error message = '";
  const auto at = f.innermost.find(quoted);
  if (at == std::string::npos) return f.innermost;
  const auto start = at + quoted.size();
  const auto end = f.innermost.find('\'', start);
  const auto colon = f.innermost.find(':');
  return f.innermost.substr(0, std::min(colon, at)) + ": " +
         f.innermost.substr(start, end == std::string::npos ? end : end - start);
}

// The property lists every file is opened with: checksummed (v1.8) metadata, strong close,
// and no HDF5 file locking (it fails on NFS and Lustre and is not needed: files are
// immutable once renamed into place).
Handle file_access(const Site& site) {
  Handle fapl = own(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate(file access)", site);
  check(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V18, H5F_LIBVER_V18), "H5Pset_libver_bounds",
        site);
  check(H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_STRONG), "H5Pset_fclose_degree", site);
#ifdef QUIVER_H5_HAVE_FILE_LOCKING
  check(H5Pset_file_locking(fapl.id(), false, true), "H5Pset_file_locking", site);
#endif
  return fapl;
}

Handle open_attr(hid_t obj, const char* name, const Site& site) {
  if (!has_attr(obj, name, site)) reject(std::string("attribute '") + name + "' is missing", site);
  return own(H5Aopen(obj, name, H5P_DEFAULT), std::string("H5Aopen(") + name + ")", site);
}

void require_single(hid_t space, const std::string& what, const Site& site) {
  auto n = check(H5Sget_simple_extent_npoints(space), "H5Sget_simple_extent_npoints", site);
  if (n != 1) reject(what + " holds " + std::to_string(n) + " elements, not 1", site);
}

Handle space_of(hid_t obj, Holder holder, const Site& site) {
  return holder == Holder::attribute ? own(H5Aget_space(obj), "H5Aget_space", site)
                                     : own(H5Dget_space(obj), "H5Dget_space", site);
}

// Transfer properties whose type-conversion buffer fits count elements of the two types:
// by default HDF5 allocates and zeroes 1 MiB for every converting read or write.
Handle transfer_for(std::size_t count, hid_t a, hid_t b, const Site& site) {
  std::size_t size = std::max({H5Tget_size(a), H5Tget_size(b), std::size_t{16}});
  std::size_t bytes = std::max(size, std::min(count * size, std::size_t{1} << 20));
  Handle dxpl = own(H5Pcreate(H5P_DATASET_XFER), "H5Pcreate(transfer)", site);
  check(H5Pset_buffer(dxpl.id(), bytes, nullptr, nullptr), "H5Pset_buffer", site);
  return dxpl;
}

void read_raw(hid_t obj, Holder holder, hid_t mem_type, void* buf, std::size_t count,
              const Site& site) {
  if (holder == Holder::attribute) {
    check(H5Aread(obj, mem_type, buf), "H5Aread", site);
    return;
  }
  Handle file_type = own(H5Dget_type(obj), "H5Dget_type", site);
  Handle dxpl = transfer_for(count, mem_type, file_type.id(), site);
  check(H5Dread(obj, mem_type, H5S_ALL, H5S_ALL, dxpl.id(), buf), "H5Dread", site);
}

template <class T>
T read_number_attr(hid_t obj, const char* name, H5T_class_t wanted, hid_t mem_type,
                   const Site& site) {
  Handle attr = open_attr(obj, name, site);
  Handle type = own(H5Aget_type(attr.id()), "H5Aget_type", site);
  if (H5Tget_class(type.id()) != wanted)
    reject(std::string("attribute '") + name + "' has the wrong type", site);
  require_single(space_of(attr.id(), Holder::attribute, site).id(),
                 std::string("attribute '") + name + "'", site);
  T v{};
  read_raw(attr.id(), Holder::attribute, mem_type, &v, 1, site);
  return v;
}

void write_number_attr(hid_t obj, const char* name, hid_t type, const void* value,
                       const Site& site) {
  Handle space = own(H5Screate(H5S_SCALAR), "H5Screate", site);
  Handle attr = own(H5Acreate2(obj, name, type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                    std::string("H5Acreate2(") + name + ")", site);
  check(H5Awrite(attr.id(), type, value), "H5Awrite", site);
}

}  // namespace

Lock::Lock() : lock_(mutex()) {
  static const bool initialised = [] {
#ifndef QUIVER_H5_HAVE_FILE_LOCKING
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
#endif
    return H5open() >= 0;
  }();
  (void)initialised;
  // Automatic error printing is per thread in thread-safe builds of HDF5.
  thread_local bool silenced = false;
  if (!silenced) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    silenced = true;
  }
}

void reject(std::string message, const Site& site) {
  switch (site.fault) {
    case Fault::corrupt_entry:
      throw CorruptEntry(std::move(message), site.path);
    case Fault::invalid_argument:
      throw InvalidArgument(std::move(message), site.path);
    case Fault::store_error:
      break;
  }
  throw StoreError(std::move(message), site.path);
}

void fail(std::string_view what, const Site& site) {
  std::string message = std::string(what) + " failed";
  if (const auto f = frames(); !f.all.empty()) {
    message += ": " + summary(f);
    logger("quiver.store")->debug("{}: {} failed: {}", site.path, what, f.all);
  }
  H5Eclear2(H5E_DEFAULT);
  reject(std::move(message), site);
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() noexcept {
  if (id_ < 0) return;
  Lock lock;
  H5Idec_ref(id_);
  H5Eclear2(H5E_DEFAULT);
  id_ = H5I_INVALID_HID;
}

Handle own(hid_t id, std::string_view call, const Site& site) {
  check(id, call, site);
  return Handle(id);
}

Handle create_file(const std::string& path, const Site& site) {
  Handle fapl = file_access(site);
  // Blocks of kAlignThreshold bytes or more (array chunks) start on a page of the file: reading
  // a chunk then copies whole pages from the page cache, 15 to 20 % faster here than from an
  // offset within a page. At most 4 KiB of padding per 1 MiB or more.
  check(H5Pset_alignment(fapl.id(), kAlignThreshold, kAlignment), "H5Pset_alignment", site);
  return own(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()), "H5Fcreate", site);
}

Handle open_file(const std::string& path, const Site& site) {
  Handle fapl = file_access(site);
  return own(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id()), "H5Fopen", site);
}

void flush(const Handle& file, const Site& site) {
  check(H5Fflush(file.id(), H5F_SCOPE_GLOBAL), "H5Fflush", site);
}

void close(Handle& file, const Site& site) {
  check(H5Fclose(file.release()), "H5Fclose", site);
}

Handle utf8_links(const Site& site) {
  Handle lcpl = own(H5Pcreate(H5P_LINK_CREATE), "H5Pcreate(link create)", site);
  check(H5Pset_char_encoding(lcpl.id(), H5T_CSET_UTF8), "H5Pset_char_encoding", site);
  return lcpl;
}

bool has_attr(hid_t obj, const char* name, const Site& site) {
  return check(H5Aexists(obj, name), std::string("H5Aexists(") + name + ")", site) > 0;
}

void write_string_attr(hid_t obj, const char* name, std::string_view value, const Site& site) {
  Handle type = string_type(value, site);
  Handle space = own(H5Screate(H5S_SCALAR), "H5Screate", site);
  Handle attr = own(H5Acreate2(obj, name, type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
                    std::string("H5Acreate2(") + name + ")", site);
  write_string(attr.id(), Holder::attribute, std::string(value), type.id(), site);
}

void write_int_attr(hid_t obj, const char* name, std::int64_t value, const Site& site) {
  write_number_attr(obj, name, H5T_STD_I64LE, &value, site);
}

void write_float_attr(hid_t obj, const char* name, double value, const Site& site) {
  write_number_attr(obj, name, H5T_IEEE_F64LE, &value, site);
}

std::optional<std::string> find_string_attr(hid_t obj, const char* name, const Site& site) {
  if (!has_attr(obj, name, site)) return std::nullopt;
  return read_string_attr(obj, name, site);
}

std::string read_string_attr(hid_t obj, const char* name, const Site& site) {
  Handle attr = open_attr(obj, name, site);
  Handle type = own(H5Aget_type(attr.id()), "H5Aget_type", site);
  if (H5Tget_class(type.id()) != H5T_STRING)
    reject(std::string("attribute '") + name + "' is not a string", site);
  return read_string(attr.id(), Holder::attribute, type.id(), Padding::strip, site);
}

std::int64_t read_int_attr(hid_t obj, const char* name, const Site& site) {
  return read_number_attr<std::int64_t>(obj, name, H5T_INTEGER, H5T_NATIVE_INT64, site);
}

double read_float_attr(hid_t obj, const char* name, const Site& site) {
  return read_number_attr<double>(obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, site);
}

Handle string_type(std::string_view s, const Site& site) {
  Handle type = own(H5Tcopy(H5T_C_S1), "H5Tcopy(string)", site);
  if (s.find('\0') == std::string_view::npos) {
    check(H5Tset_size(type.id(), H5T_VARIABLE), "H5Tset_size", site);
  } else {
    check(H5Tset_size(type.id(), s.size()), "H5Tset_size", site);
    check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad", site);
  }
  check(H5Tset_cset(type.id(), H5T_CSET_UTF8), "H5Tset_cset", site);
  return type;
}

void write_string(hid_t obj, Holder holder, const std::string& s, hid_t type, const Site& site) {
  const char* vlen = s.c_str();
  const void* buf = check(H5Tis_variable_str(type), "H5Tis_variable_str", site) > 0
                        ? static_cast<const void*>(&vlen)
                        : static_cast<const void*>(s.data());
  if (holder == Holder::attribute) {
    check(H5Awrite(obj, type, buf), "H5Awrite", site);
    return;
  }
  Handle dxpl = transfer_for(1, type, type, site);
  check(H5Dwrite(obj, type, H5S_ALL, H5S_ALL, dxpl.id(), buf), "H5Dwrite", site);
}

std::string read_string(hid_t obj, Holder holder, hid_t file_type, Padding padding,
                        const Site& site) {
  require_single(space_of(obj, holder, site).id(), "a string", site);
  return std::move(read_strings(obj, holder, file_type, padding, site).front());
}

std::vector<std::string> read_strings(hid_t obj, Holder holder, hid_t file_type, Padding padding,
                                      const Site& site) {
  if (H5Tget_class(file_type) != H5T_STRING) reject("not a string", site);
  Handle space = space_of(obj, holder, site);
  auto count = static_cast<std::size_t>(
      check(H5Sget_simple_extent_npoints(space.id()), "H5Sget_simple_extent_npoints", site));
  std::vector<std::string> out;
  out.reserve(count);
  if (count == 0) return out;
  if (check(H5Tis_variable_str(file_type), "H5Tis_variable_str", site) > 0) {
    Handle mem = own(H5Tcopy(H5T_C_S1), "H5Tcopy(string)", site);
    check(H5Tset_size(mem.id(), H5T_VARIABLE), "H5Tset_size", site);
    check(H5Tset_cset(mem.id(), H5Tget_cset(file_type)), "H5Tset_cset", site);
    std::vector<char*> ptrs(count, nullptr);
    read_raw(obj, holder, mem.id(), ptrs.data(), count, site);
    for (const char* p : ptrs) out.emplace_back(p ? p : "");
#ifdef QUIVER_H5_HAVE_TRECLAIM
    H5Treclaim(mem.id(), space.id(), H5P_DEFAULT, ptrs.data());
#else
    H5Dvlen_reclaim(mem.id(), space.id(), H5P_DEFAULT, ptrs.data());
#endif
    return out;
  }
  std::size_t size = H5Tget_size(file_type);
  if (size == 0) fail("H5Tget_size", site);
  Handle mem = own(H5Tcopy(file_type), "H5Tcopy(string)", site);
  std::string raw(size * count, '\0');
  read_raw(obj, holder, mem.id(), raw.data(), count, site);
  H5T_str_t pad = H5Tget_strpad(file_type);
  for (std::size_t i = 0; i < count; ++i) {
    std::string s = raw.substr(i * size, size);
    if (padding == Padding::strip) {
      if (pad == H5T_STR_SPACEPAD)
        s.erase(s.find_last_not_of(' ') + 1);
      else if (pad == H5T_STR_NULLTERM)
        s.resize(std::min(s.find('\0'), s.size()));
      else
        s.erase(s.find_last_not_of('\0') + 1);
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace quiver::h5
