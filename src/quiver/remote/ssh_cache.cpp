#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/core/version.hpp>
#include <quiver/remote/process.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/wire/protocol.hpp>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace quiver {

namespace {

std::string closed_message() {
  return "connection closed; " + std::string(kReconnectHint);
}

constexpr std::size_t kStderrLines = 50;
constexpr auto kGrace = std::chrono::milliseconds(2000);
// Most queued small requests a caller sends itself (far below what forces a blocking flush).
constexpr std::size_t kDirectBatch = 32;
// Most digests of a contains_many that is still a small request and reply (its request, 32
// bytes a digest, stays one gathered frame: FrameWriter::kGatherFrame).
constexpr std::size_t kSmallContainsMany = 256;
using SteadyClock = std::chrono::steady_clock;

std::string label_of(const SshCacheOptions& o) {
  return o.transport == Transport::ssh ? "ssh " + o.host : "subprocess " + o.quiver;
}

std::string logger_name(const SshCacheOptions& o) {
  std::string h = o.transport == Transport::ssh ? o.host : "subprocess";
  for (char& c : h)
    if (c == '.' || c == '@') c = '_';
  return "quiver.remote.host." + h;
}

std::string seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

bool is_executable(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

bool small_contains_many(const wire::Message& m) {
  const auto* r = std::get_if<wire::ContainsManyRequest>(&m);
  return r && r->digests.size() <= kSmallContainsMany;
}

// Requests of a bounded, small encoding (one gathered frame): a caller may write them itself.
bool small_request(const wire::Message& m) {
  if (std::holds_alternative<wire::ContainsManyRequest>(m)) return small_contains_many(m);
  return !std::holds_alternative<wire::SaveRequest>(m) &&
         !std::holds_alternative<wire::SaveManyRequest>(m) &&
         !std::holds_alternative<wire::LoadManyRequest>(m) &&
         !std::holds_alternative<wire::QueryRequest>(m);
}

// Requests whose reply has a bounded, small encoding: a waiting caller may read it itself.
bool small_reply(const wire::Message& m) {
  return std::holds_alternative<wire::Hello>(m) || std::holds_alternative<wire::Ping>(m) ||
         std::holds_alternative<wire::ContainsRequest>(m) ||
         std::holds_alternative<wire::ExpandRequest>(m) ||
         std::holds_alternative<wire::ShrinkRequest>(m) ||
         std::holds_alternative<wire::EvictRequest>(m) ||
         std::holds_alternative<wire::SaveRequest>(m) ||
         std::holds_alternative<wire::SaveManyRequest>(m) || small_contains_many(m);
}

bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "";
  while (!rest.empty()) {
    auto colon = rest.find(':');
    auto dir = rest.substr(0, colon);
    if (!dir.empty() && is_executable(std::filesystem::path(dir) / name)) return true;
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
  }
  return false;
}

}  // namespace

std::string local_quiver_executable(const std::string& configured) {
  if (configured != "quiver" || on_path(configured)) return configured;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && self.filename() == "quiver") return self.string();
  Dl_info dl{};
  if (dladdr(reinterpret_cast<void*>(&local_quiver_executable), &dl) && dl.dli_fname) {
    auto lib = std::filesystem::weakly_canonical(dl.dli_fname, ec);
    if (!ec) {
      auto beside = lib.parent_path().parent_path() / "bin" / "quiver";
      if (is_executable(beside)) return beside.string();
    }
  }
  return configured;
}

bool in_subprocess_chain(std::string_view started_by) {
  const char* chain = std::getenv(kSubprocessChain);
  if (!chain || started_by.empty()) return false;
  std::string_view rest(chain);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    if (rest.substr(0, end) == started_by) return true;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return false;
}

std::vector<std::string> remote_command(const SshCacheOptions& o) {
  std::vector<std::string> server{
      o.transport == Transport::subprocess ? local_quiver_executable(o.quiver) : o.quiver, "serve",
      "--stdio"};
  if (!o.cache_name.empty()) server.insert(server.end(), {"--cache", o.cache_name});
  if (!o.config.empty()) server.insert(server.end(), {"--config", o.config});
  if (o.remote_read_only) server.push_back("--read-only");

  const bool chain = !o.workdir.empty() || !o.setup_commands.empty() || o.login_shell;
  std::string script;
  if (chain) {
    if (!o.workdir.empty()) script = "cd " + shell_quote(o.workdir) + " && ";
    for (const auto& c : o.setup_commands) script += c + " && ";
    script += "exec " + shell_join(server);
  }
  if (o.transport == Transport::subprocess) {
    if (!chain) return server;
    return {o.login_shell ? "bash" : "/bin/sh", o.login_shell ? "-lc" : "-c", script};
  }
  if (o.host.empty()) throw InvalidArgument("an ssh cache needs a host", "quiver::SshCache");
  std::vector<std::string> argv{o.ssh};
  argv.insert(argv.end(), o.ssh_options.begin(), o.ssh_options.end());
  argv.insert(argv.end(), {"-T", "--", o.host});
  if (!chain)
    argv.push_back(shell_join(server));
  else
    argv.push_back(o.login_shell ? "bash -lc " + shell_quote(script) : script);
  return argv;
}

