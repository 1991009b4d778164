// Logging: named spdlog loggers writing to stderr (never stdout: the server's stdout may
// carry the protocol). Internal header; not part of the installed API.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace quiver {

/// The logger called name ("quiver.store", ...), created on first use at the global level.
std::shared_ptr<spdlog::logger> logger(const std::string& name);
/// Sets the level of every quiver logger; from $QUIVER_LOG_LEVEL when unset by the CLI.
void set_log_level(spdlog::level::level_enum level);

}  // namespace quiver
