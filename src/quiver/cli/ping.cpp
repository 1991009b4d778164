// quiver ping: round-trip statistics of the connection to a remote (ssh or subprocess) cache.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/read_only_cache.hpp>

namespace quiver::cli {

namespace {

/// The remote cache in cache: itself, the inner cache of a read-only wrapper, or the first
/// remote layer of a stack; nullptr when there is none.
SshCache* find_remote(Cache& cache) {
  if (auto* r = dynamic_cast<SshCache*>(&cache)) return r;
  if (auto* ro = dynamic_cast<ReadOnlyCache*>(&cache)) return find_remote(ro->inner());
  if (auto* stack = dynamic_cast<CacheStack*>(&cache))
    for (const auto& layer : stack->layers())
      if (auto* r = find_remote(*layer)) return r;
  return nullptr;
}

std::string ms(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", seconds * 1e3);
  return buf;
}

struct RoundTrips {
  double min, median, mean, p99, max;
};

/// Statistics of samples (not empty): p99 is the nearest-rank 99th percentile.
RoundTrips statistics(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  const auto n = samples.size();
  const double median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2.0;
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(n)));
  return {samples.front(), median,
          std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(n),
          samples[std::max<std::size_t>(rank, 1) - 1], samples.back()};
}

int ping_main(const Invocation& inv) {
  const auto count = inv.get<std::size_t>("count").value_or(10);
  if (count == 0) throw UsageError("--count must be at least 1");
  auto resolved = resolve_config(inv.open_options());
  auto cache = make_cache(resolved);
  auto* remote = find_remote(*cache);
  if (!remote)
    throw InvalidArgument("cache '" + resolved.cache_name +
                              "' has no remote layer: ping needs a cache (or stack layer) of "
                              "type \"ssh\" or \"subprocess\"",
                          "ping");
  const auto& o = remote->options();
  const std::string target =
      o.transport == Transport::ssh ? "ssh " + o.host : "subprocess " + o.quiver;
  const bool json = inv.flag("json");

  const auto t0 = std::chrono::steady_clock::now();
  remote->connect();
  const double connect =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!json)
    std::cout << "PING " << resolved.cache_name << " (" << target << "): connected in "
              << ms(connect) << " ms" << std::endl;
  std::vector<double> samples;
  for (std::size_t i = 0; i < count; ++i) {
    samples.push_back(remote->ping());
    if (!json) std::cout << "seq=" << i + 1 << " time=" << ms(samples.back()) << " ms\n";
  }
  const auto s = statistics(samples);
  if (json) {
    print_json({{"cache", resolved.cache_name},
                {"target", target},
                {"count", count},
                {"connect_ms", connect * 1e3},
                {"rtt_ms",
                 {{"min", s.min * 1e3},
                  {"median", s.median * 1e3},
                  {"mean", s.mean * 1e3},
                  {"p99", s.p99 * 1e3},
                  {"max", s.max * 1e3}}}});
    return kExitOk;
  }
  std::cout << "--- " << resolved.cache_name << ": " << count << " round trips ---\n"
            << "rtt min/median/mean/p99/max = " << ms(s.min) << "/" << ms(s.median) << "/"
            << ms(s.mean) << "/" << ms(s.p99) << "/" << ms(s.max) << " ms\n";
  return kExitOk;
}

}  // namespace

Command ping_command() {
  Command c;
  c.name = "ping";
  c.summary = "measure round trips to a remote (ssh or subprocess) cache";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("count,c", po::value<std::size_t>()->value_name("N"), "round trips to make (default 10)")
      ("json", po::bool_switch(),
       "print {\"cache\", \"target\", \"count\", \"connect_ms\", "
       "\"rtt_ms\": {\"min\", \"median\", \"mean\", \"p99\", \"max\"}}");
    // clang-format on
  };
  c.details =
      "Connects to the cache's remote server (for a stack, its first remote layer), then\n"
      "sends N ping requests one after another and prints each round trip and their\n"
      "minimum, median, mean, 99th percentile (nearest rank) and maximum. A cache without a\n"
      "remote layer is an error.\n";
  c.run = ping_main;
  return c;
}

}  // namespace quiver::cli