// Counters and the stderr ring outlive connections: they belong to the SshCache.
struct SshCache::State {
  mutable std::mutex mutex;  // guards conn, closed
  std::shared_ptr<Connection> conn;
  bool closed = false;
  std::exception_ptr start_failure;  // why the last connect failed, until reconnect()
  std::atomic<std::uint64_t> connects{0}, requests{0}, max_in_flight{0};
  mutable std::mutex ring_mutex;
  std::deque<std::string> ring;
};

// One spawned process and the threads serving its stream.
//
// Writing: requests queue in the outbox; one thread at a time holds the write token
// (`writing`) and with it the FrameWriter, which gathers small frames so that a whole
// outbox leaves in one write. A caller whose small request finds no token holder and only
// a few small requests queued sends them itself, without waiting: the stream's fd is
// non-blocking, and what the pipe does not take at once stays gathered for the writer
// thread, so a full pipe never holds a caller past its call_timeout. Large requests and
// longer backlogs go to the writer thread.
//
// Reading: one thread at a time holds the read token (`reading`) and with it the
// FrameReader. While every reply still owed is small, a waiting caller takes the token
// itself (leader/follower): it reads, with its own deadline, until its reply comes, hands
// the others' replies to them, and on leaving wakes a waiting caller to lead next. While a
// large reply is owed (load, query, info, batches) the reader thread reads instead, without
// a deadline, so that a slow transfer never holds a caller past its call_timeout.
//
// Asynchronous calls (contains_async): nobody waits on their slot; its `done` completes the
// caller's future. The reader thread reads while any is owed and no caller reads, waiting
// at most until the earliest of their deadlines, and fails the overdue ones. An
// asynchronous request sent while others are in flight joins the writer thread's batch.
struct SshCache::Connection {
  /// Completes an asynchronous call: with its reply, or (reply null) with error.
  using Done = std::function<void(wire::Incoming* reply, std::exception_ptr error)>;
  struct Slot {
    std::deque<wire::Incoming> replies;
    std::condition_variable cv;
    bool waiting = false;   // its caller sleeps on cv (it may be woken to lead)
    Done done;              // set for an asynchronous call: nobody waits on cv
    std::string_view what;  // its request type, for errors
    // load_value_into: the caller's memory its reply's arrays are received into, and
    // whether the reader is writing there now (the caller may not return meanwhile).
    const ArrayDestinations* into = nullptr;
    bool filling = false;
  };
  enum class Reading { none, caller, thread, stopped };

  Connection(const SshCacheOptions& o, State& s)
      : options(o), state(s), label(label_of(o)), log(logger(logger_name(o))) {}

  const SshCacheOptions& options;
  State& state;
  std::string label;
  std::shared_ptr<spdlog::logger> log;

  std::mutex proc_mutex;  // Process is not thread-safe
  Process proc;
  // The read ends, owned here so that they stay open until the threads reading them end.
  Fd out_fd, err_fd;
  std::unique_ptr<wire::FrameReader> reader;
  std::unique_ptr<wire::FrameWriter> writer;
  std::thread reader_thread, writer_thread, stderr_thread;

  std::mutex mutex;  // guards everything below
  std::condition_variable writer_cv, stderr_cv, writer_done_cv, reader_cv;
  std::deque<std::pair<std::uint64_t, wire::Message>> outbox;
  std::size_t outbox_large = 0;  // requests in the outbox that are not small_request()
  std::unordered_map<std::uint64_t, std::shared_ptr<Slot>> pending;
  std::uint64_t next_id = 1;
  std::exception_ptr failure;
  bool writing = false;             // the write token; the writer thread keeps it once it has ended
  Reading reading = Reading::none;  // the read token
  std::unordered_set<std::uint64_t> large;  // requests whose large reply has not ended yet
  // Asynchronous calls awaiting replies, and their deadlines in submission order (ids of
  // calls already completed are dropped when they reach the front).
  std::size_t async_in_flight = 0;
  std::deque<std::pair<SteadyClock::time_point, std::uint64_t>> async_deadlines;
  bool closing = false, stderr_eof = false, writer_done = false;
  std::string cut;  // why this client cut the stream, when it did
  wire::HelloReply hello;
  std::optional<nlohmann::json> info;

