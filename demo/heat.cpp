// quiver demo: an MPI program whose heat-diffusion runs are memoized through one cache.
//
// Each run solves u_t = alpha * (u_xx + u_yy) on the unit square with an explicit
// finite-difference scheme, a hot disc in the middle and cold walls. Every rank takes its
// share of a sweep over diffusivities and memoizes its own runs (independent use); then all
// ranks solve one finer grid together, split by rows, through memoize_collective. Rank 0
// holds the only connection to the cache; a second run is served from it.
//
//   mpirun -np 4 quiver_demo [n] [steps]
#include <mpi.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <quiver/mpi/cache.hpp>
#include <quiver/quiver.hpp>
#include <string>
#include <vector>

namespace {

struct Params {
  double alpha;
  int n;      // grid points per side
  int steps;  // time steps
};

quiver::Call call_of(const Params& p) {
  quiver::Call call("demo.heat2d", "1");
  call.arg("alpha", p.alpha).arg("n", p.n).arg("steps", p.steps);
  return call;
}

constexpr double kMaxAlpha = 4.0;

// The time step: one for every diffusivity up to kMaxAlpha (stable: dt <= h^2 / (4 alpha)).
double step_of(const Params& p) {
  const double h = 1.0 / (p.n - 1);
  return 0.2 * h * h / kMaxAlpha;
}

// Rows [lo, hi) of the initial field: a hot disc in the middle, 0 elsewhere.
std::vector<double> initial_rows(int n, int lo, int hi) {
  const double h = 1.0 / (n - 1);
  std::vector<double> u(static_cast<std::size_t>(hi - lo) * n, 0.0);
  for (int i = lo; i < hi; ++i)
    for (int j = 0; j < n; ++j) {
      const double x = i * h - 0.5, y = j * h - 0.5;
      if (x * x + y * y < 0.04) u[static_cast<std::size_t>(i - lo) * n + j] = 100.0;
    }
  return u;
}

// One explicit step on rows [first, last) of u, whose neighbouring rows are halos or walls.
void advance(const std::vector<double>& u, std::vector<double>& next, int n, double r, int first,
             int last) {
  auto at = [n](int i, int j) { return static_cast<std::size_t>(i) * n + j; };
  for (int i = first; i < last; ++i)
    for (int j = 1; j < n - 1; ++j)
      next[at(i, j)] = u[at(i, j)] + r * (u[at(i + 1, j)] + u[at(i - 1, j)] + u[at(i, j + 1)] +
                                          u[at(i, j - 1)] - 4 * u[at(i, j)]);
}

quiver::Value result_of(const std::vector<double>& u, const Params& p) {
  double total = 0, peak = 0;
  for (double v : u) {
    total += v;
    peak = std::max(peak, v);
  }
  quiver::Value::Map result;
  const auto n = static_cast<std::uint64_t>(p.n);
  result["temperature"] = quiver::Array::from(u, {n, n});
  result["peak"] = peak;
  result["mean"] = total / static_cast<double>(u.size());
  result["time"] = step_of(p) * p.steps;
  return quiver::Value(std::move(result));
}

// One rank solves the whole grid.
quiver::Value solve(const Params& p) {
  const double r = p.alpha * step_of(p) * (p.n - 1) * (p.n - 1);
  auto u = initial_rows(p.n, 0, p.n);
  auto next = u;
  for (int s = 0; s < p.steps; ++s) {
    advance(u, next, p.n, r, 1, p.n - 1);
    std::swap(u, next);
  }
  return result_of(u, p);
}

// All ranks of comm solve one grid, each a band of rows with one halo row on either side,
// exchanged every step; the field is gathered on every rank at the end. Same numbers as
// solve().
quiver::Value solve_together(const Params& p, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int n = p.n;
  std::vector<int> counts(size), displs(size);
  for (int k = 0; k < size; ++k) {
    const int lo = n * k / size, hi = n * (k + 1) / size;
    counts[k] = (hi - lo) * n;
    displs[k] = lo * n;
  }
  const int lo = n * rank / size, hi = n * (rank + 1) / size, own = hi - lo;
  const double r = p.alpha * step_of(p) * (n - 1) * (n - 1);
  // Local rows: halo, own rows, halo.
  auto u = initial_rows(n, std::max(lo - 1, 0), std::min(hi + 1, n));
  if (lo == 0) u.insert(u.begin(), n, 0.0);
  if (hi == n) u.insert(u.end(), n, 0.0);
  auto next = u;
  const int up = rank > 0 ? rank - 1 : MPI_PROC_NULL,
            down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
  // Global rows 0 and n-1 are walls: not updated.
  const int first = lo == 0 ? 2 : 1, last = hi == n ? own : own + 1;
  auto row = [&](std::vector<double>& v, int i) {
    return v.data() + static_cast<std::size_t>(i) * n;
  };
  for (int s = 0; s < p.steps; ++s) {
    MPI_Sendrecv(row(u, 1), n, MPI_DOUBLE, up, 0, row(u, own + 1), n, MPI_DOUBLE, down, 0, comm,
                 MPI_STATUS_IGNORE);
    MPI_Sendrecv(row(u, own), n, MPI_DOUBLE, down, 1, row(u, 0), n, MPI_DOUBLE, up, 1, comm,
                 MPI_STATUS_IGNORE);
    advance(u, next, n, r, first, last);
    std::swap(u, next);
  }
  std::vector<double> field(static_cast<std::size_t>(n) * n);
  MPI_Allgatherv(row(u, 1), own * n, MPI_DOUBLE, field.data(), counts.data(), displs.data(),
                 MPI_DOUBLE, comm);
  return result_of(field, p);
}

// Rank 0 prints every rank's text, in rank order.
void print_in_order(const std::string& text, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int len = static_cast<int>(text.size());
  std::vector<int> lens(size), displs(size);
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm);
  std::string all;
  if (rank == 0) {
    for (int k = 0, at = 0; k < size; at += lens[k++]) displs[k] = at;
    all.resize(static_cast<std::size_t>(displs[size - 1] + lens[size - 1]));
  }
  MPI_Gatherv(text.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0,
              comm);
  if (rank == 0) std::fputs(all.c_str(), stdout);
}

