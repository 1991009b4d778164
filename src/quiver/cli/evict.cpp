// quiver evict: removes the entries named by digest prefixes.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>

namespace quiver::cli {

namespace {

int evict(const Invocation& inv) {
  std::vector<std::string> prefixes;
  for (const auto& text : inv.operands) prefixes.push_back(parse_prefix(text));
  auto cache = inv.open_cache();
  int status = kExitOk;
  for (const auto& prefix : prefixes) {
    try {
      Digest d = cache->expand(prefix);
      const bool removed = cache->evict(d);
      // A stack cannot evict from its read-only layers: say when the entry is still there.
      const bool stays = cache->contains(d);
      std::cout << (removed ? "evicted " : "already gone ") << d.hex()
                << (stays ? " (still in a read-only layer)" : "") << '\n';
    } catch (const Error& e) {
      if (e.code() != ErrorCode::not_found && e.code() != ErrorCode::ambiguous_digest) throw;
      print_error(e.what());
      status = kExitError;
    }
  }
  return status;
}

}  // namespace

Command evict_command() {
  Command c;
  c.name = "evict";
  c.operands = "PREFIX...";
  c.min_operands = 1;
  c.max_operands = kAnyNumber;
  c.summary = "remove the entries named by digest prefixes";
  c.add_options = [](po::options_description&) {};
  c.details =
      "Each PREFIX is expanded first and must name exactly one entry. Prints 'evicted DIGEST'\n"
      "for each entry removed, with '(still in a read-only layer)' when a stack keeps it in\n"
      "a layer it cannot write. A prefix that matches nothing or several entries is reported\n"
      "on stderr, the other prefixes are still evicted, and the exit status is 1.\n";
  c.run = evict;
  return c;
}

}  // namespace quiver::cli