  void start() {
    auto argv = remote_command(options);
    log->debug("starting {}", shell_join(argv));
    // A local server may get its own process group (nothing prompts on a terminal);
    // ssh keeps ours, so it can ask for passwords and second factors.
    auto env = options.env;
    if (options.transport == Transport::subprocess && !options.started_by.empty()) {
      const char* chain = std::getenv(kSubprocessChain);
      env.push_back(std::string(kSubprocessChain) + "=" + (chain ? std::string(chain) + "\n" : "") +
                    options.started_by);
    }
    try {
      proc = Process::spawn(argv, env, options.transport == Transport::subprocess, Stdio::sockets);
    } catch (const Error& e) {
      throw RemoteConnectionError(
          e.message() + " (the `" + (options.transport == Transport::ssh ? "ssh" : "quiver") +
              "` key of the cache names it); " + std::string(kReconnectHint),
          label);
    }
    out_fd = std::move(proc.stdout_fd());
    err_fd = std::move(proc.stderr_fd());
    state.connects++;
    stderr_thread = std::thread([this] { drain_stderr(); });
    reader = std::make_unique<wire::FrameReader>(out_fd.get());
    reader->set_deadline(SteadyClock::now() + options.connect_timeout);
    wire::GreetingScan scan;
    try {
      scan = wire::receive_greeting(*reader);
    } catch (const wire::MalformedMessage& e) {
      // A greeting we cannot read, typically another protocol version: a hard error.
      throw ProtocolError("cannot talk to the quiver server: " + e.message() +
                              "; install matching quiver versions on both sides",
                          label);
    } catch (const TimeoutError&) {
      throw RemoteConnectionError("no greeting from the quiver server within " +
                                      seconds(options.connect_timeout) + " (connect_timeout)" +
                                      stderr_summary(),
                                  label);
    } catch (const ProtocolError& e) {
      // No greeting: the command failed before the server started, or the process closed
      // its output, or printed more than a login script plausibly does.
      std::optional<ExitStatus> st;
      {
        std::lock_guard lk(proc_mutex);
        st = proc.wait_for(std::chrono::milliseconds(1000));
      }
      if (st) wait_stderr_eof();
      // What the stream held matters unless the process ended without writing to it.
      const bool stream_said = !st || reader->offset() > 0;
      throw RemoteConnectionError("the quiver server did not start: " +
                                      (st ? "the process ended with " + st->describe()
                                          : std::string("the process is still running")) +
                                      stderr_summary() +
                                      (stream_said ? " (" + e.message() + ")" : std::string()) +
                                      "; " + std::string(kReconnectHint),
                                  label);
    }
    if (!scan.noise.empty())
      log->info("skipped {} bytes before the greeting: {}", scan.noise.size(),
                scan.noise.substr(0, 2000));
    if (scan.greeting.quiver_version != kVersion)
      log->warn("remote runs quiver {}, this client {}", scan.greeting.quiver_version, kVersion);
    reader->set_deadline(std::nullopt);
    const int in_fd = proc.stdin_fd().get();
    if (::fcntl(in_fd, F_SETFL, ::fcntl(in_fd, F_GETFL) | O_NONBLOCK) != 0)
      throw RemoteConnectionError("cannot make the server's input non-blocking", label);
    writer = std::make_unique<wire::FrameWriter>(in_fd, scan.greeting.limits);
    writer->set_gather(true);
    writer_thread = std::thread([this] { write_loop(); });
    reader_thread = std::thread([this] { read_loop(); });
    wire::Hello h;
    auto [id, slot] = submit(h);
    hello = wire::expect_reply<wire::HelloReply>(
        wait(id, *slot, options.connect_timeout, "connect_timeout", "hello"));
    log->debug("connected: cache '{}', read_only={}", hello.cache_name, hello.read_only);
  }

  /// Queues (or sends) m; with done, as an asynchronous call of a small reply that the
  /// reader thread (or a reading caller) completes through done, by call_timeout; with
  /// into, its reply's fitting arrays are received there (the caller must wait()).
  std::pair<std::uint64_t, std::shared_ptr<Slot>> submit(wire::Message m, Done done = {},
                                                         const ArrayDestinations* into = nullptr) {
    std::unique_lock lk(mutex);
    if (failure) std::rethrow_exception(failure);
    auto id = next_id++;
    auto slot = std::make_shared<Slot>();
    const bool async = static_cast<bool>(done);
    slot->done = std::move(done);
    slot->what = wire::message_type_name(wire::type_of(m));
    slot->into = into;
    pending.emplace(id, slot);
    if (async) {
      if (async_in_flight++ == 0 && reading == Reading::none) reader_cv.notify_one();
      async_deadlines.emplace_back(SteadyClock::now() + options.call_timeout, id);
    }
    state.requests++;
    auto inflight = static_cast<std::uint64_t>(pending.size());
    for (auto cur = state.max_in_flight.load();
         inflight > cur && !state.max_in_flight.compare_exchange_weak(cur, inflight);) {
    }
    if (!small_reply(m)) {
      large.insert(id);
      if (reading == Reading::none) reader_cv.notify_one();
    }
    if (!small_request(m)) ++outbox_large;
    outbox.emplace_back(id, std::move(m));
    // An asynchronous call sent while others are in flight joins the writer thread's next
    // batch: one thread keeping many calls in flight then costs one write per batch, not
    // one per call.
    if (writing || outbox_large > 0 || outbox.size() > kDirectBatch || writer->has_gathered() ||
        (async && pending.size() > 1)) {
      // The token's holder sees the outbox on release; an asynchronous call behind others
      // queued was announced with the first of them (every queued request wakes the writer
      // while it is idle), so a thread submitting in a loop does not wake it for each.
      if (!writing && !(async && outbox.size() > 1)) writer_cv.notify_one();
      return {id, slot};
    }
    // The stream is idle: send the outbox (this request and the few queued before it) here.
    auto batch = take_outbox();
    writing = true;
    lk.unlock();
    const bool flushed = send_batch(batch, false);
    lk.lock();
    writing = false;
    if (!flushed || !outbox.empty() || closing || failure) writer_cv.notify_one();
    return {id, slot};
  }

