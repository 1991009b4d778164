#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <quiver/core/log.hpp>
#include <quiver/mpi/cache.hpp>
#include <quiver/mpi/channel.hpp>
#include <thread>

namespace quiver::mpi {

namespace {

constexpr const char* kWhere = "quiver::mpi::Cache";

// Tags on the duplicated communicator. A request's first message goes to rank 0 with
// kTagRequest; its further chunks, and all of its reply, use the reply tag the caller picked
// (one per call in flight on that rank). Collective operations use kTagCollective; the
// destructor's handshake kTagClose.
constexpr int kTagRequest = 1;
constexpr int kTagCollective = 2;
constexpr int kTagClose = 3;
constexpr int kFirstReplyTag = 16;
constexpr int kReplyTags = 16384;  // MPI guarantees tags up to 32767

enum class Op : std::uint8_t {
  save = 1,
  save_many,
  load,
  load_value,
  load_many,
  contains,
  contains_many,
  expand,
  shrink,
  query,
  evict,
  info,
};

constexpr std::size_t kRequestHeader = 8;  // op, 3 zero bytes, reply tag (u32 little-endian)

std::array<std::byte, kRequestHeader> request_header(Op op, int tag) {
  std::array<std::byte, kRequestHeader> h{};
  h[0] = static_cast<std::byte>(op);
  const auto t = static_cast<std::uint32_t>(tag);
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<std::byte>((t >> (8 * i)) & 0xff);
  return h;
}

// An error that travels to other ranks: typed, with its message and where.
struct Failure {
  ErrorCode code = ErrorCode::server_error;
  std::string message;
  std::string where;

  [[noreturn]] void raise() const { throw_error(code, message, where); }
};

Failure failure_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& x) {
    return {x.code(), x.message(), x.where()};
  } catch (const std::bad_alloc&) {
    return {ErrorCode::server_error, "out of memory on rank 0", kWhere};
  } catch (const std::exception& x) {
    return {ErrorCode::server_error, x.what(), kWhere};
  } catch (...) {
    return {ErrorCode::server_error, "unknown exception on rank 0", kWhere};
  }
}

// A reply or status body: u8 0 and the result, or u8 1 and the failure.
void encode_failure(wire::Writer& w, const Failure& f) {
  w.u8(1);
  wire::encode(w, f.code);
  wire::encode(w, f.message);
  wire::encode(w, f.where);
}

/// Decodes a status byte; on failure, the failure into f (returns false).
bool decode_status(wire::Reader& r, std::optional<Failure>& f) {
  const auto status = r.u8();
  if (status == 0) return true;
  if (status != 1) r.fail("bad status byte " + std::to_string(status));
  auto& x = f.emplace();
  wire::decode(r, x.code);
  wire::decode(r, x.message);
  wire::decode(r, x.where);
  return false;
}

struct Nothing {};

bool transport_failure(ErrorCode c) {
  return c == ErrorCode::remote_connection || c == ErrorCode::timeout;
}

// One request from another rank, as one of rank 0's serving threads holds it. Single-digest and
// single-entry operations use the vectors with one element, so they batch with the many forms.
struct Pending {
  int source = -1;
  int tag = 0;
  Op op{};
  std::vector<Entry> entries;
  std::vector<Digest> digests;
  std::string prefix;
  Query query;

  std::optional<Failure> failure;
  std::vector<bool> found;
  std::vector<std::optional<Entry>> loaded;
  Digest digest;
  std::string text;
  std::vector<EntrySummary> summaries;
  bool flag = false;
  nlohmann::json json;
};

void decode_request(wire::Reader& r, Pending& p) {
  switch (p.op) {
    case Op::save:
      wire::decode(r, p.entries.emplace_back());
      break;
    case Op::save_many:
      wire::decode(r, p.entries);
      break;
    case Op::load:
    case Op::load_value:
    case Op::contains:
    case Op::shrink:
    case Op::evict:
      wire::decode(r, p.digests.emplace_back());
      break;
    case Op::load_many:
    case Op::contains_many:
      wire::decode(r, p.digests);
      break;
    case Op::expand:
      wire::decode(r, p.prefix);
      break;
    case Op::query:
      wire::decode(r, p.query);
      break;
    case Op::info:
      break;
    default:
      r.fail("unknown operation " + std::to_string(static_cast<int>(p.op)));
  }
}

