// ReadOnlyCache: wraps a cache and refuses save/evict with Rejected (read_only = true).
#pragma once

#include <memory>
#include <quiver/store/cache.hpp>

namespace quiver {

class ReadOnlyCache : public Cache {
 public:
  explicit ReadOnlyCache(std::unique_ptr<Cache> inner);

  // The convenience overloads of Cache stay visible beside the overrides.
  using Cache::query;
  using Cache::save;

  /// Throws Rejected.
  void save(const Entry& entry) override;
  std::optional<Entry> load(const Digest& digest) override;
  std::optional<Value> load_value(const Digest& digest) override;
  std::optional<Value> load_value_into(const Digest& digest,
                                       const ArrayDestinations& into) override;
  std::optional<Entry> load_into(const Digest& digest, const ArrayDestinations& into) override;
  bool contains(const Digest& digest) override;
  Digest expand(std::string_view prefix) override;
  std::string shrink(const Digest& digest) override;
  void query(const Query& q, const QuerySink& sink) override;
  /// Throws Rejected.
  bool evict(const Digest& digest) override;
  nlohmann::json config() const override;
  nlohmann::json info() override;
  bool read_only() const override { return true; }
  std::vector<bool> contains_many(std::span<const Digest> digests) override;
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests) override;

  Cache& inner() noexcept { return *inner_; }

 private:
  std::unique_ptr<Cache> inner_;
};

}  // namespace quiver