  using Outbox = std::deque<std::pair<std::uint64_t, wire::Message>>;

  Outbox take_outbox() {
    Outbox batch;
    batch.swap(outbox);
    outbox_large = 0;
    return batch;
  }

  /// Sends batch in order as the write token's holder, then writes the gathered frames: all
  /// of them (wait), or what the pipe takes now. Returns whether nothing is left unwritten.
  bool send_batch(const Outbox& batch, bool wait) {
    for (const auto& [id, m] : batch)
      if (!send(id, m)) return true;
    return flush(wait);
  }

  /// Sends one message as the write token's holder (small frames are gathered, see
  /// flush). A message over the peer's limits fails only its own call; a broken stream
  /// fails the connection and returns false.
  bool send(std::uint64_t id, const wire::Message& m) {
    try {
      wire::send_message(*writer, id, m);
    } catch (const InvalidArgument& e) {
      // Too large for the peer's limits: nothing was sent.
      std::lock_guard lk(mutex);
      large.erase(id);
      if (auto it = pending.find(id); it != pending.end())
        complete(it, wire::Incoming{id, wire::ErrorReply::from(e)});
    } catch (const std::exception& e) {
      fail(death(e.what()));
      return false;
    }
    return true;
  }

  /// Writes the gathered frames as the token's holder: all of them (wait), or what the pipe
  /// takes now. Returns whether none is left (also when the stream broke: nothing to write).
  bool flush(bool wait) {
    try {
      if (!wait) return writer->flush_now();
      writer->flush();
    } catch (const std::exception& e) {
      fail(death(e.what()));
    }
    return true;
  }

  /// The next reply to request id, waiting at most limit (named by option in errors):
  /// read by this caller (see Reading) or handed over by whoever reads.
  wire::Incoming wait(std::uint64_t id, Slot& slot, std::chrono::milliseconds limit,
                      std::string_view option, std::string_view what) {
    const auto deadline = SteadyClock::now() + limit;
    std::unique_lock lk(mutex);
    for (;;) {
      if (!slot.replies.empty()) break;
      if (failure) {
        // The stream is lost anyway: stop a reply still arriving into this caller's memory.
        if (slot.filling) stop_fill(lk, slot);
        std::rethrow_exception(failure);
      }
      bool timed_out = false;
      if (reading == Reading::none && large.empty()) {
        timed_out = !read_one(lk, Reading::caller, deadline);
      } else {
        slot.waiting = true;
        timed_out = slot.cv.wait_until(lk, deadline) == std::cv_status::timeout;
        slot.waiting = false;
      }
      if (timed_out && slot.replies.empty() && !failure) {
        const bool cut_now = slot.filling;
        if (cut_now) cut_fill(lk, slot, id, what, limit, option);
        if (!slot.replies.empty()) break;  // it arrived whole after all
        pending.erase(id);
        if (reading == Reading::none) pass_read_token();
        throw TimeoutError("no reply to " + std::string(what) + " (request " + std::to_string(id) +
                               ") within " + seconds(limit) + " (" + std::string(option) +
                               "); the remote may be hung, stopped or overloaded" +
                               (cut_now ? "; the reply was arriving into this call's memory, so "
                                          "the connection was closed: " +
                                              std::string(kReconnectHint)
                                        : ""),
                           label);
      }
    }
    if (reading == Reading::none) pass_read_token();
    auto in = std::move(slot.replies.front());
    slot.replies.pop_front();
    return in;
  }

  /// Ends the reply being read into slot's caller memory (lk held, slot filling): stops
  /// reading the stream, whose end then fails the connection, and waits until the reader
  /// has left the caller's memory.
  void cut_fill(std::unique_lock<std::mutex>& lk, Slot& slot, std::uint64_t id,
                std::string_view what, std::chrono::milliseconds limit, std::string_view option) {
    if (cut.empty())
      cut = "connection closed by this client: the reply to " + std::string(what) + " (request " +
            std::to_string(id) + ") was still arriving into the caller's memory after " +
            seconds(limit) + " (" + std::string(option) + ")";
    log->error("{}", cut);
    stop_fill(lk, slot);
  }

  /// Stops reading the stream (lk held, slot filling) and waits until the reader has left
  /// slot's caller memory: the peer's writes now fail, and the reader sees the end of the
  /// stream once it has read what is already buffered.
  void stop_fill(std::unique_lock<std::mutex>& lk, Slot& slot) {
    ::shutdown(out_fd.get(), SHUT_RD);
    slot.cv.wait(lk, [&] { return !slot.filling; });
  }

