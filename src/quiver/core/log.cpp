#include <spdlog/sinks/stdout_sinks.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <quiver/core/log.hpp>
#include <string_view>

namespace quiver {

namespace {
std::mutex& mutex() {
  static std::mutex m;
  return m;
}
spdlog::level::level_enum& level() {
  static spdlog::level::level_enum l = [] {
    const char* env = std::getenv("QUIVER_LOG_LEVEL");
    if (!env || !*env) return spdlog::level::warn;
    // from_str reads any unknown name as "off": say so instead of silencing every warning.
    const auto named = spdlog::level::from_str(env);
    if (named == spdlog::level::off && std::string_view(env) != "off") {
      std::fprintf(stderr,
                   "quiver: QUIVER_LOG_LEVEL='%s' is not a level (trace, debug, info, warn, error, "
                   "critical, off): using warn\n",
                   env);
      return spdlog::level::warn;
    }
    return named;
  }();
  return l;
}
}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  std::lock_guard lock(mutex());
  if (auto l = spdlog::get(name)) return l;
  static auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto l = std::make_shared<spdlog::logger>(name, sink);
  l->set_level(level());
  l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%l] %v");
  spdlog::register_logger(l);
  return l;
}

void set_log_level(spdlog::level::level_enum lvl) {
  std::lock_guard lock(mutex());
  level() = lvl;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    if (l->name().rfind("quiver", 0) == 0) l->set_level(lvl);
  });
}

}  // namespace quiver
