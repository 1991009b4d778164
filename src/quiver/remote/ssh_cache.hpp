// SshCache: a cache served by `quiver serve --stdio` on another machine, reached over one
// persistent ssh process (or, with Transport::subprocess, a local child process). Thread-
// safe and pipelined: calls from many threads are in flight together on the one stream, and
// contains_async() lets one thread keep many in flight. The stream to the process is two
// Unix socket pairs (its stdin and its stdout).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <future>
#include <memory>
#include <quiver/store/cache.hpp>
#include <string>
#include <vector>

namespace quiver {

enum class Transport { ssh, subprocess };

struct SshCacheOptions {
  Transport transport = Transport::ssh;
  std::string host;               ///< ssh destination (host, user@host or an ssh_config alias)
  std::string cache_name;         ///< served cache (--cache); empty: the remote's default
  std::string config;             ///< remote config file (--config); empty: the remote's search
  std::string quiver = "quiver";  ///< the remote executable
  std::string ssh = "ssh";        ///< the ssh program
  std::vector<std::string> ssh_options;     ///< extra ssh arguments, before the host
  std::vector<std::string> setup_commands;  ///< shell commands run before the server
  std::string workdir;                      ///< remote directory to cd into first
  bool login_shell = false;                 ///< run the command chain under `bash -lc`
  bool remote_read_only = false;            ///< start the server with --read-only
  std::vector<std::string> env;             ///< extra "K=V" for the spawned process
  /// This cache as its config names it (file and table); a subprocess server gets it in
  /// kSubprocessChain, so that a server reading the same table again refuses to start itself.
  std::string started_by;
  std::chrono::milliseconds connect_timeout{30000};  ///< spawn to greeting and hello
  std::chrono::milliseconds call_timeout{300000};    ///< each call, request to reply
};

/// How a RemoteConnectionError ends: what a program using the library does about it.
inline constexpr std::string_view kReconnectHint = "call reconnect() to open a new connection";

/// The environment variable listing, one per line, the subprocess caches (file and table)
/// whose servers are this process or its ancestors.
inline constexpr const char* kSubprocessChain = "QUIVER_SUBPROCESS_CHAIN";
/// Whether the subprocess cache named `started_by` (SshCacheOptions::started_by) started
/// this process or one of its ancestors: opening it here would start the same server again.
bool in_subprocess_chain(std::string_view started_by);

/// The argv that starts the server for options (ssh ... host -- 'cd ... && exec quiver
/// serve --stdio ...', or the local command for Transport::subprocess).
std::vector<std::string> remote_command(const SshCacheOptions& options);

/// The executable a subprocess cache runs for configured: configured itself unless it is
/// the default "quiver" and no quiver is on PATH; then the running program when it is
/// quiver, else the quiver installed beside libquiver (<libdir>/../bin/quiver).
std::string local_quiver_executable(const std::string& configured);

class SshCache : public Cache {
 public:
  /// Does not connect: the process is spawned on first use.
  explicit SshCache(SshCacheOptions options);
  /// Closes: stdin closed, wait, TERM, KILL, reap; threads joined.
  ~SshCache() override;

  // The convenience overloads of Cache stay visible beside the overrides.
  using Cache::query;
  using Cache::save;

  void save(const Entry& entry) override;
  std::optional<Entry> load(const Digest& digest) override;
  std::optional<Value> load_value(const Digest& digest) override;
  /// load_value whose fitting arrays are received straight into into's memory (no copy).
  /// Should call_timeout pass while such a reply is still arriving, the connection is
  /// closed (the rest of it would go into memory the call gives back): TimeoutError, and
  /// the other calls in flight fail with RemoteConnectionError until reconnect().
  std::optional<Value> load_value_into(const Digest& digest,
                                       const ArrayDestinations& into) override;
  /// load() received into into's memory as load_value_into is.
  std::optional<Entry> load_into(const Digest& digest, const ArrayDestinations& into) override;
  bool contains(const Digest& digest) override;
  Digest expand(std::string_view prefix) override;
  std::string shrink(const Digest& digest) override;
  void query(const Query& q, const QuerySink& sink) override;
  bool evict(const Digest& digest) override;
  nlohmann::json config() const override;
  /// The remote's view (fetched once per connection): its cache config (redacted), name,
  /// read_only, versions, cwd, hostname, pid, executable.
  nlohmann::json info() override;
  /// The remote's read-only flag (connects to learn it); true also with remote_read_only.
  bool read_only() const override;
  std::vector<bool> contains_many(std::span<const Digest> digests) override;

  /// contains() without waiting: the request is queued (sent at once when the stream is
  /// idle, else with the writer thread's next batch) and the future receives the answer, or
  /// the call's error: RemoteConnectionError when the connection cannot be opened or dies,
  /// TimeoutError after call_timeout. One thread may keep hundreds of these in flight on
  /// the one stream; replies are matched by request id, in any order. A future dropped
  /// unread is harmless (its reply is discarded).
  std::future<bool> contains_async(const Digest& digest);
  std::vector<std::optional<Entry>> load_many(std::span<const Digest> digests) override;
  void save_many(std::span<const Entry> entries) override;

  /// Opens the connection now (spawn, greeting, hello) unless it is open; throws as a call
  /// would. Calls connect by themselves: this only moves the cost to a chosen moment.
  void connect();
  /// One ping round trip; returns its duration in seconds.
  double ping();
  /// Closes the current connection (if any) and opens a new one. Never done implicitly.
  void reconnect();
  /// Closes the connection; the next call reconnects only through reconnect().
  void close();

  struct Stats {
    std::uint64_t connects = 0;       ///< processes spawned
    std::uint64_t requests = 0;       ///< requests sent (round trips), hello included
    std::uint64_t max_in_flight = 0;  ///< most requests awaiting replies at once
  };
  Stats stats() const;
  /// The pid of the spawned process (ssh or the local server), -1 when not connected.
  pid_t pid() const;
  /// The last lines (at most 50) the process wrote to stderr.
  std::vector<std::string> stderr_tail() const;
  const SshCacheOptions& options() const noexcept { return options_; }

 private:
  struct Connection;
  std::shared_ptr<Connection> connection() const;
  template <class Reply, class Request>
  Reply call(Request request, const ArrayDestinations* into = nullptr) const;
  template <class Reply, class Request, class F>
  auto call_async(Request request, F result)
      -> std::future<decltype(result(std::declval<Reply>()))>;

  SshCacheOptions options_;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace quiver