  /// The reader's hook between a reply's skeleton and its bulk: the result of a load or
  /// load_value reply whose caller gave memory (Slot::into) is received there. Returns that
  /// caller's slot, now filling, or null.
  std::shared_ptr<Slot> begin_fill(std::uint64_t id, wire::Reader& r, wire::Message& m) {
    Value* result = nullptr;
    if (auto* reply = std::get_if<wire::LoadValueReply>(&m); reply && reply->value)
      result = &*reply->value;
    else if (auto* entry = std::get_if<wire::LoadReply>(&m); entry && entry->entry)
      result = &entry->entry->result;
    if (!result) return nullptr;
    std::lock_guard lk(mutex);
    auto it = pending.find(id);
    if (it == pending.end() || !it->second->into) return nullptr;
    wire::receive_into(r, *result, *it->second->into);
    it->second->filling = true;
    return it->second;
  }

  /// The next message, received as the read token's holder (see begin_fill). Once it is read
  /// (or failed), the memory of a caller it filled is no longer written, and that caller may go.
  std::optional<wire::Incoming> receive() {
    struct EndFill {
      Connection& c;
      std::shared_ptr<Slot> slot;
      ~EndFill() {
        if (!slot) return;  // the usual case: no caller memory, no lock
        std::lock_guard lk(c.mutex);
        slot->filling = false;
        slot->cv.notify_all();
      }
    } end{*this, nullptr};
    return wire::receive_message(*reader, [&](std::uint64_t id, wire::Reader& r, wire::Message& m) {
      end.slot = begin_fill(id, r, m);
    });
  }

  /// Takes the read token as `who` (lk held, token free), reads one message (waiting until
  /// deadline, if any) and the whole ones buffered after it, and delivers them; gives the token
  /// back (to be passed on by the caller, see pass_read_token). Returns false when the deadline
  /// passed between messages; a broken stream fails the connection.
  bool read_one(std::unique_lock<std::mutex>& lk, Reading who,
                std::optional<wire::Deadline> deadline) {
    reading = who;
    lk.unlock();
    std::optional<wire::Incoming> in;
    std::vector<wire::Incoming> more;  // replies that came with it, read without waiting
    std::exception_ptr broke;
    bool timed_out = false;
    reader->set_deadline(deadline);
    try {
      in = receive();
      if (!in) broke = death("the server closed the stream");
      while (in && reader->has_buffered_message()) {
        auto next = receive();
        if (!next) break;
        more.push_back(std::move(*next));
      }
    } catch (const TimeoutError& e) {
      // Between messages the stream stays usable; inside one (a stalled small reply) not.
      timed_out = !reader->broken();
      if (!timed_out) broke = death(e.what());
    } catch (const std::exception& e) {
      broke = death(e.what());
    }
    if (broke) fail(broke);
    lk.lock();
    reading = Reading::none;
    if (failure || closing) reader_cv.notify_all();  // shutdown() waits for the token
    if (in) deliver(std::move(*in));
    for (auto& m : more) deliver(std::move(m));
    return !timed_out;
  }

  /// Wakes whoever should read next (lk held, token free): the reader thread while a large
  /// reply is owed, else a waiting caller, else (closing) shutdown().
  void pass_read_token() {
    if (failure || closing) reader_cv.notify_all();  // shutdown() waits for the token
    if (failure) return;
    if (!large.empty()) {
      reader_cv.notify_one();
      return;
    }
    for (auto& [id, slot] : pending)
      if (slot->waiting && slot->replies.empty()) {
        slot->cv.notify_one();
        return;
      }
    if (async_in_flight > 0) reader_cv.notify_one();
  }

  /// Stops delivering replies for id (a caller gave up on it).
  void abandon(std::uint64_t id) {
    std::lock_guard lk(mutex);
    pending.erase(id);
  }

  /// Hands a reply to its caller (mutex held); a reply nobody waits for is dropped.
  void deliver(wire::Incoming in) {
    const auto* page = std::get_if<wire::QueryPage>(&in.message);
    const bool last = !page || page->last;
    if (last) large.erase(in.request_id);
    auto it = pending.find(in.request_id);
    if (it == pending.end()) {
      log->debug("dropping reply {} to abandoned request {}", wire::message_type_name(in.type()),
                 in.request_id);
      return;
    }
    if (last) {
      complete(it, std::move(in));
      return;
    }
    it->second->replies.push_back(std::move(in));
    it->second->cv.notify_all();
  }

  /// Hands the last reply of a call to it (mutex held) and forgets the call.
  void complete(decltype(pending)::iterator it, wire::Incoming in) {
    auto slot = std::move(it->second);
    pending.erase(it);
    if (slot->done) {
      --async_in_flight;
      slot->done(&in, nullptr);
      return;
    }
    slot->replies.push_back(std::move(in));
    slot->cv.notify_all();
  }

