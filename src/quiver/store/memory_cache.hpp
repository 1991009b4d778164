// MemoryCache: entries kept in this process's memory (tests, and a fast layer for one run).
#pragma once

#include <map>
#include <mutex>
#include <quiver/store/cache.hpp>

namespace quiver {

class MemoryCache : public Cache {
 public:
  MemoryCache() = default;

  // The convenience overloads of Cache stay visible beside the overrides.
  using Cache::query;
  using Cache::save;

  void save(const Entry& entry) override;
  std::optional<Entry> load(const Digest& digest) override;
  std::optional<Value> load_value(const Digest& digest) override;
  bool contains(const Digest& digest) override;
  Digest expand(std::string_view prefix) override;
  std::string shrink(const Digest& digest) override;
  void query(const Query& q, const QuerySink& sink) override;
  bool evict(const Digest& digest) override;
  nlohmann::json config() const override;
  nlohmann::json info() override;
  bool read_only() const override { return false; }

 private:
  std::mutex mutex_;
  std::map<Digest, Entry> entries_;
};

}  // namespace quiver