void encode_reply(wire::Writer& w, const Pending& p) {
  if (p.failure) return encode_failure(w, *p.failure);
  w.u8(0);
  switch (p.op) {
    case Op::save:
    case Op::save_many:
      break;
    case Op::load:
      wire::encode(w, p.loaded.at(0));
      break;
    case Op::load_value:
      wire::encode(w, p.loaded.at(0).has_value());
      if (p.loaded[0]) wire::encode(w, p.loaded[0]->result);
      break;
    case Op::load_many:
      wire::encode(w, p.loaded);
      break;
    case Op::contains:
      wire::encode(w, static_cast<bool>(p.found.at(0)));
      break;
    case Op::contains_many:
      wire::encode(w, p.found);
      break;
    case Op::expand:
      wire::encode(w, p.digest);
      break;
    case Op::shrink:
      wire::encode(w, p.text);
      break;
    case Op::query:
      wire::encode(w, p.summaries);
      break;
    case Op::evict:
      wire::encode(w, p.flag);
      break;
    case Op::info:
      wire::encode(w, p.json);
      break;
  }
}

bool is_save(Op op) {
  return op == Op::save || op == Op::save_many;
}
bool is_load(Op op) {
  return op == Op::load || op == Op::load_value || op == Op::load_many;
}
bool is_contains(Op op) {
  return op == Op::contains || op == Op::contains_many;
}
/// Operations whose replies are small and whose calls are quick when the real cache is.
bool is_quick(Op op) {
  return is_contains(op) || op == Op::expand || op == Op::shrink;
}

/// The distinct digests of lists, in first-seen order, and for each list the positions of
/// its digests in that order.
struct Union {
  std::vector<Digest> digests;
  std::vector<std::vector<std::size_t>> positions;
};
Union union_of(const std::vector<const std::vector<Digest>*>& lists) {
  Union u;
  std::map<Digest, std::size_t> index;
  for (const auto* list : lists) {
    auto& pos = u.positions.emplace_back();
    for (const auto& d : *list) {
      auto [it, fresh] = index.emplace(d, u.digests.size());
      if (fresh) u.digests.push_back(d);
      pos.push_back(it->second);
    }
  }
  return u;
}

const char* thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "an unknown thread level";
  }
}

}  // namespace

