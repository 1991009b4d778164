// A progress line on stderr for long operations (fsck, gc, stats), shown only when stderr is
// a terminal so that logs and pipes never receive it.
#pragma once

#include <chrono>
#include <quiver/store/hdf5_store.hpp>
#include <string>

namespace quiver::cli {

class ProgressDisplay {
 public:
  /// A display labelled label ("fsck"); inactive unless stderr is a terminal.
  explicit ProgressDisplay(std::string label);
  /// Erases the progress line.
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  /// The callback to hand to the operation; empty (no reporting) when inactive.
  Progress callback();

 private:
  void update(std::uint64_t done, std::uint64_t total);

  std::string label_;
  bool active_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace quiver::cli
