#include <algorithm>
#include <quiver/store/maintenance.hpp>

namespace quiver {

CacheStats stats(Cache& cache, const Progress& progress) {
  CacheStats out;
  cache.query(Query{}, [&](const EntrySummary& s) {
    ++out.entries;
    out.bytes += s.bytes;
    auto& f = out.functions[s.function];
    ++f.entries;
    f.bytes += s.bytes;
    if (progress) progress(out.entries, 0);
    return true;
  });
  return out;
}

namespace {
struct Candidate {
  Digest digest;
  Clock::time_point created;
  std::uint64_t bytes;
};
}  // namespace

GcReport gc(Cache& cache, const GcOptions& options, const Progress& progress) {
  GcReport report;
  std::vector<Candidate> all;
  std::uint64_t total = 0;
  cache.query(Query{}, [&](const EntrySummary& s) {
    all.push_back({s.digest, s.meta.created, s.bytes});
    total += s.bytes;
    return true;
  });
  report.examined = all.size();
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    return a.created != b.created ? a.created < b.created : a.digest < b.digest;
  });

  std::optional<Clock::time_point> cutoff;
  if (options.older_than) cutoff = Clock::now() - *options.older_than;
  std::vector<const Candidate*> victims;
  std::uint64_t remaining = total;
  for (const auto& c : all) {
    const bool too_old = cutoff && c.created < *cutoff;
    const bool over_budget = options.max_bytes && remaining > *options.max_bytes;
    if (!too_old && !over_budget) break;  // oldest first: nothing later qualifies either
    victims.push_back(&c);
    remaining -= c.bytes;
  }

  report.bytes_remaining = total;
  for (std::size_t i = 0; i < victims.size(); ++i) {
    const auto& v = *victims[i];
    // An entry another process removed meanwhile is gone all the same, but not freed by us.
    const bool gone = options.dry_run || cache.evict(v.digest);
    report.bytes_remaining -= v.bytes;
    if (gone) {
      ++report.evicted;
      report.bytes_freed += v.bytes;
      report.victims.push_back(v.digest);
    }
    if (progress) progress(i + 1, victims.size());
  }
  return report;
}

}  // namespace quiver