  /// Fails the asynchronous calls whose deadline has passed (mutex held); their late
  /// replies will be dropped. Returns the next deadline of one still in flight.
  std::optional<wire::Deadline> expire_async() {
    const auto now = SteadyClock::now();
    while (!async_deadlines.empty()) {
      const auto [deadline, id] = async_deadlines.front();
      auto it = pending.find(id);
      if (it == pending.end()) {
        async_deadlines.pop_front();  // completed
        continue;
      }
      if (deadline > now) return deadline;
      async_deadlines.pop_front();
      auto slot = std::move(it->second);
      pending.erase(it);
      --async_in_flight;
      slot->done(nullptr, std::make_exception_ptr(TimeoutError(
                              "no reply to " + std::string(slot->what) + " (request " +
                                  std::to_string(id) + ") within " + seconds(options.call_timeout) +
                                  " (call_timeout); the remote may be hung, stopped or overloaded",
                              label)));
    }
    return std::nullopt;
  }

  void fail(std::exception_ptr e) {
    std::lock_guard lk(mutex);
    if (!failure) failure = e;
    for (auto& [id, slot] : pending) {
      if (slot->done)
        slot->done(nullptr, failure);
      else
        slot->cv.notify_all();
    }
    pending.clear();
    async_in_flight = 0;
    async_deadlines.clear();
    writer_cv.notify_all();
    reader_cv.notify_all();
  }

  bool is_closing() {
    std::lock_guard lk(mutex);
    return closing;
  }

  std::exception_ptr death(const std::string& why) {
    if (is_closing())
      return std::make_exception_ptr(RemoteConnectionError(closed_message(), label));
    {
      std::lock_guard lk(mutex);
      if (!cut.empty())
        return std::make_exception_ptr(
            RemoteConnectionError(cut + "; " + std::string(kReconnectHint), label));
    }
    std::optional<ExitStatus> st;
    {
      std::lock_guard lk(proc_mutex);
      st = proc.wait_for(kGrace);
    }
    wait_stderr_eof();
    std::string msg = "connection lost (" + why + "): " +
                      (st ? "the process ended with " + st->describe()
                          : std::string("the process is still running")) +
                      stderr_summary() + "; " + std::string(kReconnectHint);
    log->error("{}", msg);
    return std::make_exception_ptr(RemoteConnectionError(msg, label));
  }

  /// The reader thread: reads while a large reply or an asynchronous call is owed and no
  /// caller reads; fails asynchronous calls at their deadline.
  void read_loop() {
    std::unique_lock lk(mutex);
    for (;;) {
      auto ready = [&] {
        return failure || reading == Reading::stopped ||
               (reading == Reading::none && (!large.empty() || async_in_flight > 0));
      };
      if (auto next = expire_async())
        reader_cv.wait_until(lk, *next, ready);
      else
        reader_cv.wait(lk, ready);
      if (failure || reading == Reading::stopped) break;
      if (reading != Reading::none || (large.empty() && async_in_flight == 0)) continue;
      // A large reply is read without a deadline (a slow transfer is no timeout); between
      // them, the asynchronous calls' deadlines bound the wait.
      std::optional<wire::Deadline> deadline;
      if (large.empty()) deadline = expire_async();
      if (large.empty() && async_in_flight == 0) continue;
      read_one(lk, Reading::thread, deadline);
      if (large.empty() && async_in_flight == 0) pass_read_token();
    }
  }

  /// The writer thread: takes the token when the outbox or a caller's unwritten rest needs
  /// it, and sends the whole outbox at once (small frames gathered into one write).
  void write_loop() {
    std::unique_lock lk(mutex);
    for (;;) {
      writer_cv.wait(lk, [&] {
        return !writing && (failure || closing || !outbox.empty() || writer->has_gathered());
      });
      if (failure || (outbox.empty() && !writer->has_gathered())) break;
      auto batch = take_outbox();
      writing = true;
      lk.unlock();
      send_batch(batch, true);
      lk.lock();
      writing = false;
    }
    writing = true;  // kept: nobody writes to the stream any more
    lk.unlock();
    proc.stdin_fd().reset();  // end of input: the server exits cleanly
    lk.lock();
    writer_done = true;
    writer_done_cv.notify_all();
  }

  void drain_stderr() {
    std::string partial;
    char buf[4096];
    const int fd = err_fd.get();
    for (;;) {
      auto n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial.append(buf, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        line(partial.substr(0, nl));
        partial.erase(0, nl + 1);
      }
    }
    if (!partial.empty()) line(partial);
    std::lock_guard lk(mutex);
    stderr_eof = true;
    stderr_cv.notify_all();
  }

