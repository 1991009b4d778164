// quiver demo: a 2-D heat-diffusion parameter sweep whose runs are memoized.
//
// Each run solves u_t = alpha * (u_xx + u_yy) on the unit square with an explicit
// finite-difference scheme, a hot disc in the middle and cold walls. The sweep covers
// several diffusivities; every run goes through cache.memoize(), so a second pass over
// the same parameters is served from the cache instead of recomputed.
#include <quiver/quiver.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Params {
  double alpha;
  int n;      // grid points per side
  int steps;  // time steps
};

// Solves one case; returns a map with the final field and a few diagnostics.
quiver::Value solve(const Params& p) {
  const int n = p.n;
  const double h = 1.0 / (n - 1);
  const double dt = 0.2 * h * h / p.alpha;  // stable: dt <= h^2 / (4 alpha)
  const double r = p.alpha * dt / (h * h);
  std::vector<double> u(static_cast<std::size_t>(n) * n, 0.0), next(u.size(), 0.0);
  auto at = [n](int i, int j) { return static_cast<std::size_t>(i) * n + j; };
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double x = i * h - 0.5, y = j * h - 0.5;
      if (x * x + y * y < 0.04) u[at(i, j)] = 100.0;
    }
  for (int s = 0; s < p.steps; ++s) {
    for (int i = 1; i < n - 1; ++i)
      for (int j = 1; j < n - 1; ++j)
        next[at(i, j)] = u[at(i, j)] + r * (u[at(i + 1, j)] + u[at(i - 1, j)] + u[at(i, j + 1)] +
                                            u[at(i, j - 1)] - 4 * u[at(i, j)]);
    std::swap(u, next);
  }
  double total = 0, peak = 0;
  for (double v : u) {
    total += v;
    peak = std::max(peak, v);
  }
  quiver::Value::Map result;
  result["temperature"] = quiver::Array::from(u, {static_cast<std::uint64_t>(n),
                                                   static_cast<std::uint64_t>(n)});
  result["peak"] = peak;
  result["mean"] = total / static_cast<double>(u.size());
  result["time"] = dt * p.steps;
  return quiver::Value(std::move(result));
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 160;
  int steps = argc > 2 ? std::atoi(argv[2]) : 2500;
  const std::vector<double> alphas{0.5, 1.0, 1.5, 2.0, 2.5, 3.0};

  try {
    auto cache = quiver::open();
    std::printf("quiver %s demo: heat diffusion, %dx%d grid, %d steps, %zu runs\n",
                quiver::kVersion, n, n, steps, alphas.size());
    double computed = 0, served = 0, saved = 0;
    int hits = 0;
    for (double alpha : alphas) {
      quiver::Call call("demo.heat2d", "1");
      call.arg("alpha", alpha).arg("n", n).arg("steps", steps);
      auto memo = cache->memoize(call, [&] { return solve({alpha, n, steps}); });
      const auto& res = memo.value;
      if (memo.hit) {
        ++hits;
        served += memo.seconds;
        // The entry remembers how long the original computation took.
        if (auto entry = cache->load(memo.digest)) saved += entry->meta.wall_time - memo.seconds;
      } else {
        computed += memo.seconds;
      }
      std::printf("  alpha=%.1f  %-4s %8.3f s  peak=%8.4f  mean=%8.5f  digest %s\n", alpha,
                  memo.hit ? "hit" : "miss", memo.seconds, res["peak"].as_double(),
                  res["mean"].as_double(), cache->shrink(memo.digest).c_str());
    }
    std::printf("%d of %zu runs served from the cache; computed %.2f s, loaded %.2f s",
                hits, alphas.size(), computed, served);
    if (hits) std::printf(", saved %.2f s", saved);
    std::printf("\n");
  } catch (const quiver::Error& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 1;
  }
  return 0;
}
