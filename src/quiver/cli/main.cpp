// `quiver`: global options, dispatch to the subcommands, help, and the one place where
// errors become a line on stderr and an exit code.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/core/version.hpp>
#include <sstream>

namespace quiver::cli {

namespace {

constexpr auto kStyle =
    po::command_line_style::default_style & ~po::command_line_style::allow_guessing;

/// Counts its occurrences, so that -v -v (or -vv) means 2.
class Counter : public po::typed_value<int> {
 public:
  Counter() : po::typed_value<int>(nullptr) {
    zero_tokens();
    default_value(0);
  }
  void xparse(boost::any& store, const std::vector<std::string>&) const override {
    store = (store.empty() ? 0 : boost::any_cast<int>(store)) + 1;
  }
};

/// Options valid before the subcommand and after it.
void add_global_options(po::options_description& d) {
  // clang-format off
  d.add_options()
    ("config", po::value<std::string>()->value_name("FILE"),
     "quiver.toml to read (default: $QUIVER_CONFIG, ./quiver.toml or a parent's, "
     "$XDG_CONFIG_HOME/quiver/quiver.toml)")
    ("cache", po::value<std::string>()->value_name("NAME"),
     "cache to use (default: [default] cache of the config)")
    ("verbose,v", new Counter(), "log more to stderr: -v info, -vv debug");
  // clang-format on
}

void apply_global_options(const po::variables_map& vm, GlobalOptions& g) {
  if (vm.count("config")) g.config_file = vm["config"].as<std::string>();
  if (vm.count("cache")) g.cache_name = vm["cache"].as<std::string>();
  if (vm.count("verbose")) g.verbosity += vm["verbose"].as<int>();
}

std::vector<Command> all_commands() {
  std::vector<Command> c;
  c.push_back(put_command());
  c.push_back(get_command());
  c.push_back(ls_command());
  c.push_back(show_command());
  c.push_back(expand_command());
  c.push_back(shrink_command());
  c.push_back(evict_command());
  c.push_back(stats_command());
  c.push_back(fsck_command());
  c.push_back(gc_command());
  c.push_back(info_command());
  c.push_back(serve_command());
  c.push_back(ping_command());
  c.push_back(run_command());
  return c;
}

/// The options accepted before the subcommand: the global ones, --version and --help.
void add_top_level_options(po::options_description& d) {
  add_global_options(d);
  // clang-format off
  d.add_options()
    ("version", "print the quiver version and exit")
    ("help,h", "print this help and exit");
  // clang-format on
}

std::string general_help(const std::vector<Command>& commands) {
  po::options_description global("Global options");
  add_top_level_options(global);
  std::ostringstream os;
  os << "usage: quiver [global options] COMMAND [options] [operands]\n\n"
        "quiver: a shared result cache for HPC jobs.\n\nCommands:\n";
  for (const auto& c : commands) os << "  " << pad(c.name, 8) << " " << c.summary << '\n';
  os << '\n'
     << global << '\n'
     << "Run 'quiver COMMAND --help' for the options of a command.\n"
     << "Exit status: 0 success, 1 error, 2 bad command line, 3 fsck found problems,\n"
     << "4 fsck --repair repaired problems.\n";
  return os.str();
}

/// The options of a command, as shown by its --help.
struct CommandOptions {
  po::options_description visible;
  po::options_description global{"Global options"};
  po::options_description all;