  void line(std::string l) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    log->info("{}", l);
    std::lock_guard lk(state.ring_mutex);
    state.ring.push_back(std::move(l));
    while (state.ring.size() > kStderrLines) state.ring.pop_front();
  }

  void wait_stderr_eof() {
    std::unique_lock lk(mutex);
    stderr_cv.wait_for(lk, std::chrono::milliseconds(1000), [&] { return stderr_eof; });
  }

  std::string stderr_summary() {
    std::lock_guard lk(state.ring_mutex);
    if (state.ring.empty()) return "; it wrote nothing to stderr";
    // The last 10 lines that are not blank (Lmod, for one, pads its errors with blank lines).
    std::vector<std::string_view> last;
    for (auto it = state.ring.rbegin(); it != state.ring.rend() && last.size() < 10; ++it)
      if (it->find_first_not_of(" \t") != std::string::npos) last.push_back(*it);
    if (last.empty()) return "; it wrote only blank lines to stderr";
    std::string s = "; its stderr ends with: ";
    for (auto it = last.rbegin(); it != last.rend(); ++it) {
      if (it != last.rbegin()) s += " | ";
      s += *it;
    }
    return s;
  }

  /// Ends the process and joins every thread. Safe after a failed start().
  void shutdown() {
    {
      std::unique_lock lk(mutex);
      closing = true;
      writer_cv.notify_all();
      if (writer_thread.joinable() &&
          !writer_done_cv.wait_for(lk, kGrace, [&] { return writer_done; })) {
        lk.unlock();
        std::lock_guard plk(proc_mutex);
        proc.kill(SIGKILL);  // the writer is stuck on a full pipe
      }
    }
    if (writer_thread.joinable()) writer_thread.join();
    {
      std::lock_guard lk(proc_mutex);
      auto st = proc.close(kGrace);
      log->debug("server process ended: {}", st.describe());
    }
    {
      // The process has ended, so whoever reads sees the end of the stream and stops.
      std::unique_lock lk(mutex);
      reader_cv.wait(lk, [&] { return reading == Reading::none; });
      reading = Reading::stopped;
      reader_cv.notify_all();
    }
    if (reader_thread.joinable()) reader_thread.join();
    if (stderr_thread.joinable()) stderr_thread.join();
    out_fd.reset();
    err_fd.reset();
    fail(std::make_exception_ptr(RemoteConnectionError(closed_message(), label)));
  }
};

SshCache::SshCache(SshCacheOptions options)
    : options_(std::move(options)), state_(std::make_unique<State>()) {
  remote_command(options_);  // validates the options now, not on first use
}

SshCache::~SshCache() {
  close();
}

std::shared_ptr<SshCache::Connection> SshCache::connection() const {
  std::lock_guard lk(state_->mutex);
  if (!state_->conn) {
    if (state_->start_failure) std::rethrow_exception(state_->start_failure);
    if (state_->closed) throw RemoteConnectionError(closed_message(), label_of(options_));
    auto c = std::make_shared<Connection>(options_, *state_);
    try {
      c->start();
    } catch (...) {
      c->shutdown();
      state_->start_failure = std::current_exception();  // not retried until reconnect()
      throw;
    }
    state_->conn = std::move(c);
  }
  return state_->conn;
}

void SshCache::close() {
  std::shared_ptr<Connection> c;
  {
    std::lock_guard lk(state_->mutex);
    c = std::move(state_->conn);
    state_->closed = true;
  }
  if (c) c->shutdown();
}

void SshCache::reconnect() {
  close();
  {
    std::lock_guard lk(state_->mutex);
    state_->closed = false;
    state_->start_failure = nullptr;
    std::lock_guard rlk(state_->ring_mutex);
    state_->ring.clear();
  }
  connection();
}

template <class Reply, class Request>
Reply SshCache::call(Request request, const ArrayDestinations* into) const {
  auto c = connection();
  auto [id, slot] = c->submit(std::move(request), {}, into);
  return wire::expect_reply<Reply>(c->wait(id, *slot, options_.call_timeout, "call_timeout",
                                           wire::message_type_name(Request::type)));
}

template <class Reply, class Request, class F>
auto SshCache::call_async(Request request, F result)
    -> std::future<decltype(result(std::declval<Reply>()))> {
  using T = decltype(result(std::declval<Reply>()));
  auto promise = std::make_shared<std::promise<T>>();
  auto future = promise->get_future();
  try {
    connection()->submit(
        std::move(request), [promise, result](wire::Incoming* reply, std::exception_ptr error) {
          if (error) return promise->set_exception(error);
          try {
            promise->set_value(result(wire::expect_reply<Reply>(std::move(*reply))));
          } catch (...) {
            promise->set_exception(std::current_exception());
          }
        });
  } catch (...) {
    promise->set_exception(std::current_exception());
  }
  return future;
}

bool SshCache::read_only() const {
  if (options_.remote_read_only) return true;
  return connection()->hello.read_only;
}

void SshCache::save(const Entry& entry) {
  if (read_only())
    throw Rejected("the remote cache is read-only: save refused", label_of(options_));
  call<wire::SaveReply>(wire::SaveRequest{entry});
}

std::optional<Entry> SshCache::load(const Digest& digest) {
  return call<wire::LoadReply>(wire::LoadRequest{digest}).entry;
}

std::optional<Value> SshCache::load_value(const Digest& digest) {
  return call<wire::LoadValueReply>(wire::LoadValueRequest{digest}).value;
}

