#include <quiver/core/errors.hpp>
#include <quiver/core/redact.hpp>
#include <quiver/core/version.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/prefix.hpp>

namespace quiver {

namespace {
constexpr std::string_view kMemoryWhere = "memory cache";

EntrySummary summary_of(const Entry& e) {
  auto s = EntrySummary::of(e);
  s.bytes = e.result.payload_bytes();
  return s;
}
}  // namespace

void MemoryCache::save(const Entry& entry) {
  if (entry.call.digest() != entry.digest)
    throw InvalidArgument("digest " + entry.digest.hex() + " does not match the call",
                          std::string(kMemoryWhere));
  Entry own = entry;
  own.result.own_borrowed();  // kept past the caller's memory
  std::lock_guard lock(mutex_);
  entries_.insert_or_assign(entry.digest, std::move(own));
}

std::optional<Entry> MemoryCache::load(const Digest& digest) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(digest);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::optional<Value> MemoryCache::load_value(const Digest& digest) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(digest);
  if (it == entries_.end()) return std::nullopt;
  return it->second.result;
}

bool MemoryCache::contains(const Digest& digest) {
  std::lock_guard lock(mutex_);
  return entries_.contains(digest);
}

Digest MemoryCache::expand(std::string_view prefix) {
  check_prefix(prefix, kMemoryWhere);
  std::vector<Digest> candidates;
  {
    std::lock_guard lock(mutex_);
    // Digests order like their hex, so the matches are one run starting at prefix000...
    auto first =
        Digest::from_hex(std::string(prefix) + std::string(kDigestHexLength - prefix.size(), '0'));
    for (auto it = entries_.lower_bound(first);
         it != entries_.end() && it->first.hex().starts_with(prefix); ++it)
      candidates.push_back(it->first);
  }
  return expand_among(prefix, candidates, kMemoryWhere);
}

std::string MemoryCache::shrink(const Digest& digest) {
  std::vector<Digest> candidates;
  {
    std::lock_guard lock(mutex_);
    candidates.reserve(entries_.size());
    for (const auto& [d, e] : entries_) candidates.push_back(d);
  }
  return shrink_among(digest, candidates);
}

void MemoryCache::query(const Query& q, const QuerySink& sink) {
  QueryMatcher matcher(q);
  if (matcher.limit() == 0u) return;
  // Matches are collected under the lock and delivered outside it, so that a sink may call
  // back into this cache (gc evicts while it queries).
  std::vector<EntrySummary> matches;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [d, e] : entries_) {
      auto s = summary_of(e);
      if (!matcher.matches(s)) continue;
      matches.push_back(std::move(s));
      if (matcher.limit() && matches.size() >= *matcher.limit()) break;
    }
  }
  for (const auto& s : matches)
    if (!sink(s)) return;
}

bool MemoryCache::evict(const Digest& digest) {
  std::lock_guard lock(mutex_);
  return entries_.erase(digest) > 0;
}

nlohmann::json MemoryCache::config() const {
  return {{"type", "memory"}};
}

nlohmann::json MemoryCache::info() {
  std::uint64_t count = 0, bytes = 0;
  {
    std::lock_guard lock(mutex_);
    count = entries_.size();
    for (const auto& [d, e] : entries_) bytes += e.result.payload_bytes();
  }
  return {{"type", "memory"},         {"config", redact(config())},
          {"read_only", read_only()}, {"entries", count},
          {"bytes", bytes},           {"quiver_version", kVersion}};
}

}  // namespace quiver
