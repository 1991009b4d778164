#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <quiver/core/errors.hpp>
#include <quiver/store/index_fs.hpp>

namespace quiver::fs {

std::string error_text(int err) {
  return std::strerror(err);
}

Fd open_file(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw StoreError("cannot open: " + error_text(errno), path);
  return Fd(fd);
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw StoreError("cannot write: " + error_text(errno), path);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> read_all(const std::string& path) {
  int raw;
  do {
    raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (raw < 0 && errno == EINTR);
  if (raw < 0 && errno == ENOENT) return std::nullopt;
  if (raw < 0) throw StoreError("cannot open: " + error_text(errno), path);
  Fd fd(raw);
  std::string out;
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && st.st_size > 0)
    out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    auto n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw StoreError("cannot read: " + error_text(errno), path);
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

void sync_path(const std::string& path) {
  Fd fd = open_file(path, O_RDONLY);
  if (::fsync(fd.get()) != 0) throw StoreError("cannot fsync: " + error_text(errno), path);
}

void Writeback::written(std::uint64_t offset, std::uint64_t length) noexcept {
#ifdef __linux__
  if (fd_ < 0 || length == 0) return;
  begin_ = end_ == begin_ ? offset : std::min(begin_, offset);
  end_ = std::max(end_, offset + length);
  if (end_ - begin_ < step_) return;
  (void)::sync_file_range(fd_, static_cast<off64_t>(begin_), static_cast<off64_t>(end_ - begin_),
                          SYNC_FILE_RANGE_WRITE);
  begin_ = end_ = 0;
#else
  (void)offset, (void)length;
#endif
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST)
    throw StoreError("cannot create directory: " + error_text(errno), path);
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) {
    if (errno == ENOENT || errno == ENOTDIR) return names;
    throw StoreError("cannot list directory: " + error_text(errno), path);
  }
  while (const dirent* e = ::readdir(dir.get())) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  return names;
}

}  // namespace quiver::fs
