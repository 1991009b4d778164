// quiver stats: entries and bytes, in total and per function.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/progress.hpp>
#include <quiver/store/maintenance.hpp>

namespace quiver::cli {

namespace {

int stats_main(const Invocation& inv) {
  auto cache = inv.open_cache();
  CacheStats s;
  {
    ProgressDisplay progress("stats");
    s = stats(*cache, progress.callback());
  }
  if (inv.flag("json")) {
    nlohmann::json functions = nlohmann::json::object();
    for (const auto& [name, f] : s.functions)
      functions[name] = {{"entries", f.entries}, {"bytes", f.bytes}};
    print_json({{"entries", s.entries}, {"bytes", s.bytes}, {"functions", functions}});
    return kExitOk;
  }
  std::size_t width = 8;
  for (const auto& [name, f] : s.functions) width = std::max(width, name.size());
  std::cout << "entries: " << s.entries << '\n'
            << "bytes:   " << s.bytes << " (" << format_bytes(s.bytes) << ")\n";
  if (s.functions.empty()) return kExitOk;
  std::cout << '\n'
            << pad("FUNCTION", width) << "  " << pad("ENTRIES", 9, true) << "  "
            << pad("BYTES", 10, true) << '\n';
  for (const auto& [name, f] : s.functions)
    std::cout << pad(name, width) << "  " << pad(std::to_string(f.entries), 9, true) << "  "
              << pad(format_bytes(f.bytes), 10, true) << '\n';
  return kExitOk;
}

}  // namespace

Command stats_command() {
  Command c;
  c.name = "stats";
  c.summary = "count entries and bytes, in total and per function";
  c.add_options = [](po::options_description& d) {
    d.add_options()("json", po::bool_switch(),
                    "print {\"entries\", \"bytes\", \"functions\": {F: {\"entries\", \"bytes\"}}}");
  };
  c.run = stats_main;
  return c;
}

}  // namespace quiver::cli