std::optional<Value> SshCache::load_value_into(const Digest& digest,
                                               const ArrayDestinations& into) {
  auto value = call<wire::LoadValueReply>(wire::LoadValueRequest{digest}, &into).value;
  if (value) place_arrays(*value, into);
  return value;
}

std::optional<Entry> SshCache::load_into(const Digest& digest, const ArrayDestinations& into) {
  auto entry = call<wire::LoadReply>(wire::LoadRequest{digest}, &into).entry;
  if (entry) place_arrays(entry->result, into);
  return entry;
}

bool SshCache::contains(const Digest& digest) {
  return call<wire::ContainsReply>(wire::ContainsRequest{digest}).found;
}

Digest SshCache::expand(std::string_view prefix) {
  check_prefix(prefix, label_of(options_));
  return call<wire::ExpandReply>(wire::ExpandRequest{std::string(prefix)}).digest;
}

std::string SshCache::shrink(const Digest& digest) {
  return call<wire::ShrinkReply>(wire::ShrinkRequest{digest}).prefix;
}

void SshCache::query(const Query& q, const QuerySink& sink) {
  auto c = connection();
  auto [id, slot] = c->submit(wire::QueryRequest{q, 0});
  for (;;) {
    auto page = wire::expect_reply<wire::QueryPage>(
        c->wait(id, *slot, options_.call_timeout, "call_timeout", "query"));
    for (const auto& s : page.summaries) {
      if (!sink(s)) {
        if (!page.last) c->abandon(id);
        return;
      }
    }
    if (page.last) return;
  }
}

bool SshCache::evict(const Digest& digest) {
  if (read_only())
    throw Rejected("the remote cache is read-only: evict refused", label_of(options_));
  return call<wire::EvictReply>(wire::EvictRequest{digest}).evicted;
}

nlohmann::json SshCache::config() const {
  nlohmann::json j;
  j["type"] = options_.transport == Transport::ssh ? "ssh" : "subprocess";
  if (options_.transport == Transport::ssh) {
    j["host"] = options_.host;
    j["ssh"] = options_.ssh;
    j["ssh_options"] = options_.ssh_options;
  }
  if (!options_.cache_name.empty()) j["cache_name"] = options_.cache_name;
  if (!options_.config.empty()) j["config"] = options_.config;
  j["quiver"] = options_.quiver;
  if (!options_.setup_commands.empty()) j["setup_commands"] = options_.setup_commands;
  if (!options_.workdir.empty()) j["workdir"] = options_.workdir;
  if (options_.login_shell) j["login_shell"] = true;
  if (options_.remote_read_only) j["remote_read_only"] = true;
  if (!options_.env.empty()) {
    auto env = nlohmann::json::object();
    for (const auto& e : options_.env) {
      auto eq = e.find('=');
      env[e.substr(0, eq)] = eq == std::string::npos ? std::string() : e.substr(eq + 1);
    }
    j["env"] = env;
  }
  j["connect_timeout"] = static_cast<double>(options_.connect_timeout.count()) / 1000.0;
  j["call_timeout"] = static_cast<double>(options_.call_timeout.count()) / 1000.0;
  return j;
}

nlohmann::json SshCache::info() {
  auto c = connection();
  {
    std::lock_guard lk(c->mutex);
    if (c->info) return *c->info;
  }
  auto reply = call<wire::InfoReply>(wire::InfoRequest{});
  std::lock_guard lk(c->mutex);
  c->info = reply.info;
  return reply.info;
}

std::vector<bool> SshCache::contains_many(std::span<const Digest> digests) {
  return call<wire::ContainsManyReply>(
             wire::ContainsManyRequest{std::vector<Digest>(digests.begin(), digests.end())})
      .found;
}

std::future<bool> SshCache::contains_async(const Digest& digest) {
  return call_async<wire::ContainsReply>(wire::ContainsRequest{digest},
                                         [](wire::ContainsReply r) { return r.found; });
}

std::vector<std::optional<Entry>> SshCache::load_many(std::span<const Digest> digests) {
  return call<wire::LoadManyReply>(
             wire::LoadManyRequest{std::vector<Digest>(digests.begin(), digests.end())})
      .entries;
}

void SshCache::save_many(std::span<const Entry> entries) {
  if (read_only())
    throw Rejected("the remote cache is read-only: save refused", label_of(options_));
  call<wire::SaveManyReply>(
      wire::SaveManyRequest{std::vector<Entry>(entries.begin(), entries.end())});
}

void SshCache::connect() {
  connection();
}

double SshCache::ping() {
  auto t0 = SteadyClock::now();
  call<wire::Pong>(wire::Ping{});
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

SshCache::Stats SshCache::stats() const {
  return {state_->connects.load(), state_->requests.load(), state_->max_in_flight.load()};
}

pid_t SshCache::pid() const {
  std::lock_guard lk(state_->mutex);
  return state_->conn ? state_->conn->proc.pid() : -1;
}

std::vector<std::string> SshCache::stderr_tail() const {
  std::lock_guard lk(state_->ring_mutex);
  return {state_->ring.begin(), state_->ring.end()};
}

}  // namespace quiver
