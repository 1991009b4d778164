// quiver expand: the full digest of a unique prefix.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/parse.hpp>

namespace quiver::cli {

Command expand_command() {
  Command c;
  c.name = "expand";
  c.operands = "PREFIX";
  c.min_operands = c.max_operands = 1;
  c.summary = "print the full digest of the one entry whose digest starts with PREFIX";
  c.add_options = [](po::options_description&) {};
  c.details =
      "Exit status 1 when no entry or several entries match; the message of an ambiguous\n"
      "prefix says how many characters would be unique.\n";
  c.run = [](const Invocation& inv) {
    auto prefix = parse_prefix(inv.operands.at(0));
    std::cout << inv.open_cache()->expand(prefix).hex() << '\n';
    return kExitOk;
  };
  return c;
}

}  // namespace quiver::cli
