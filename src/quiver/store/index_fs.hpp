// POSIX file helpers shared by the HDF5 entry store and its index (internal header):
// opening, whole-file reads and writes, fsync of files and directories, early write-back,
// listing.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <quiver/core/fd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::fs {

/// The text of errno value err.
std::string error_text(int err);
/// Opens path (O_CLOEXEC added); throws StoreError naming path.
Fd open_file(const std::string& path, int flags, mode_t mode = 0666);
/// Writes all of data; throws StoreError naming path.
void write_all(int fd, std::string_view data, const std::string& path);
/// The whole content of path; nullopt when it does not exist; throws StoreError.
std::optional<std::string> read_all(const std::string& path);
/// Flushes path (a file or a directory) to stable storage; throws StoreError.
void sync_path(const std::string& path);
/// Starts writing a file's pages to disk while the file is still being written, so that the
/// fsync ending a durable save finds little left to write. Written ranges are gathered into
/// spans of at least `step` bytes, each handed to the disk without waiting for it (a save
/// holds the process's HDF5 lock, which must not wait for the disk). Advisory: errors are
/// ignored (the fsync reports them); a no-op off Linux.
class Writeback {
 public:
  explicit Writeback(int fd, std::uint64_t step = std::uint64_t{8} << 20) noexcept
      : fd_(fd), step_(step) {}
  /// Call after writing bytes [offset, offset + length) of the file.
  void written(std::uint64_t offset, std::uint64_t length) noexcept;

 private:
  int fd_;
  std::uint64_t step_;
  std::uint64_t begin_ = 0, end_ = 0;  // written, not yet handed to the disk
};

/// Creates directory path when missing (its parent must exist); throws StoreError.
void make_dir(const std::string& path);
/// Names in directory path (without "." and ".."); empty when it does not exist.
std::vector<std::string> list_dir(const std::string& path);

}  // namespace quiver::fs
