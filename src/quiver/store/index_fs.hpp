// POSIX file helpers shared by the HDF5 entry store and its index (internal header):
// opening, whole-file reads and writes, fsync of files and directories, listing.
#pragma once

#include <sys/types.h>

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
/// Creates directory path when missing (its parent must exist); throws StoreError.
void make_dir(const std::string& path);
/// Names in directory path (without "." and ".."); empty when it does not exist.
std::vector<std::string> list_dir(const std::string& path);

}  // namespace quiver::fs
