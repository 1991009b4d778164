// libFuzzer target of config parsing: the input is a quiver.toml (held in a memfd, read
// through /proc/self/fd) resolved for the default cache and for the first cache it names.
// Any outcome but a ResolvedConfig or a ConfigError naming the file is a failure: no other
// exception, no crash. Nothing is built, so nothing touches the filesystem.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <string>

#include "fuzz_target.hpp"

namespace quiver::fuzz {

namespace {

/// The memfd the input is written to, reused for every input.
const Fd& config_fd() {
  static const Fd fd(memfd_create("quiver.toml", MFD_CLOEXEC));
  if (!fd) {
    std::perror("memfd_create");
    std::abort();
  }
  return fd;
}

/// The first word of the input after '[' (a cache name to ask for), if any.
std::optional<std::string> first_table_name(std::string_view text) {
  auto open = text.find('[');
  if (open == std::string_view::npos) return std::nullopt;
  auto start = text.find_first_not_of('[', open);
  auto end = text.find_first_of("]\n", start);
  if (start == std::string_view::npos || end == std::string_view::npos) return std::nullopt;
  return std::string(text.substr(start, end - start));
}

/// True when the config resolved; false for a ConfigError that names the file.
bool resolve(const std::string& file, std::optional<std::string> name) {
  OpenOptions options;
  options.config_file = file;
  options.cache_name = std::move(name);
  try {
    resolve_config(options);
    return true;
  } catch (const ConfigError& e) {
    if (e.where().rfind(file, 0) != 0) {
      std::fprintf(stderr, "config error does not name the file: %s\n", e.what());
      std::abort();
    }
    return false;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config parsing threw something other than ConfigError: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

bool run_input(const std::uint8_t* data, std::size_t size) {
  const int fd = config_fd().get();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::perror("writing the memfd");
    std::abort();
  }
  const std::string file = "/proc/self/fd/" + std::to_string(fd);
  bool ok = resolve(file, std::nullopt);
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto name = first_table_name(text); name && !name->empty() && *name != "default")
    ok = resolve(file, name) && ok;
  return ok;
}

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  quiver::fuzz::run_input(data, size);
  return 0;
}
