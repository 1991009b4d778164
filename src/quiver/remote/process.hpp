// Child processes with piped stdin/stdout/stderr, closed by RAII: close stdin, wait,
// SIGTERM, SIGKILL, reap. No zombies, no leaked descriptors.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <quiver/core/fd.hpp>
#include <string>
#include <vector>

namespace quiver {

/// How a process ended.
struct ExitStatus {
  int code = -1;   ///< exit code when it exited, else -1
  int signal = 0;  ///< terminating signal, else 0
  /// "exit status 255" or "killed by signal 9 (Killed)".
  std::string describe() const;
};

/// What connects a child's stdin and stdout to us: pipes, or one AF_UNIX stream socket
/// pair each (writes with MSG_NOSIGNAL need no SIGPIPE guard, and reads may block with a
/// receive timeout instead of a poll per read). stderr is always a pipe.
enum class Stdio { pipes, sockets };

class Process {
 public:
  /// Starts argv (argv[0] searched in PATH) with stdin, stdout and stderr connected to
  /// pipes (or stdin and stdout to socket pairs, see Stdio); env entries "K=V" are added to
  /// (or replace in) this process's environment. With own_group, the process leads a new
  /// process group, and once it has ended what is left of that group (background children
  /// that would hold the pipes open) is killed before it is reaped; never for a program that
  /// may prompt on the terminal (ssh). Throws RemoteConnectionError when it cannot be started.
  static Process spawn(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env = {}, bool own_group = false,
                       Stdio stdio = Stdio::pipes);

  Process() = default;
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  /// Stops the process as close() does.
  ~Process();

  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0 && !status_; }
  Fd& stdin_fd() noexcept { return in_; }
  Fd& stdout_fd() noexcept { return out_; }
  Fd& stderr_fd() noexcept { return err_; }

  /// The exit status when the process has ended (reaps it), else nullopt. Never blocks.
  std::optional<ExitStatus> poll();
  /// Waits up to timeout for the process to end; nullopt if it is still running.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  /// Closes stdin, waits grace for a clean exit, then SIGTERM, waits grace, then SIGKILL,
  /// and reaps. Returns how it ended. Idempotent.
  ExitStatus close(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  /// Sends sig to the process (no-op once reaped).
  void kill(int sig) noexcept;

 private:
  pid_t pid_ = -1;
  Fd in_, out_, err_;
  std::optional<ExitStatus> status_;
  bool own_group_ = false;
};

/// Quotes s for a POSIX shell (single quotes), leaving safe words unchanged.
std::string shell_quote(const std::string& s);
/// Joins argv into one shell command line, each word quoted.
std::string shell_join(const std::vector<std::string>& argv);

}  // namespace quiver
