// Thin RAII layer over the HDF5 C API (internal header, not installed): a move-only handle
// per hid_t, a process-wide lock (the serial library is not thread-safe), and checked calls
// that turn a negative return into StoreError or CorruptEntry carrying the HDF5 error stack.
#pragma once

#include <hdf5.h>

#include <concepts>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::h5 {

/// Serialises HDF5 calls across the process. The first Lock of a thread also switches off
/// HDF5's automatic error printing for that thread and disables HDF5 file locking.
class Lock {
 public:
  Lock();

 private:
  std::unique_lock<std::recursive_mutex> lock_;
};

/// Which typed error a failed call raises: StoreError while writing, CorruptEntry while
/// reading a file that should be an entry, InvalidArgument while reading a user's file.
enum class Fault { store_error, corrupt_entry, invalid_argument };

/// What a failed call is reported against.
struct Site {
  std::string path;
  Fault fault = Fault::store_error;
};

/// Throws the Site's error type for a failed call: what failed and, in one line, the innermost
/// frame of the HDF5 error stack (the whole stack is logged at debug level).
[[noreturn]] void fail(std::string_view what, const Site& site);
/// Throws the Site's error type with message (no HDF5 stack: a check of our own failed).
[[noreturn]] void reject(std::string message, const Site& site);

/// rc, or throws as fail() does when rc is negative.
template <std::integral T>
T check(T rc, std::string_view call, const Site& site) {
  if (rc < 0) fail(call, site);
  return rc;
}

/// Owns one reference to an HDF5 identifier; released (never throwing) on destruction.
class Handle {
 public:
  Handle() noexcept = default;
  /// Takes ownership of id.
  explicit Handle(hid_t id) noexcept : id_(id) {}
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  /// The identifier, for passing to HDF5 calls.
  hid_t id() const noexcept { return id_; }
  /// True while an identifier is owned.
  bool valid() const noexcept { return id_ >= 0; }
  /// Releases the identifier now.
  void reset() noexcept;
  /// Gives up ownership and returns the identifier.
  hid_t release() noexcept {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

/// Wraps the identifier returned by call; throws as check() does when it is negative.
Handle own(hid_t id, std::string_view call, const Site& site);

/// Blocks of the file (array chunks) of kAlignThreshold bytes or more start at multiples of
/// kAlignment.
inline constexpr hsize_t kAlignThreshold = hsize_t{1} << 20, kAlignment = 4096;

/// Creates (truncating) a file with checksummed metadata (v1.8 object headers) whose blocks of
/// kAlignThreshold bytes or more are aligned to kAlignment.
Handle create_file(const std::string& path, const Site& site);
/// Opens a file read-only; throws the Site's error when it is not a readable HDF5 file.
Handle open_file(const std::string& path, const Site& site);
/// Flushes every buffered byte of file to the operating system.
void flush(const Handle& file, const Site& site);

/// Closes file now, reporting a failure to write its last bytes (the destructor cannot).
void close(Handle& file, const Site& site);
/// Link creation properties naming links in UTF-8.
Handle utf8_links(const Site& site);

/// True when obj has an attribute called name.
bool has_attr(hid_t obj, const char* name, const Site& site);
/// Creates the scalar string attribute name of obj holding value.
void write_string_attr(hid_t obj, const char* name, std::string_view value, const Site& site);
/// Creates the scalar int64 attribute name of obj holding value.
void write_int_attr(hid_t obj, const char* name, std::int64_t value, const Site& site);
/// Creates the scalar float64 attribute name of obj holding value.
void write_float_attr(hid_t obj, const char* name, double value, const Site& site);
/// The string attribute name of obj; nullopt when absent; throws when not a string.
std::optional<std::string> find_string_attr(hid_t obj, const char* name, const Site& site);
/// The string attribute name of obj; throws the Site's error when absent or not a string.
std::string read_string_attr(hid_t obj, const char* name, const Site& site);
/// An integer attribute converted to int64; throws when absent or not an integer.
std::int64_t read_int_attr(hid_t obj, const char* name, const Site& site);
/// A floating-point attribute as double; throws when absent or not a float.
double read_float_attr(hid_t obj, const char* name, const Site& site);

/// Whether a string lives in a dataset or an attribute.
enum class Holder { dataset, attribute };

/// The datatype storing s: variable-length UTF-8, or fixed-length UTF-8 when s holds a NUL
/// byte (variable-length strings end at the first NUL).
Handle string_type(std::string_view s, const Site& site);
/// Writes s into the scalar dataset or attribute obj created with type string_type(s).
void write_string(hid_t obj, Holder holder, const std::string& s, hid_t type, const Site& site);
/// What to do with the padding of a fixed-length string.
enum class Padding { strip, keep };
/// Reads the scalar string in dataset or attribute obj of file datatype file_type.
std::string read_string(hid_t obj, Holder holder, hid_t file_type, Padding padding,
                        const Site& site);
/// Reads every string (C order) in dataset or attribute obj of file datatype file_type.
std::vector<std::string> read_strings(hid_t obj, Holder holder, hid_t file_type, Padding padding,
                                      const Site& site);

}  // namespace quiver::h5
