// quiver serve --stdio: serves one cache over stdin/stdout (what SshCache starts remotely).
#include <quiver/cli/command.hpp>
#include <quiver/config/config.hpp>
#include <quiver/remote/server.hpp>
#include <quiver/store/read_only_cache.hpp>

namespace quiver::cli {

namespace {

int serve_main(const Invocation& inv) {
  if (!inv.flag("stdio")) throw UsageError("--stdio is required (the only transport)");
  ProtocolStream stream = protect_stdio();
  auto resolved = resolve_config(inv.open_options());
  std::unique_ptr<Cache> cache = make_cache(resolved);
  if (inv.flag("read-only") && !cache->read_only())
    cache = std::make_unique<ReadOnlyCache>(std::move(cache));
  ServeOptions options;
  options.cache_name = resolved.cache_name;
  return serve(*cache, stream.in.get(), stream.out.get(), options);
}

}  // namespace

Command serve_command() {
  Command c;
  c.name = "serve";
  c.summary = "serve a cache over stdin/stdout for a remote client (started by ssh)";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("stdio", po::bool_switch(), "speak the quiver protocol on stdin/stdout (required)")
      ("read-only", po::bool_switch(), "refuse save and evict");
    // clang-format on
  };
  c.details =
      "Moves the protocol stream away from fds 0 and 1 before opening the cache, so that\n"
      "nothing a library prints can corrupt it; logs go to stderr. Exits 0 when the client\n"
      "closes the stream, 1 when the stream breaks or the cache cannot be opened.\n";
  c.run = serve_main;
  return c;
}

}  // namespace quiver::cli