struct Cache::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  Options options;
  std::unique_ptr<quiver::Cache> real;  // rank 0 only
  nlohmann::json config;
  bool read_only = false;

  std::vector<std::thread> progress;
  std::mutex receiving;  // held by the serving thread that polls for requests
  std::atomic<bool> stop{false};
  std::atomic<std::uint32_t> next_tag{0};
  std::atomic<std::uint64_t> served{0}, rounds{0}, calls{0}, overlapped{0};
  std::atomic<std::uint64_t> replied{0};  // rounds answered: the polling thread spins after one
  std::atomic<std::int64_t> quick_round_ns{0};  // moving average of rounds of quick operations
  std::mutex broken_lock;
  std::string broken;  // why the collective operations are unusable: the first timeout's message

  ~Impl() {
    real.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    // After a timeout the communicator has abandoned requests and unreceived messages: it is
    // kept (never freed), so that its context id is not reused by a later communicator
    // whose messages the stale ones would match.
    if (comm != MPI_COMM_NULL && !finalized && broken.empty()) MPI_Comm_free(&comm);
  }

  bool independent() const noexcept { return options.mode == Mode::independent; }

  /// True on rank 0 (which calls the real cache directly); on other ranks, checks the mode
  /// allows sending requests.
  bool here(const char* what) const {
    if (rank == 0) return true;
    if (!independent())
      throw InvalidArgument(std::string(what) + " on rank " + std::to_string(rank) +
                                ": this cache was built with Mode::collective, which allows the "
                                "single-rank operations on rank 0 only (Mode::independent needs "
                                "MPI_THREAD_MULTIPLE)",
                            kWhere);
    return false;
  }

  detail::Step step(const char* operation) const {
    return {comm, rank, options.spin, options.max_sleep, options.collective_timeout, operation};
  }

  /// Runs the collective operation fn(step): at once CollectiveTimeout when an earlier one
  /// timed out on this rank (the ranks' collective calls no longer match up), and when this
  /// one times out, remembers it.
  template <class F>
  auto collective(const char* operation, F&& fn) {
    {
      std::lock_guard lock(broken_lock);
      if (!broken.empty())
        throw CollectiveTimeout(std::string(operation) + " on rank " + std::to_string(rank) +
                                    ": not started, an earlier collective operation timed out "
                                    "on this rank (" +
                                    broken + ")",
                                kWhere);
    }
    try {
      return fn(step(operation));
    } catch (const CollectiveTimeout& e) {
      std::lock_guard lock(broken_lock);
      if (broken.empty()) broken = e.message();
      throw;
    }
  }

  // --- the calling side (ranks other than 0) ----------------------------------------------

  /// Sends one request to rank 0 and decodes its reply as R; received(r, out) runs once out
  /// is decoded, before the bulk of its arrays is read.
  template <class R, class Received, class... A>
  R remote_then(Op op, Received received, const A&... args) {
    wire::Writer w;
    (wire::encode(w, args), ...);
    const int tag = kFirstReplyTag + static_cast<int>(next_tag++ % kReplyTags);
    const auto header = request_header(op, tag);
    detail::send_body(comm, 0, kTagRequest, tag, header, w, options.chunk_bytes);
    auto first = detail::receive_first(comm, 0, tag, options.spin, options.max_sleep);
    const auto parsed = detail::parse_first(first.bytes, 0);
    R out{};
    std::optional<Failure> failure;
    detail::receive_rest(comm, 0, tag, parsed, options.chunk_bytes, [&](wire::Reader& r) {
      if (!decode_status(r, failure)) return;
      if constexpr (!std::is_same_v<R, Nothing>) {
        wire::decode(r, out);
        received(r, out);
      }
    });
    if (failure) failure->raise();
    return out;
  }

  /// Sends one request to rank 0 and decodes its reply as R.
  template <class R, class... A>
  R remote(Op op, const A&... args) {
    return remote_then<R>(
        op, [](wire::Reader&, R&) {}, args...);
  }

  // --- rank 0's serving threads ------------------------------------------------------------

  /// Runs fn on the group in one call; when that fails for a reason other than the transport,
  /// runs it on each request alone, so that each gets its own outcome.
  template <class F>
  void run_group(std::vector<Pending*> group, F&& fn) {
    if (group.empty()) return;
    try {
      ++calls;
      fn(group);
      return;
    } catch (...) {
      auto f = failure_of(std::current_exception());
      if (group.size() == 1 || transport_failure(f.code)) {
        for (auto* p : group) p->failure = f;
        return;
      }
    }
    for (auto* p : group) {
      try {
        ++calls;
        fn(std::vector<Pending*>{p});
      } catch (...) {
        p->failure = failure_of(std::current_exception());
      }
    }
  }

  template <class Pred>
  static std::vector<Pending*> select(std::vector<Pending>& batch, Pred pred) {
    std::vector<Pending*> out;
    for (auto& p : batch)
      if (!p.failure && pred(p.op)) out.push_back(&p);
    return out;
  }

  static Union union_of_group(const std::vector<Pending*>& g) {
    std::vector<const std::vector<Digest>*> lists;
    for (auto* p : g) lists.push_back(&p->digests);
    return union_of(lists);
  }

  /// Serves one round: saves in one save_many, then contains and loads each in one batched
  /// call, then the rest one by one.
  void serve_round(std::vector<Pending>& batch) {
    run_group(select(batch, is_save), [&](const std::vector<Pending*>& g) {
      std::vector<Entry> all;
      for (auto* p : g) all.insert(all.end(), p->entries.begin(), p->entries.end());
      if (all.size() == 1)
        real->save(all[0]);
      else
        real->save_many(all);
    });
    run_group(select(batch, is_contains), [&](const std::vector<Pending*>& g) {
      auto u = union_of_group(g);
      auto found = real->contains_many(u.digests);
      for (std::size_t i = 0; i < g.size(); ++i) {
        g[i]->found.clear();
        for (auto at : u.positions[i]) g[i]->found.push_back(found.at(at));
      }
    });
    run_group(select(batch, is_load), [&](const std::vector<Pending*>& g) {
      auto u = union_of_group(g);
      auto loaded = real->load_many(u.digests);
      for (std::size_t i = 0; i < g.size(); ++i) {
        g[i]->loaded.clear();
        for (auto at : u.positions[i]) g[i]->loaded.push_back(loaded.at(at));
      }
    });
    for (auto& p : batch) {
      if (p.failure || is_save(p.op) || is_load(p.op) || is_contains(p.op)) continue;
      run_group({&p}, [&](const std::vector<Pending*>&) {
        switch (p.op) {
          case Op::expand:
            p.digest = real->expand(p.prefix);
            break;
          case Op::shrink:
            p.text = real->shrink(p.digests.at(0));
            break;
          case Op::query:
            p.summaries = real->query(p.query);
            break;
          case Op::evict:
            p.flag = real->evict(p.digests.at(0));
            break;
          case Op::info:
            p.json = real->info();
            break;
          default:
            break;
        }
      });
    }
  }

  /// Receives one request whose first message was matched; a request that cannot be decoded
  /// becomes a Pending holding the failure (its stream fully received).
  Pending receive_request(MPI_Message& message, MPI_Status& status) {
    auto first = detail::receive_matched(message, status);
    Pending p;
    p.source = first.source;
    const auto parsed = detail::parse_first(first.bytes, kRequestHeader);
    p.op = static_cast<Op>(parsed.header[0]);
    std::uint32_t tag = 0;
    for (int i = 0; i < 4; ++i) tag |= static_cast<std::uint32_t>(parsed.header[4 + i]) << (8 * i);
    p.tag = static_cast<int>(tag);
    try {
      detail::receive_rest(comm, p.source, p.tag, parsed, options.chunk_bytes,
                           [&](wire::Reader& r) { decode_request(r, p); });
    } catch (...) {
      p.failure = failure_of(std::current_exception());
    }
    return p;
  }

  void reply(const Pending& p) {
    wire::Writer w;
    try {
      encode_reply(w, p);
    } catch (...) {
      w = wire::Writer();
      encode_failure(w, failure_of(std::current_exception()));
    }
    detail::send_body(comm, p.source, p.tag, p.tag, {}, w, options.chunk_bytes);
  }

  /// Takes every request waiting as one batch, polling until there is one (or the cache
  /// stops: then the batch is empty). Called with `receiving` held: one thread at a time polls.
  std::vector<Pending> take_batch() {
    detail::Poller poller(options.spin, options.max_sleep);
    auto seen = replied.load();
    std::vector<Pending> batch;
    while (!stop.load(std::memory_order_acquire)) {
      while (batch.size() < options.max_batch) {
        int found = 0;
        MPI_Message message;
        MPI_Status status;
        detail::check(MPI_Improbe(MPI_ANY_SOURCE, kTagRequest, comm, &found, &message, &status),
                      "MPI_Improbe");
        if (!found) break;
        batch.push_back(receive_request(message, status));
      }
      if (!batch.empty()) break;
      // A reply just sent usually brings the next request soon: spin again.
      if (const auto now = replied.load(); now != seen) {
        seen = now;
        poller = detail::Poller(options.spin, options.max_sleep);
      }
      poller.pause();
    }
    return batch;
  }

  /// Whether a batch holds only quick operations.
  static bool quick(const std::vector<Pending>& batch) {
    return std::ranges::all_of(batch, [](const Pending& p) { return is_quick(p.op); });
  }

  /// Whether another thread should poll while a batch is served: always, unless it is quick
  /// and quick rounds have taken less than overlap_after. Then a spare thread polling beside
  /// the round would only take a core from it, its caller and the server (measured:
  /// docs/performance.md, "MPI").
  bool overlap(bool quick_batch) const {
    return !quick_batch ||
           std::chrono::nanoseconds(quick_round_ns.load(std::memory_order_relaxed)) >=
               options.overlap_after;
  }

  /// Folds a quick round's duration into the moving average (weight 1/8).
  void note_quick_round(std::chrono::nanoseconds took) {
    const auto avg = quick_round_ns.load(std::memory_order_relaxed);
    quick_round_ns.store(avg + (took.count() - avg) / 8, std::memory_order_relaxed);
  }

  /// One of rank 0's serving threads: takes a batch, serves it (while another thread polls,
  /// see overlap), replies. So up to progress_threads rounds are in flight at once (the real
  /// cache is thread-safe and remote ones pipeline), and requests that arrive while every
  /// thread is busy are coalesced into the next round.
  void serve() {
    auto log = logger("quiver.mpi");
    std::unique_lock polling(receiving, std::defer_lock);
    while (!stop.load(std::memory_order_acquire)) {
      try {
        if (!polling.owns_lock()) polling.lock();
        auto batch = take_batch();
        if (batch.empty()) continue;
        served += batch.size();
        ++rounds;
        const bool quick_batch = quick(batch);
        if (overlap(quick_batch)) {
          polling.unlock();
          ++overlapped;
        }
        const auto start = detail::Clock::now();
        serve_round(batch);
        if (quick_batch) note_quick_round(detail::Clock::now() - start);
        for (const auto& p : batch) reply(p);
        ++replied;
      } catch (const std::exception& e) {
        log->error("rank 0 serving thread: {}", e.what());
      }
    }
  }

  // --- collective helpers -------------------------------------------------------------------

  /// Rank 0 passes body; every other rank decodes it (what: the step, for a timeout).
  void broadcast(const detail::Step& st, const wire::Writer* body, const std::string& what,
                 const std::function<void(wire::Reader&)>& decode) {
    detail::broadcast_body(st, 0, body, options.chunk_bytes, what, decode);
  }

  /// The lowest rank whose flag is false, or -1 when all are true (waiting_for: the step).
  int first_false(const detail::Step& st, bool flag, const std::string& waiting_for) {
    auto v = std::make_shared<std::array<int, 2>>();  // mine, lowest: heap, see finish_step
    (*v)[0] = flag ? INT_MAX : rank;
    MPI_Request r;
    detail::check(MPI_Iallreduce(&(*v)[0], &(*v)[1], 1, MPI_INT, MPI_MIN, comm, &r),
                  "MPI_Iallreduce");
    detail::finish_step(st, r, v, waiting_for);
    return (*v)[1] == INT_MAX ? -1 : (*v)[1];
  }

  /// Every rank throws InvalidArgument unless all passed the same digest.
  void check_same(const detail::Step& st, const Digest& d) {
    auto v = std::make_shared<std::array<std::uint8_t, 128>>();  // mine, lowest
    for (std::size_t i = 0; i < 32; ++i) {
      (*v)[i] = d.bytes()[i];
      (*v)[32 + i] = static_cast<std::uint8_t>(~d.bytes()[i]);
    }
    auto* low = v->data() + 64;
    MPI_Request r;
    detail::check(MPI_Iallreduce(v->data(), low, 64, MPI_UNSIGNED_CHAR, MPI_MIN, comm, &r),
                  "MPI_Iallreduce");
    detail::finish_step(st, r, v, "every rank to arrive (the check that all passed the same call)");
    for (std::size_t i = 0; i < 32; ++i)
      if (low[i] != static_cast<std::uint8_t>(~low[32 + i]))
        throw InvalidArgument(std::string(st.operation) + ": the ranks passed different calls",
                              kWhere);
  }

  /// Waits (by st's deadline) until every rank has arrived.
  void arrive(const detail::Step& st) {
    MPI_Request r;
    detail::check(MPI_Ibarrier(comm, &r), "MPI_Ibarrier");
    detail::finish_step(st, r, nullptr, "every rank to arrive");
  }

  /// Every rank sends its digests to rank 0, which makes one batched call on the union
  /// (op is load_many or contains_many) and sends each rank its part. First every rank
  /// arrives (by st's deadline); each later wait ends by the deadline too.
  template <class R>
  std::vector<R> collective_batch(const detail::Step& st, std::span<const Digest> mine) {
    const std::vector<Digest> own(mine.begin(), mine.end());
    arrive(st);
    const auto stall = options.collective_timeout;
    if (rank != 0) {
      wire::Writer w;
      wire::encode(w, own);
      detail::send_body(comm, 0, kTagCollective, kTagCollective, {}, w, options.chunk_bytes, stall);
      auto first = detail::receive_first_until(comm, 0, kTagCollective, options.spin,
                                               options.max_sleep, detail::deadline_after(stall));
      if (!first) detail::throw_step_timeout(st, "rank 0's answer");
      std::vector<R> out;
      std::optional<Failure> failure;
      detail::receive_rest(
          comm, 0, kTagCollective, detail::parse_first(first->bytes, 0), options.chunk_bytes,
          [&](wire::Reader& r) {
            if (decode_status(r, failure)) wire::decode(r, out);
          },
          stall);
      if (failure) failure->raise();
      return out;
    }
    std::vector<std::vector<Digest>> lists(static_cast<std::size_t>(size));
    lists[0] = own;
    std::optional<Failure> failure;
    for (int r = 1; r < size; ++r) {
      auto first = detail::receive_first_until(comm, r, kTagCollective, options.spin,
                                               options.max_sleep, detail::deadline_after(stall));
      if (!first) detail::throw_step_timeout(st, "the digests of rank " + std::to_string(r));
      try {
        detail::receive_rest(
            comm, r, kTagCollective, detail::parse_first(first->bytes, 0), options.chunk_bytes,
            [&](wire::Reader& rd) { wire::decode(rd, lists[static_cast<std::size_t>(r)]); }, stall);
      } catch (...) {
        failure = failure_of(std::current_exception());
      }
    }
    std::vector<const std::vector<Digest>*> ptrs;
    for (const auto& l : lists) ptrs.push_back(&l);
    const auto u = union_of(ptrs);
    std::vector<R> all;
    if (!failure) try {
        if constexpr (std::is_same_v<R, bool>)
          all = real->contains_many(u.digests);
        else
          all = real->load_many(u.digests);
      } catch (...) {
        failure = failure_of(std::current_exception());
      }
    auto part = [&](int r) {
      std::vector<R> out;
      for (auto at : u.positions[static_cast<std::size_t>(r)]) out.push_back(all.at(at));
      return out;
    };
    for (int r = 1; r < size; ++r) {
      wire::Writer w;
      std::vector<R> theirs;
      if (failure) {
        encode_failure(w, *failure);
      } else {
        theirs = part(r);
        w.u8(0);
        wire::encode(w, theirs);
      }
      detail::send_body(comm, r, kTagCollective, kTagCollective, {}, w, options.chunk_bytes, stall);
    }
    if (failure) failure->raise();
    return part(0);
  }

  /// The destructor's barrier, point to point (collective calls may no longer match up after
  /// a timeout): every rank tells rank 0 it is closing; rank 0 answers once all have, or at
  /// the deadline those that have (then CollectiveTimeout naming the missing ranks).
  void close_handshake() {
    if (size == 1) return;
    const auto st = step("~Cache");
    const auto deadline = detail::deadline_after(options.collective_timeout);
    if (rank != 0) {
      MPI_Request r;
      detail::check(MPI_Isend(nullptr, 0, MPI_BYTE, 0, kTagClose, comm, &r), "MPI_Isend");
      if (detail::receive_first_until(comm, 0, kTagClose, options.spin, options.max_sleep,
                                      deadline)) {
        detail::wait(r, options.spin, options.max_sleep, "MPI_Isend");  // rank 0 received it
        return;
      }
      MPI_Request_free(&r);  // an empty message: nothing to keep
      detail::throw_step_timeout(st, "rank 0 to report that every rank is closing");
    }
    std::vector<bool> arrived(static_cast<std::size_t>(size));
    int missing = size - 1;
    while (missing > 0) {
      auto m = detail::receive_first_until(comm, MPI_ANY_SOURCE, kTagClose, options.spin,
                                           options.max_sleep, deadline);
      if (!m) break;
      if (!arrived.at(static_cast<std::size_t>(m->source))) --missing;
      arrived[static_cast<std::size_t>(m->source)] = true;
    }
    std::string absent;
    for (int r = 1; r < size; ++r) {
      if (!arrived[static_cast<std::size_t>(r)]) {
        absent += (absent.empty() ? "" : ", ") + std::to_string(r);
        continue;
      }
      MPI_Request req;
      detail::check(MPI_Isend(nullptr, 0, MPI_BYTE, r, kTagClose, comm, &req), "MPI_Isend");
      MPI_Request_free(&req);
    }
    if (!absent.empty()) detail::throw_step_timeout(st, "ranks " + absent + " to close the cache");
  }
};

