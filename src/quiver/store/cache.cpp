#include <quiver/store/cache.hpp>

namespace quiver {

EntrySummary EntrySummary::of(const Entry& e) {
  EntrySummary s;
  s.digest = e.digest;
  s.function = e.call.function;
  s.version = e.call.version;
  s.meta = e.meta;
  for (const auto& [name, value] : e.call.args) s.arg_digests.emplace(name, value_digest(value));
  return s;
}

QueryMatcher::QueryMatcher(const Query& q)
    : function_(q.function),
      after_(q.created_after),
      before_(q.created_before),
      host_(q.host),
      limit_(q.limit) {
  for (const auto& [name, value] : q.args) args_.emplace_back(name, value_digest(value));
}

bool QueryMatcher::matches(const EntrySummary& s) const {
  if (function_ && s.function != *function_) return false;
  if (host_ && s.meta.host != *host_) return false;
  if (after_ && s.meta.created < *after_) return false;
  if (before_ && s.meta.created >= *before_) return false;
  for (const auto& [name, digest] : args_) {
    auto it = s.arg_digests.find(name);
    if (it == s.arg_digests.end() || it->second != digest) return false;
  }
  return true;
}

std::optional<Value> Cache::load_value_into(const Digest& digest, const ArrayDestinations& into) {
  auto value = load_value(digest);
  if (value) place_arrays(*value, into);
  return value;
}

std::optional<Entry> Cache::load_into(const Digest& digest, const ArrayDestinations& into) {
  auto entry = load(digest);
  if (entry) place_arrays(entry->result, into);
  return entry;
}

std::vector<bool> Cache::contains_many(std::span<const Digest> digests) {
  std::vector<bool> out;
  out.reserve(digests.size());
  for (const auto& d : digests) out.push_back(contains(d));
  return out;
}

std::vector<std::optional<Entry>> Cache::load_many(std::span<const Digest> digests) {
  std::vector<std::optional<Entry>> out;
  out.reserve(digests.size());
  for (const auto& d : digests) out.push_back(load(d));
  return out;
}

void Cache::save_many(std::span<const Entry> entries) {
  for (const auto& e : entries) save(e);
}

Digest Cache::save(const Call& call, const Value& result, double wall_time_seconds) {
  Entry e;
  e.digest = call.digest();
  e.call = call;
  e.result = result;
  e.meta = Metadata::now(wall_time_seconds);
  save(e);
  return e.digest;
}

std::vector<EntrySummary> Cache::query(const Query& q) {
  std::vector<EntrySummary> out;
  query(q, [&](const EntrySummary& s) {
    out.push_back(s);
    return true;
  });
  return out;
}

}  // namespace quiver