  explicit CommandOptions(const Command& c) : visible("Options") {
    c.add_options(visible);
    visible.add_options()("help,h", "print this help and exit");
    add_global_options(global);
    po::options_description hidden;
    hidden.add_options()("operands", po::value<std::vector<std::string>>());
    all.add(visible).add(global).add(hidden);
  }
};

std::string command_help(const Command& c) {
  CommandOptions options(c);
  std::ostringstream os;
  os << "usage: quiver " << c.name << " [options]" << (c.operands.empty() ? "" : " " + c.operands)
     << "\n\n"
     << c.summary << "\n\n"
     << options.visible << '\n'
     << options.global;
  if (!c.details.empty()) os << '\n' << c.details << (c.details.back() == '\n' ? "" : "\n");
  return os.str();
}

int run_command(const Command& c, const std::vector<std::string>& args, GlobalOptions globals) {
  CommandOptions options(c);
  po::positional_options_description positional;
  positional.add("operands", -1);
  po::variables_map vm;
  po::store(
      po::command_line_parser(args).options(options.all).positional(positional).style(kStyle).run(),
      vm);
  if (vm.count("help")) {
    std::cout << command_help(c);
    return kExitOk;
  }
  po::notify(vm);
  apply_global_options(vm, globals);
  Invocation inv{vm, {}, globals};
  if (vm.count("operands")) inv.operands = vm["operands"].as<std::vector<std::string>>();
  if (inv.operands.size() < c.min_operands)
    throw UsageError("missing operand " + c.operands + " (see 'quiver " + c.name + " --help')");
  if (inv.operands.size() > c.max_operands)
    throw UsageError("unexpected operand '" + inv.operands[c.max_operands] + "'");
  if (globals.verbosity > 0)
    set_log_level(globals.verbosity == 1 ? spdlog::level::info : spdlog::level::debug);
  return c.run(inv);
}

/// Index of the subcommand in args: the first operand not consumed by a global option.
std::size_t find_command(const std::vector<std::string>& args,
                         const po::options_description& global) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (a == "--") return i + 1;
    if (a.size() < 2 || a[0] != '-') return i;
    if (a.rfind("--", 0) == 0 && a.find('=') == std::string::npos) {
      const auto* d = global.find_nothrow(a.substr(2), false);
      if (d && d->semantic()->max_tokens() > 0) ++i;
    }
  }
  return args.size();
}

int run(const std::vector<std::string>& args) {
  const auto commands = all_commands();
  GlobalOptions globals;
  po::options_description global;
  add_top_level_options(global);

  std::size_t at = find_command(args, global);
  std::vector<std::string> before(args.begin(), args.begin() + static_cast<std::ptrdiff_t>(at));
  if (!before.empty() && before.back() == "--") before.pop_back();
  po::variables_map vm;
  po::store(po::command_line_parser(before).options(global).style(kStyle).run(), vm);
  po::notify(vm);
  apply_global_options(vm, globals);
  if (vm.count("help")) {
    std::cout << general_help(commands);
    return kExitOk;
  }
  if (vm.count("version")) {
    std::cout << "quiver " << kVersion << '\n';
    return kExitOk;
  }
  if (at == args.size()) throw UsageError("missing command (see 'quiver --help')");

  std::string name = args[at];
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(at) + 1, args.end());
  if (name == "help") {
    if (rest.empty()) {
      std::cout << general_help(commands);
      return kExitOk;
    }
    name = rest.front();
    rest = {"--help"};
  }
  auto it = std::find_if(commands.begin(), commands.end(),
                         [&](const Command& c) { return c.name == name; });
  if (it == commands.end())
    throw UsageError("unknown command '" + name + "' (see 'quiver --help')");
  try {
    return run_command(*it, rest, globals);
  } catch (const po::error& e) {
    throw UsageError(name + ": " + e.what() + " (see 'quiver " + name + " --help')");
  } catch (const UsageError& e) {
    throw UsageError(name + ": " + e.what());
  }
}

}  // namespace

}  // namespace quiver::cli

int main(int argc, char** argv) {
  namespace cli = quiver::cli;
  try {
    return cli::run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const cli::UsageError& e) {
    cli::print_error(e.what());
    return cli::kExitUsage;
  } catch (const cli::po::error& e) {
    cli::print_error(std::string(e.what()) + " (see 'quiver --help')");
    return cli::kExitUsage;
  } catch (const quiver::StoreError& e) {
    cli::print_error(e.what());
    // After a failed HDF5 write (a full disk) HDF5 1.10's exit handler crashes on the file
    // it could not close (HDFFV-11052, fixed in HDF5 1.14.1). quiver's files are all closed
    // here, so the exit handlers are skipped, with the output flushed first.
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(cli::kExitError);
  } catch (const std::exception& e) {
    cli::print_error(e.what());
    return cli::kExitError;
  }
}