struct Tally {
  int hits = 0, runs = 0;
  double computed = 0, loaded = 0;
};

std::string line_of(int rank, const Params& p, const quiver::Memo& m, const std::string& digest,
                    const char* who) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "  rank %d  alpha=%.1f n=%-3d %-4s %7.3f s  peak=%8.4f  mean=%8.5f  %s %s\n", rank,
                p.alpha, p.n, m.hit ? "hit" : "miss", m.seconds, m.value["peak"].as_double(),
                m.value["mean"].as_double(), digest.c_str(), who);
  return buf;
}

void sweep(quiver::mpi::Cache& cache, int n, int steps, const std::vector<double>& alphas) {
  const int rank = cache.rank(), size = cache.size();
  if (rank == 0) {
    const auto config = cache.config();
    std::printf("quiver %s demo: heat diffusion, %d ranks, %dx%d grid, %d steps; cache: %s\n",
                quiver::kVersion, size, n, n, steps,
                config.is_object() ? config.value("type", "?").c_str() : "stack");
  }

  // Independent use: each rank memoizes its share of the sweep.
  Tally mine;
  std::string lines;
  for (std::size_t k = static_cast<std::size_t>(rank); k < alphas.size();
       k += static_cast<std::size_t>(size)) {
    const Params p{alphas[k], n, steps};
    auto memo = cache.memoize(call_of(p), [&] { return solve(p); });
    ++mine.runs;
    (memo.hit ? mine.loaded : mine.computed) += memo.seconds;
    mine.hits += memo.hit ? 1 : 0;
    lines += line_of(rank, p, memo, cache.shrink(memo.digest), "");
  }
  print_in_order(lines, MPI_COMM_WORLD);

  // Collective use: all ranks solve one finer grid together.
  const Params fine{1.0, 2 * n, steps};
  auto memo =
      cache.memoize_collective(call_of(fine), [&] { return solve_together(fine, MPI_COMM_WORLD); });
  const auto digest = cache.shrink(memo.digest);
  if (rank == 0)
    std::fputs(line_of(rank, fine, memo, digest, "(all ranks together)").c_str(), stdout);

  Tally total;
  MPI_Reduce(&mine.hits, &total.hits, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&mine.runs, &total.runs, 1, MPI_INT, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&mine.computed, &total.computed, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&mine.loaded, &total.loaded, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    const auto stats = cache.stats();
    std::printf(
        "%d of %d sweep runs and %s parallel run served from the cache; computed %.2f s, "
        "loaded %.2f s\n",
        total.hits, total.runs, memo.hit ? "the" : "not the",
        total.computed + (memo.hit ? 0 : memo.seconds),
        total.loaded + (memo.hit ? memo.seconds : 0));
    std::printf(
        "rank 0 served %llu requests of the other ranks in %llu batched rounds, over its one "
        "connection\n",
        static_cast<unsigned long long>(stats.requests),
        static_cast<unsigned long long>(stats.rounds));
  }
}

constexpr char kUsage[] =
    "usage: mpirun -np N quiver_demo [n] [steps]\n"
    "  n      grid points per side of the sweep's runs (default 160; 4 to 4096)\n"
    "  steps  time steps of each run (default 2500; 1 to 10000000)\n"
    "Memoizes a sweep of heat-diffusion runs through the default quiver cache (quiver.toml,\n"
    "or the embedded default); run it twice to see the second pass served from the cache.\n";

/// The integer text names, when it is all digits and within [low, high].
std::optional<int> integer_in(const char* text, int low, int high) {
  int v = 0;
  const auto* end = text + std::strlen(text);
  const auto [at, ec] = std::from_chars(text, end, v);
  if (ec != std::errc() || at != end || v < low || v > high) return std::nullopt;
  return v;
}

int run(int argc, char** argv) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // Every rank sees the same arguments, so every rank takes the same branch here.
  const bool help =
      argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0);
  const auto n = argc > 1 ? integer_in(argv[1], 4, 4096) : std::optional<int>(160);
  const auto steps = argc > 2 ? integer_in(argv[2], 1, 10'000'000) : std::optional<int>(2500);
  if (help || argc > 3 || !n || !steps) {
    if (rank == 0) {
      if (!help) std::fprintf(stderr, "quiver_demo: bad arguments\n");
      std::fputs(kUsage, help ? stdout : stderr);
    }
    return help ? 0 : 2;
  }
  const std::vector<double> alphas{0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, kMaxAlpha};

  // Collective: rank 0 opens the default cache (quiver.toml, or the embedded default).
  quiver::mpi::Cache cache(MPI_COMM_WORLD);
  try {
    sweep(cache, *n, *steps, alphas);
  } catch (const std::exception& e) {
    // The other ranks may be inside a collective call: end the whole job.
    std::fprintf(stderr, "demo (rank %d): %s\n", cache.rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int status = 0;
  try {
    status = run(argc, argv);
  } catch (const quiver::Error& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
