#include "testing/testing.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <quiver/remote/process.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace quiver::testing {

TempDir::TempDir(std::string_view tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base && *base ? base : "/tmp") + "/" + std::string(tag) + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

RunResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const std::string& input) {
  Process proc = Process::spawn(argv, env);
  RunResult r;
  std::size_t written = 0;
  if (input.empty()) proc.stdin_fd().reset();
  std::vector<pollfd> fds;
  char buf[65536];
  while (proc.stdout_fd() || proc.stderr_fd()) {
    fds.clear();
    for (Fd* f : {&proc.stdout_fd(), &proc.stderr_fd()})
      if (*f) fds.push_back({f->get(), POLLIN, 0});
    if (proc.stdin_fd()) fds.push_back({proc.stdin_fd().get(), POLLOUT, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    for (const auto& p : fds) {
      if (!p.revents) continue;
      if (proc.stdin_fd() && p.fd == proc.stdin_fd().get()) {
        auto n = ::write(p.fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n < 0 || written == input.size()) proc.stdin_fd().reset();
        continue;
      }
      const bool is_out = proc.stdout_fd() && p.fd == proc.stdout_fd().get();
      auto n = ::read(p.fd, buf, sizeof buf);
      if (n <= 0) {
        (is_out ? proc.stdout_fd() : proc.stderr_fd()).reset();
        continue;
      }
      (is_out ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
    }
  }
  const ExitStatus st = proc.close();
  r.status = st.code >= 0 ? st.code : 128 + st.signal;
  return r;
}

std::string cli_path() {
  return QUIVER_CLI;
}

namespace {
std::size_t entries_of(const char* dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

int count_occurrences(const std::filesystem::path& path, std::string_view needle) {
  std::ostringstream content;
  content << std::ifstream(path, std::ios::binary).rdbuf();
  const std::string text = content.str();
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::size_t open_fd_count() {
  return entries_of("/proc/self/fd") - 1;  // minus the one the iterator itself holds
}

std::size_t thread_count() {
  return entries_of("/proc/self/task");
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

RunResult run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env,
                  const std::string& input) {
  std::vector<std::string> argv{cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, env, input);
}

Array ramp(std::uint64_t n, double seed) {
  Array a(DType::float64, {n});
  auto s = a.as_mutable<double>();
  for (std::uint64_t i = 0; i < n; ++i) s[i] = static_cast<double>(i) * 0.5 + seed;
  return a;
}

Value sample_value_of_every_kind() {
  Value::Map m;
  m["null"] = Value();
  m["true"] = true;
  m["false"] = false;
  m["int"] = std::int64_t{-1234567890123};
  m["float"] = 3.25;
  m["string"] = "héllo, wörld";
  m["empty_string"] = "";
  m["bytes"] = Bytes{Buffer::copy_of(std::string_view("\x00\x01\xff binary", 10))};
  m["f64"] = Array::from(std::vector<double>{1.5, -2.5, 3.0, 4.0, 5.0, 6.0}, {2, 3});
  m["f32"] = Array::from(std::vector<float>{1.0f, 2.0f});
  m["i8"] = Array::from(std::vector<std::int8_t>{-128, 0, 127});
  m["i16"] = Array::from(std::vector<std::int16_t>{-32768, 32767});
  m["i32"] = Array::from(std::vector<std::int32_t>{-5, 6});
  m["i64"] = Array::from(std::vector<std::int64_t>{-9000000000000000000LL, 1});
  m["u8"] = Array::from(std::vector<std::uint8_t>{0, 255});
  m["u16"] = Array::from(std::vector<std::uint16_t>{65535});
  m["u32"] = Array::from(std::vector<std::uint32_t>{4000000000u, 1, 2});
  m["u64"] = Array::from(std::vector<std::uint64_t>{18000000000000000000ULL});
  m["c64"] = Array::from(std::vector<std::complex<float>>{{1, 2}, {3, -4}});
  m["c128"] = Array::from(std::vector<std::complex<double>>{{0.5, -0.25}});
  m["scalar_array"] = Array::from(std::vector<double>{42.0}, Shape{});
  m["empty_array"] = Array(DType::int32, Shape{0, 3});
  m["rank3"] = Array::from(std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  m["list"] = Value::list({1, "two", 3.0, Value(), Value::list({})});
  m["nested"] = Value::map({{"a", Value::map({{"b", Value::list({true})}})}});
  m["key/with/slashes"] = "ok";
  m["."] = "dot";
  m["%percent"] = 1;
  m["empty_map"] = Value::Map{};
  m["object"] = Object{"demo::Point", "text",
                       Buffer::copy_of(std::string_view("22 serialization::archive 19 1 2"))};
  return Value(std::move(m));
}

}  // namespace quiver::testing
