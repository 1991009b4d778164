// The pieces every `quiver` subcommand shares: its description, what it is invoked with,
// exit codes and usage errors. Each subcommand lives in its own file and returns a Command.
#pragma once

// GCC 12 reports a potential null dereference inside Boost.Program_options' templates
// (any_cast results in typed_value::notify); the code is Boost's, not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <boost/program_options.hpp>
#pragma GCC diagnostic pop
#include <cstddef>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <quiver/config/open.hpp>
#include <quiver/store/cache.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace quiver::cli {

namespace po = boost::program_options;

/// Exit codes of `quiver` (docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,            ///< the operation failed (including "not found")
  kExitUsage = 2,            ///< bad command line
  kExitProblemsFound = 3,    ///< fsck found problems and left them in place
  kExitProblemsRepaired = 4  ///< fsck --repair found problems and repaired them
};

/// A bad command line (unknown option, missing or malformed value): one line, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Options accepted before the subcommand and by every subcommand.
struct GlobalOptions {
  std::optional<std::filesystem::path> config_file;
  std::optional<std::string> cache_name;
  int verbosity = 0;  ///< number of -v
};

/// What a subcommand runs with: its parsed options, its operands and the global options.
struct Invocation {
  const po::variables_map& options;
  std::vector<std::string> operands;
  GlobalOptions globals;

  /// True when the bool_switch option name was given.
  bool flag(const char* name) const { return options.count(name) && options[name].as<bool>(); }
  /// The value of option name when it was given.
  template <class T>
  std::optional<T> get(const char* name) const {
    if (!options.count(name) || options[name].defaulted()) return std::nullopt;
    return options[name].as<T>();
  }
  /// Every value of the repeatable option name (empty when not given).
  std::vector<std::string> all(const char* name) const {
    return get<std::vector<std::string>>(name).value_or(std::vector<std::string>{});
  }
  /// What --config / --cache ask for.
  OpenOptions open_options() const { return {globals.config_file, globals.cache_name}; }
  /// Opens the cache chosen by --config / --cache (or the configured default).
  std::unique_ptr<Cache> open_cache() const { return open(open_options()); }
};

inline constexpr std::size_t kAnyNumber = std::numeric_limits<std::size_t>::max();

/// One subcommand: its name, help text, options and the function that runs it.
struct Command {
  std::string name;
  std::string operands;  ///< synopsis of the operands, e.g. "PREFIX..."
  std::size_t min_operands = 0;
  std::size_t max_operands = 0;  ///< kAnyNumber for no limit
  std::string summary;           ///< one line, for `quiver --help`
  std::string details;           ///< text after the options in `quiver NAME --help`
  std::function<void(po::options_description&)> add_options;
  std::function<int(const Invocation&)> run;
};

Command put_command();
Command get_command();
Command ls_command();
Command show_command();
Command expand_command();
Command shrink_command();
Command evict_command();
Command stats_command();
Command fsck_command();
Command gc_command();
Command info_command();
Command serve_command();
Command ping_command();
Command run_command();

}  // namespace quiver::cli
