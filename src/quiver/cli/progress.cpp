#include <unistd.h>

#include <cstdio>
#include <quiver/cli/progress.hpp>

namespace quiver::cli {

namespace {
constexpr auto kInterval = std::chrono::milliseconds(100);
}

ProgressDisplay::ProgressDisplay(std::string label)
    : label_(std::move(label)), active_(::isatty(STDERR_FILENO) == 1) {}

ProgressDisplay::~ProgressDisplay() {
  if (shown_) std::fputs("\r\033[K", stderr);
}

Progress ProgressDisplay::callback() {
  if (!active_) return {};
  return [this](std::uint64_t done, std::uint64_t total) { update(done, total); };
}

void ProgressDisplay::update(std::uint64_t done, std::uint64_t total) {
  auto now = std::chrono::steady_clock::now();
  if (shown_ && now - last_ < kInterval && done != total) return;
  last_ = now;
  shown_ = true;
  if (total > 0)
    std::fprintf(stderr, "\r\033[K%s: %llu/%llu (%llu%%)", label_.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                 static_cast<unsigned long long>(done * 100 / total));
  else
    std::fprintf(stderr, "\r\033[K%s: %llu", label_.c_str(), static_cast<unsigned long long>(done));
  std::fflush(stderr);
}

}  // namespace quiver::cli
