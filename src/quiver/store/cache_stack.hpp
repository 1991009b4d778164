// CacheStack: layers tried in order. Saves go to layer 0; loads read through the layers
// and copy a hit into layer 0; contains is true when any layer has the entry; evict
// reaches every writable layer; query merges the layers without duplicates.
#pragma once

#include <quiver/store/cache.hpp>

#include <memory>
#include <vector>

namespace quiver {

class CacheStack : public Cache {
 public:
  /// Takes the layers, first (fastest) first; throws InvalidArgument when empty.
  explicit CacheStack(std::vector<std::unique_ptr<Cache>> layers);

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
  /// True only when layer 0 is read-only.
  bool read_only() const override;
  std::vector<bool> contains_many(std::span<const Digest> digests) override;
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests) override;

  const std::vector<std::unique_ptr<Cache>>& layers() const noexcept { return layers_; }

 private:
  std::vector<std::unique_ptr<Cache>> layers_;
};

}  // namespace quiver
