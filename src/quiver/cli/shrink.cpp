// quiver shrink: the shortest unique prefix of each digest.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/parse.hpp>

namespace quiver::cli {

Command shrink_command() {
  Command c;
  c.name = "shrink";
  c.operands = "DIGEST...";
  c.min_operands = 1;
  c.max_operands = kAnyNumber;
  c.summary = "print the shortest prefix (at least 4 characters) naming each digest uniquely";
  c.add_options = [](po::options_description&) {};
  c.details = "Prints one prefix per line, in the order of the digests given.\n";
  c.run = [](const Invocation& inv) {
    std::vector<Digest> digests;
    for (const auto& text : inv.operands) digests.push_back(parse_digest(text));
    auto cache = inv.open_cache();
    for (const auto& d : digests) std::cout << cache->shrink(d) << '\n';
    return kExitOk;
  };
  return c;
}

}  // namespace quiver::cli
