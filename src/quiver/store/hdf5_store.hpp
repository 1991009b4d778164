// Hdf5Store: the embedded default. One HDF5 file per entry at <root>/<2 hex>/<digest>.h5,
// written to a temporary file in the same directory, flushed, fsynced and renamed into
// place. Several processes on several hosts may share one root without locks.
// Layout: docs/hdf5-layout.md.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <quiver/store/cache.hpp>

namespace quiver {

struct Hdf5StoreOptions {
  std::filesystem::path root;
  bool fsync = true;                     ///< fsync entry and directory before a save returns
  int gzip = 0;                          ///< 0 = off, 1..9 = deflate level for array datasets
  bool checksum = true;                  ///< fletcher32 on datasets (catches corrupt data)
  std::uint64_t chunk_bytes = 4u << 20;  ///< target chunk size of array datasets
  bool create_root = true;               ///< false: a missing root is a StoreError (read-only)
};

/// Called during long operations with (done, total); total 0 when unknown.
using Progress = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct FsckOptions {
  bool repair = false;                    ///< quarantine bad files and remove temp leftovers
  std::chrono::seconds temp_grace{3600};  ///< temp files younger than this may be live writes
};

struct FsckReport {
  std::uint64_t entries = 0;  ///< files checked
  std::uint64_t ok = 0;
  std::vector<std::string> corrupt;         ///< paths of corrupt or foreign files
  std::vector<std::string> temp_leftovers;  ///< paths of stale temporary files
  std::uint64_t quarantined = 0;            ///< moved to <root>/quarantine (repair)
  std::uint64_t removed_temps = 0;          ///< deleted (repair)
  bool index_rebuilt = false;
  bool clean() const noexcept { return corrupt.empty() && temp_leftovers.empty(); }
};

class Hdf5Store : public Cache {
 public:
  using Cache::query;
  using Cache::save;

  /// Opens (creating when missing) the store at options.root; throws StoreError when the
  /// root cannot be created.
  explicit Hdf5Store(Hdf5StoreOptions options);
  ~Hdf5Store() override;

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
  bool evict(const Digest& digest) override;
  nlohmann::json config() const override;
  nlohmann::json info() override;
  bool read_only() const override { return false; }

  const Hdf5StoreOptions& options() const noexcept;
  /// Where the entry for digest lives (whether or not it exists).
  std::filesystem::path entry_path(const Digest& digest) const;
  /// Checks every entry file; with repair, quarantines bad ones, removes stale temp files
  /// and rebuilds the index from the entries.
  FsckReport fsck(const FsckOptions& options, const Progress& progress = {});
  /// Rebuilds the derived index from the entry files.
  void rebuild_index(const Progress& progress = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes entry as a standalone HDF5 file at path (same layout as a store entry), for
/// `quiver get --output`.
void write_entry_file(const std::filesystem::path& path, const Entry& entry);
/// Reads an entry file written by write_entry_file or a store; throws CorruptEntry.
Entry read_entry_file(const std::filesystem::path& path);
/// Reads a plain HDF5 file (any groups/datasets) as a Value tree, for `put --result-file`.
Value read_value_file(const std::filesystem::path& path);

}  // namespace quiver
