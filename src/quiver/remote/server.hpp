// The server side of `quiver serve --stdio`: one cache served over a byte stream.
#pragma once

#include <quiver/core/fd.hpp>
#include <quiver/store/cache.hpp>
#include <quiver/wire/frame.hpp>
#include <string>

namespace quiver {

struct ServeOptions {
  std::string cache_name = "default";
  wire::WireLimits limits;  ///< what the server accepts from the client
};

/// The protocol stream, moved away from fds 0 and 1.
struct ProtocolStream {
  Fd in;
  Fd out;
};

/// Moves stdin/stdout to private close-on-exec descriptors, then points fd 0 at /dev/null
/// and fd 1 at stderr, so that a library printing to stdout cannot corrupt the protocol.
/// Call before anything else can print.
ProtocolStream protect_stdio();

/// Serves cache on in/out until the client closes its end: greets, then answers every
/// request (errors as typed error frames). Returns 0 at a clean end of input, 1 when the
/// stream broke (logged to stderr).
int serve(Cache& cache, int in, int out, const ServeOptions& options = {});

/// What the server reports in info(): the cache's info, its config (redacted), name,
/// read_only, versions, cwd, host, pid, executable.
nlohmann::json server_info(Cache& cache, const ServeOptions& options);

}  // namespace quiver
