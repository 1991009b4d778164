// Value <-> HDF5 objects (internal header). Layout: docs/hdf5-layout.md. Every node carries
// a string attribute quiver_kind; maps and lists are groups, everything else a dataset.
#pragma once

#include <quiver/core/value.hpp>
#include <quiver/store/h5.hpp>
#include <string>
#include <string_view>

namespace quiver::h5 {

/// How array datasets are stored.
struct WriteOptions {
  bool checksum = true;                  ///< fletcher32 on chunked datasets
  int gzip = 0;                          ///< deflate level, 0 = off
  std::uint64_t chunk_bytes = 4u << 20;  ///< target chunk size
  bool durable = false;                  ///< the file is fsynced once written (see Writeback)
};

/// The link name of map key: '%' -> %25, '/' -> %2F, NUL -> %00, "." -> %2E, "" -> "%".
std::string escape_key(std::string_view key);
/// The map key of a link name written by escape_key (names without escapes pass unchanged).
std::string unescape_key(std::string_view name);

/// Writes Values as HDF5 objects. Use with a Lock held.
class ValueWriter {
 public:
  /// A writer storing arrays as options say; failures name site, which must outlive it.
  ValueWriter(const WriteOptions& options, const Site& site);
  /// Writes v as the child called name of group parent.
  void write(hid_t parent, const std::string& name, const Value& v);
  /// Creates an empty group called name in parent.
  Handle group(hid_t parent, const std::string& name);

 private:
  Handle write_map(hid_t parent, const std::string& name, const Value::Map& map);
  Handle scalar(hid_t parent, const std::string& name, hid_t type, const void* data);
  Handle string(hid_t parent, const std::string& name, const std::string& s);
  Handle bytes(hid_t parent, const std::string& name, const Buffer& data);
  Handle array(hid_t parent, const std::string& name, DType dtype, const Shape& shape,
               const std::byte* data);

  WriteOptions options_;
  const Site& site_;
  Handle links_, compact_, plain_, groups_;
};

/// How nodes without a quiver_kind attribute are read.
enum class Decode {
  strict,  ///< an entry: every node must carry quiver_kind
  infer,   ///< any HDF5 file: groups are maps, datasets become arrays, strings, ...
};

/// An array of the stored result does not fit the caller memory it was to be read into: the
/// caller's mistake, not a corrupt entry.
class DestinationMismatch : public TypeError {
 public:
  using TypeError::TypeError;
};

/// Reads HDF5 objects as Values. Use with a Lock held.
class ValueReader {
 public:
  /// A reader decoding as mode says; failures name site, which must outlive it. Arrays at the
  /// paths of into (relative to the node read, see ArrayDestinations) are read straight into
  /// that memory, after their dtype and size are checked (DestinationMismatch).
  ValueReader(Decode mode, const Site& site, const ArrayDestinations* into = nullptr)
      : mode_(mode), site_(site), into_(into) {}
  /// The Value of the child called name of group parent.
  Value read(hid_t parent, const std::string& name) {
    return read(parent, name, name.starts_with('/') ? name : "/" + name);
  }

 private:
  Value read(hid_t parent, const std::string& name, const std::string& path);
  // Reads child name of group, the node at value path at_ + "/" + part (tracked in at_ only
  // when there are destinations to match).
  Value read_child(hid_t group, const std::string& name, const std::string& path,
                   std::string_view part);
  Value read_group(hid_t group, const std::string& kind, const std::string& path);
  Value read_dataset(hid_t ds, const std::string& kind, const std::string& path);
  Value infer_dataset(hid_t ds, const std::string& path);
  // Reads an array into dest when given, else into a new buffer.
  Array read_array(hid_t ds, hid_t type, const std::string& path, const ArrayInto* dest = nullptr);
  Buffer read_bytes(hid_t ds, const std::string& path);
  [[noreturn]] void reject_node(const std::string& path, const std::string& why) const;

  Decode mode_;
  const Site& site_;
  const ArrayDestinations* into_;
  std::string at_;  // value path of the node being read ("" for the top one)
};

}  // namespace quiver::h5
