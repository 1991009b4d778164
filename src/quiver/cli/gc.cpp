// quiver gc: evicts the oldest entries until the cache fits a size or an age.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/cli/progress.hpp>
#include <quiver/store/maintenance.hpp>

namespace quiver::cli {

namespace {

int gc_main(const Invocation& inv) {
  GcOptions options;
  if (auto max = inv.get<std::string>("max-bytes"))
    options.max_bytes = parse_size(*max, "--max-bytes");
  if (auto age = inv.get<std::string>("older-than"))
    options.older_than = parse_duration(*age, "--older-than");
  options.dry_run = inv.flag("dry-run");
  if (!options.max_bytes && !options.older_than)
    throw UsageError("give --max-bytes, --older-than or both");
  auto cache = inv.open_cache();
  GcReport r;
  {
    ProgressDisplay progress("gc");
    r = gc(*cache, options, progress.callback());
  }
  if (inv.flag("json")) {
    nlohmann::json victims = nlohmann::json::array();
    for (const auto& d : r.victims) victims.push_back(d.hex());
    print_json({{"dry_run", options.dry_run},
                {"examined", r.examined},
                {"evicted", r.evicted},
                {"bytes_freed", r.bytes_freed},
                {"bytes_remaining", r.bytes_remaining},
                {"victims", victims}});
    return kExitOk;
  }
  std::ostringstream os;
  for (const auto& d : r.victims)
    os << (options.dry_run ? "would evict " : "evicted ") << d.hex() << '\n';
  os << (options.dry_run ? "would evict " : "evicted ") << r.victims.size() << " of " << r.examined
     << " entries (" << format_bytes(r.bytes_freed) << "); " << format_bytes(r.bytes_remaining)
     << (options.dry_run ? " would remain\n" : " remain\n");
  std::cout << os.str();
  return kExitOk;
}

}  // namespace

Command gc_command() {
  Command c;
  c.name = "gc";
  c.summary = "evict the oldest entries until the cache is small or young enough";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("max-bytes", po::value<std::string>()->value_name("N"),
       "evict oldest first until the entries total at most N bytes (suffixes K, M, G, T: "
       "powers of 1024)")
      ("older-than", po::value<std::string>()->value_name("DURATION"),
       "evict entries created more than DURATION ago (30m, 12h, 7d, 2w)")
      ("dry-run", po::bool_switch(), "print what would be evicted, evict nothing")
      ("json", po::bool_switch(),
       "print {\"dry_run\", \"examined\", \"evicted\", \"bytes_freed\", \"bytes_remaining\", "
       "\"victims\"}");
    // clang-format on
  };
  c.details =
      "With both options, an entry is evicted when either asks for it. Prints one line per\n"
      "entry evicted (or, with --dry-run, that would be), then a summary.\n";
  c.run = gc_main;
  return c;
}

}  // namespace quiver::cli
