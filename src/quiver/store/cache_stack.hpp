// CacheStack: layers tried in order. Saves go to layer 0 (and to every write-through layer);
// loads read through the layers and copy a hit into layer 0; contains is true when any layer
// has the entry; evict reaches every writable layer; query merges the layers without
// duplicates.
#pragma once

#include <memory>
#include <quiver/store/cache.hpp>
#include <vector>

namespace quiver {

class CacheStack : public Cache {
 public:
  /// Takes the layers, first (fastest) first; throws InvalidArgument when empty.
  explicit CacheStack(std::vector<std::unique_ptr<Cache>> layers);
  /// As above; saves also go to each deeper layer i whose write_through[i] is true (a job's
  /// node-local scratch in front of the cluster store keeps its results in both). Throws
  /// InvalidArgument when write_through has another length than layers.
  CacheStack(std::vector<std::unique_ptr<Cache>> layers, std::vector<bool> write_through);

  // The convenience overloads of Cache stay visible beside the overrides.
  using Cache::query;
  using Cache::save;

  /// Saves into layer 0, then into each write-through layer (a failure there is raised).
  void save(const Entry& entry) override;
  void save_many(std::span<const Entry> entries) override;
  std::optional<Entry> load(const Digest& digest) override;
  std::optional<Value> load_value(const Digest& digest) override;
  std::optional<Value> load_value_into(const Digest& digest,
                                       const ArrayDestinations& into) override;
  std::optional<Entry> load_into(const Digest& digest, const ArrayDestinations& into) override;
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
  /// The entry of the first layer from `from` on holding digest (promoted into layer 0), its
  /// arrays placed in into's memory when into is set.
  std::optional<Entry> load_entry(const Digest& digest, const ArrayDestinations* into,
                                  std::size_t from);
  /// The result from the layers below layer 0 (promoted into it), placed as by load_entry.
  std::optional<Value> load_value_below(const Digest& digest, const ArrayDestinations* into);

  std::vector<std::unique_ptr<Cache>> layers_;
  std::vector<bool> write_through_;
};

}  // namespace quiver