Cache::Cache(MPI_Comm comm, const OpenOptions& open, Options options)
    : Cache(
          comm, [open] { return quiver::open(open); }, options) {}

Cache::Cache(MPI_Comm comm, Opener opener, Options options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    throw InvalidArgument("MPI is not initialised (or already finalised)", kWhere);
  if (options.chunk_bytes < 4096 || options.chunk_bytes > static_cast<std::size_t>(INT_MAX))
    throw InvalidArgument("chunk_bytes must be between 4096 and INT_MAX", kWhere);
  if (options.progress_threads < 1 || options.max_batch < 1)
    throw InvalidArgument("progress_threads and max_batch must be at least 1", kWhere);
  m.options = options;
  detail::check(MPI_Comm_dup(comm, &m.comm), "MPI_Comm_dup");
  detail::check(MPI_Comm_set_errhandler(m.comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_Comm_rank(m.comm, &m.rank);
  MPI_Comm_size(m.comm, &m.size);

  // One reduction checks the thread level of every rank and that the options agree.
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  const auto chunk = static_cast<long long>(options.chunk_bytes);
  const auto mode = static_cast<long long>(options.mode);
  const auto st = m.step("quiver::mpi::Cache()");
  auto v = std::make_shared<std::array<long long, 10>>();  // mine, lowest: see finish_step
  *v = {level, chunk, -chunk, mode, -mode};
  const auto* low = v->data() + 5;
  MPI_Request request;
  detail::check(
      MPI_Iallreduce(v->data(), v->data() + 5, 5, MPI_LONG_LONG, MPI_MIN, m.comm, &request),
      "MPI_Iallreduce");
  // (m.collective remembers a timeout, so that the communicator is kept: see ~Impl.)
  m.collective(st.operation, [&](const detail::Step&) {
    detail::finish_step(st, request, v, "every rank to arrive");
    return 0;
  });
  if (low[1] != -low[2] || low[3] != -low[4])
    throw InvalidArgument("the ranks passed different Options (mode or chunk_bytes)", kWhere);
  if (options.mode == Mode::independent && low[0] < MPI_THREAD_MULTIPLE)
    throw InvalidArgument(
        std::string("independent use needs MPI_THREAD_MULTIPLE (rank 0 serves the other ranks "
                    "from progress threads), but MPI was initialised with ") +
            thread_level_name(static_cast<int>(low[0])) + (level == low[0] ? "" : " on some rank") +
            ": initialise with MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided), or "
            "build the cache with Mode::collective (collective operations on every rank, "
            "single-rank operations on rank 0 only)",
        kWhere);

  if (m.size == 1) {
    const char* tasks = std::getenv("SLURM_NTASKS");
    if (tasks && std::atoi(tasks) > 1)
      logger("quiver.mpi")
          ->warn(
              "SLURM_NTASKS={} but the communicator has 1 rank: the tasks were started as "
              "separate singletons (e.g. srun without --mpi=pmix for this MPI), so each opens "
              "its own connection; launch them as one MPI job",
              tasks);
  }

  // Rank 0 opens the real cache and tells everyone its configuration, or why it failed.
  wire::Writer w;
  std::optional<Failure> failure;
  if (m.rank == 0) {
    try {
      m.real = opener();
      m.config = m.real->config();
      m.read_only = m.real->read_only();
      w.u8(0);
      wire::encode(w, m.config);
      wire::encode(w, m.read_only);
    } catch (...) {
      m.real.reset();
      failure = failure_of(std::current_exception());
      w = wire::Writer();
      encode_failure(w, *failure);
    }
  }
  m.collective(st.operation, [&](const detail::Step&) {
    m.broadcast(st, m.rank == 0 ? &w : nullptr, "rank 0 to open the cache", [&](wire::Reader& r) {
      if (!decode_status(r, failure)) return;
      wire::decode(r, m.config);
      wire::decode(r, m.read_only);
    });
    return 0;
  });
  if (failure) failure->raise();

  if (m.rank == 0 && m.size > 1 && m.independent())
    for (std::size_t i = 0; i < options.progress_threads; ++i)
      m.progress.emplace_back([&m] { m.serve(); });
}

Cache::~Cache() {
  auto& m = *impl_;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) {
    logger("quiver.mpi")->error("quiver::mpi::Cache destroyed after MPI_Finalize");
  } else {
    try {
      m.close_handshake();
    } catch (const CollectiveTimeout& e) {
      logger("quiver.mpi")->error("closing: {}", e.what());
      std::lock_guard lock(m.broken_lock);
      if (m.broken.empty()) m.broken = e.message();
    } catch (const std::exception& e) {
      logger("quiver.mpi")->error("closing: {}", e.what());
    }
  }
  m.stop.store(true, std::memory_order_release);
  for (auto& t : m.progress) t.join();
}

void Cache::save(const Entry& entry) {
  if (impl_->here("save")) return impl_->real->save(entry);
  impl_->remote<Nothing>(Op::save, entry);
}

std::optional<Entry> Cache::load(const Digest& digest) {
  if (impl_->here("load")) return impl_->real->load(digest);
  return impl_->remote<std::optional<Entry>>(Op::load, digest);
}

std::optional<Value> Cache::load_value(const Digest& digest) {
  if (impl_->here("load_value")) return impl_->real->load_value(digest);
  return impl_->remote<std::optional<Value>>(Op::load_value, digest);
}

std::optional<Value> Cache::load_value_into(const Digest& digest, const ArrayDestinations& into) {
  if (impl_->here("load_value_into")) return impl_->real->load_value_into(digest, into);
  auto value = impl_->remote_then<std::optional<Value>>(
      Op::load_value,
      [&](wire::Reader& r, std::optional<Value>& v) {
        if (v) wire::receive_into(r, *v, into);
      },
      digest);
  if (value) place_arrays(*value, into);
  return value;
}

std::optional<Entry> Cache::load_into(const Digest& digest, const ArrayDestinations& into) {
  if (impl_->here("load_into")) return impl_->real->load_into(digest, into);
  auto entry = impl_->remote_then<std::optional<Entry>>(
      Op::load,
      [&](wire::Reader& r, std::optional<Entry>& e) {
        if (e) wire::receive_into(r, e->result, into);
      },
      digest);
  if (entry) place_arrays(entry->result, into);
  return entry;
}

bool Cache::contains(const Digest& digest) {
  if (impl_->here("contains")) return impl_->real->contains(digest);
  return impl_->remote<bool>(Op::contains, digest);
}

Digest Cache::expand(std::string_view prefix) {
  if (impl_->here("expand")) return impl_->real->expand(prefix);
  check_prefix(prefix, kWhere);
  return impl_->remote<Digest>(Op::expand, std::string(prefix));
}

std::string Cache::shrink(const Digest& digest) {
  if (impl_->here("shrink")) return impl_->real->shrink(digest);
  return impl_->remote<std::string>(Op::shrink, digest);
}

void Cache::query(const Query& q, const QuerySink& sink) {
  if (impl_->here("query")) return impl_->real->query(q, sink);
  for (const auto& s : impl_->remote<std::vector<EntrySummary>>(Op::query, q))
    if (!sink(s)) return;
}

bool Cache::evict(const Digest& digest) {
  if (impl_->here("evict")) return impl_->real->evict(digest);
  return impl_->remote<bool>(Op::evict, digest);
}

nlohmann::json Cache::config() const {
  return impl_->config;
}

nlohmann::json Cache::info() {
  auto j = impl_->here("info") ? impl_->real->info() : impl_->remote<nlohmann::json>(Op::info);
  const auto s = stats();
  j["mpi"] = {{"ranks", impl_->size},
              {"rank", impl_->rank},
              {"mode", impl_->independent() ? "independent" : "collective"},
              {"requests_served", s.requests},
              {"rounds", s.rounds},
              {"rounds_overlapped", s.overlapped},
              {"calls", s.calls}};
  return j;
}

bool Cache::read_only() const {
  return impl_->read_only;
}

std::vector<bool> Cache::contains_many(std::span<const Digest> digests) {
  if (impl_->here("contains_many")) return impl_->real->contains_many(digests);
  return impl_->remote<std::vector<bool>>(Op::contains_many,
                                          std::vector<Digest>(digests.begin(), digests.end()));
}

std::vector<std::optional<Entry>> Cache::load_many(std::span<const Digest> digests) {
  if (impl_->here("load_many")) return impl_->real->load_many(digests);
  return impl_->remote<std::vector<std::optional<Entry>>>(
      Op::load_many, std::vector<Digest>(digests.begin(), digests.end()));
}

void Cache::save_many(std::span<const Entry> entries) {
  if (impl_->here("save_many")) return impl_->real->save_many(entries);
  impl_->remote<Nothing>(Op::save_many, std::vector<Entry>(entries.begin(), entries.end()));
}

std::vector<std::optional<Entry>> Cache::load_many_collective(std::span<const Digest> digests) {
  return impl_->collective("load_many_collective", [&](const detail::Step& st) {
    return impl_->collective_batch<std::optional<Entry>>(st, digests);
  });
}

std::vector<bool> Cache::contains_many_collective(std::span<const Digest> digests) {
  return impl_->collective("contains_many_collective", [&](const detail::Step& st) {
    return impl_->collective_batch<bool>(st, digests);
  });
}

Cache::Lookup Cache::lookup_collective(const Call& call) {
  auto& m = *impl_;
  return m.collective("memoize_collective", [&](const detail::Step& st) {
    Lookup l;
    const auto t0 = std::chrono::steady_clock::now();
    l.memo.digest = call.digest();
    m.check_same(st, l.memo.digest);
    wire::Writer w;
    std::optional<Value> found;
    std::optional<Failure> failure;
    if (m.rank == 0) {
      try {
        found = m.real->load_value(l.memo.digest);
        w.u8(0);
        wire::encode(w, found);
      } catch (...) {
        failure = failure_of(std::current_exception());
        w = wire::Writer();
        encode_failure(w, *failure);
      }
    }
    m.broadcast(st, m.rank == 0 ? &w : nullptr, "rank 0's lookup", [&](wire::Reader& r) {
      if (decode_status(r, failure)) wire::decode(r, found);
    });
    if (failure) failure->raise();
    l.start = std::chrono::steady_clock::now();
    if (found) {
      l.memo.hit = true;
      l.memo.value = std::move(*found);
      l.memo.seconds = std::chrono::duration<double>(l.start - t0).count();
    }
    return l;
  });
}

Memo Cache::finish_collective(const Call& call, Lookup lookup, std::optional<Value> result,
                              std::exception_ptr failure) {
  auto& m = *impl_;
  return m.collective("memoize_collective", [&](const detail::Step& st) {
    const auto failed = m.first_false(st, !failure, "every rank to finish fn");
    if (failure) std::rethrow_exception(failure);
    if (failed >= 0)
      throw ServerError("memoize_collective: the computation threw on rank " +
                            std::to_string(failed) + "; nothing was saved",
                        kWhere);
    Memo memo = std::move(lookup.memo);
    memo.value = std::move(*result);
    memo.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - lookup.start).count();
    wire::Writer w;
    std::optional<Failure> saved;
    if (m.rank == 0) {
      try {
        Entry e;
        e.digest = memo.digest;
        e.call = call;
        e.result = memo.value;
        e.meta = Metadata::now(memo.seconds);
        if (!m.read_only) m.real->save(e);
        w.u8(0);
      } catch (...) {
        saved = failure_of(std::current_exception());
        w = wire::Writer();
        encode_failure(w, *saved);
      }
    }
    m.broadcast(st, m.rank == 0 ? &w : nullptr, "rank 0's save",
                [&](wire::Reader& r) { decode_status(r, saved); });
    if (saved) saved->raise();
    return memo;
  });
}

int Cache::rank() const noexcept {
  return impl_->rank;
}

int Cache::size() const noexcept {
  return impl_->size;
}

MPI_Comm Cache::comm() const noexcept {
  return impl_->comm;
}

const Options& Cache::options() const noexcept {
  return impl_->options;
}

quiver::Cache* Cache::local() noexcept {
  return impl_->real.get();
}

Cache::Stats Cache::stats() const {
  return {impl_->served.load(), impl_->rounds.load(), impl_->calls.load(),
          impl_->overlapped.load()};
}

}  // namespace quiver::mpi
