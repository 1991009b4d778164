// The derived index of an HDF5 entry store (internal header): what query(), ls and stats read
// instead of opening every entry file. Each writing process appends one line per save to a log
// of its own, <root>/index/<host>.<pid>.<random>.log, so no two processes share a file and no
// locks are needed on NFS or Lustre; a rebuild scans the entry files into a snapshot. The
// entry files stay the only copy of everything: the index can always be rebuilt from them.
// Format: docs/hdf5-layout.md.
#pragma once

#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <quiver/store/cache.hpp>
#include <quiver/store/index_fs.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace quiver {

/// One index line (with its newline) describing s.
std::string format_index_line(const EntrySummary& s);
/// The summary of one index line (without its newline); nullopt when malformed.
std::optional<EntrySummary> parse_index_line(std::string_view line);

class EntryIndex {
 public:
  /// An index kept in directory dir (created on first write).
  explicit EntryIndex(std::filesystem::path dir);

  /// Appends s to this process's log. When a rebuild moved the log away meanwhile, opens a
  /// fresh log and appends s again. Thread-safe.
  void append(const EntrySummary& s);

  /// Calls sink with the newest summary of each digest in the logs and snapshots (only those
  /// of function, when given), in file order, until sink returns false.
  void scan(const std::function<bool(const EntrySummary&)>& sink,
            std::optional<std::string_view> function = std::nullopt) const;

  /// A rebuild in progress: the old logs are set aside, summaries go to a new snapshot.
  /// Concurrent rebuilds lose nothing: each deletes only the logs it set aside and the
  /// snapshots that existed when it began.
  class Rebuild {
   public:
    Rebuild(const Rebuild&) = delete;
    Rebuild& operator=(const Rebuild&) = delete;
    /// Removes the unfinished snapshot unless commit() ran.
    ~Rebuild();
    /// Adds one summary to the snapshot.
    void add(const EntrySummary& s);
    /// Renames the snapshot into place, then deletes the logs set aside and the snapshots
    /// that existed when the rebuild began.
    void commit();

   private:
    friend class EntryIndex;
    Rebuild(std::filesystem::path dir, std::string name, std::vector<std::string> superseded);
    void flush();

    std::filesystem::path dir_;
    std::string name_, tmp_path_, buffer_;
    std::vector<std::string> superseded_;  // files the committed snapshot replaces
    Fd fd_;
    bool committed_ = false;
  };

  /// Starts a rebuild: renames every log to *.old first (so that lines appended from now on
  /// go to fresh logs), then opens a new snapshot. Queries read the old logs until commit().
  /// Scan the entry files only after this returns.
  Rebuild begin_rebuild();

 private:
  void open_log();  // with mutex_ held

  std::filesystem::path dir_;
  std::mutex mutex_;
  Fd log_;
  std::string log_path_;
  long log_pid_ = 0;
};

}  // namespace quiver
