// Entry files (internal header): one call, its result and its metadata in one HDF5 file.
// Layout: docs/hdf5-layout.md.
#pragma once

#include <quiver/core/call.hpp>
#include <quiver/store/h5_value.hpp>
#include <string>

namespace quiver::h5 {

/// Which parts of an entry file to read.
enum class Parts {
  call_and_meta,  ///< enough for the index
  everything,     ///< also the result (every dataset is read, so checksums are verified)
};

/// Writes entry as a complete file at path (created or truncated), flushed and closed.
/// Throws StoreError.
void write_entry(const std::string& path, const Entry& entry, const WriteOptions& options);
/// Reads the entry file at path, the result's arrays at the paths of into (if given) straight
/// into that memory. Throws CorruptEntry when it is not a readable entry of a supported format
/// whose stored call matches its digest attribute, DestinationMismatch when an array does not
/// fit its destination.
Entry read_entry(const std::string& path, Parts parts, const ArrayDestinations* into = nullptr);
/// Reads any HDF5 file as a Value (an entry file yields its result). Throws InvalidArgument
/// when the file is unreadable or holds something no Value can represent.
Value read_plain(const std::string& path);

}  // namespace quiver::h5
