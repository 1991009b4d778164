// quiver get: loads an entry by digest prefix and prints or writes it.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/lookup.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/cli/render.hpp>
#include <quiver/core/json.hpp>
#include <quiver/store/hdf5_store.hpp>

namespace quiver::cli {

namespace {

int get(const Invocation& inv) {
  auto prefix = parse_prefix(inv.operands.at(0));
  auto output = inv.get<std::string>("output");
  auto cache = inv.open_cache();
  Entry entry = load_entry(*cache, prefix);
  if (output) write_entry_file(*output, entry);
  if (inv.flag("json")) {
    print_json({{"digest", entry.digest.hex()},
                {"call", call_json(entry.call)},
                {"meta", meta_json(entry.meta)},
                {"result", to_json(entry.result)}});
  } else if (!output) {
    std::cout << render_value(entry.result);
  }
  return kExitOk;
}

}  // namespace

Command get_command() {
  Command c;
  c.name = "get";
  c.operands = "PREFIX";
  c.min_operands = c.max_operands = 1;
  c.summary = "print the result of an entry, or write the entry to an HDF5 file";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("output,o", po::value<std::string>()->value_name("FILE.h5"),
       "write the whole entry (call, result, metadata) to FILE.h5 instead of printing")
      ("json", po::bool_switch(),
       "print {\"digest\", \"call\", \"meta\", \"result\"} as JSON");
    // clang-format on
  };
  c.details =
      "PREFIX is at least 4 lowercase hex characters of the digest. Without --json the result\n"
      "is printed for reading: scalars bare, maps and lists indented, arrays as nested\n"
      "brackets (elided in the middle beyond 1000 elements). A missing entry is exit status 1.\n";
  c.run = get;
  return c;
}

}  // namespace quiver::cli
