#include <sched.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/mpi/cache.hpp>
#include <quiver/mpi/channel.hpp>
#include <sstream>
#include <thread>

namespace quiver::mpi::detail {

namespace {

constexpr const char* kWhere = "quiver::mpi::Cache";

void store_u64(std::byte* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

std::uint64_t load_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

int as_int(std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw InvalidArgument("an MPI message of " + std::to_string(n) + " bytes exceeds INT_MAX",
                          kWhere);
  return static_cast<int>(n);
}

// Body bytes: the inline part from the first message, then chunk-sized messages. A read that
// covers a whole chunk receives it in place; smaller reads go through a staging buffer.
class ChunkSource final : public wire::BodySource {
 public:
  ChunkSource(std::span<const std::byte> inline_bytes, std::uint64_t body_size, std::size_t chunk,
              const GetChunk& get, std::string context)
      : staged_(inline_bytes),
        size_(body_size),
        pending_(body_size - inline_bytes.size()),
        chunk_(chunk),
        get_(get),
        context_(std::move(context)) {}

  void read(std::byte* dst, std::size_t n) override {
    if (n > left())
      throw ProtocolError("truncated body: " + std::to_string(n) + " bytes needed, " +
                              std::to_string(left()) + " left " + context_,
                          kWhere);
    while (n > 0) {
      if (pos_ < staged_.size()) {
        const auto take = std::min(n, staged_.size() - pos_);
        std::memcpy(dst, staged_.data() + pos_, take);
        pos_ += take;
        dst += take;
        n -= take;
        continue;
      }
      const auto next = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, pending_));
      if (n >= next) {  // a whole message lands in place
        get_(dst, static_cast<int>(next));
        pending_ -= next;
        dst += next;
        n -= next;
        continue;
      }
      buffer_.resize(next);
      get_(buffer_.data(), static_cast<int>(next));
      pending_ -= next;
      staged_ = buffer_;
      pos_ = 0;
    }
  }
  void expect_size(std::uint64_t n) override {
    if (n != size_)
      throw ProtocolError("the preamble declares a body of " + std::to_string(n) +
                              " bytes, the stream carries " + std::to_string(size_) + " " +
                              context_,
                          kWhere);
  }
  void finish() override {
    if (left() != 0)
      throw ProtocolError(std::to_string(left()) + " bytes left after the body " + context_,
                          kWhere);
  }
  std::string context() const override { return context_; }

  /// Receives and drops the messages not yet received.
  void drain() noexcept {
    try {
      while (pending_ > 0) {
        const auto next = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_, pending_));
        buffer_.resize(next);
        get_(buffer_.data(), static_cast<int>(next));
        pending_ -= next;
      }
    } catch (...) {
      pending_ = 0;
    }
  }

 private:
  std::uint64_t left() const noexcept { return (staged_.size() - pos_) + pending_; }

  std::span<const std::byte> staged_;  // received bytes not yet read: inline part or buffer_
  std::size_t pos_ = 0;
  std::uint64_t size_;
  std::uint64_t pending_;  // bytes in messages not yet received
  std::size_t chunk_;
  const GetChunk& get_;
  std::vector<std::byte> buffer_;
  std::string context_;
};

}  // namespace

wire::WireLimits rank_limits() {
  wire::WireLimits l;
  l.max_skeleton = 4ull << 30;
  l.max_bulk = std::numeric_limits<std::uint64_t>::max();
  return l;
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  throw RemoteConnectionError(std::string(what) + " failed: " + std::string(text, len), kWhere);
}

Poller::Poller(std::chrono::microseconds spin, std::chrono::microseconds max_sleep)
    : start_(std::chrono::steady_clock::now()), spin_(spin), max_sleep_(max_sleep) {}

void Poller::pause() {
  const auto elapsed = std::chrono::steady_clock::now() - start_;
  if (elapsed < spin_) {
    sched_yield();
    return;
  }
  // Never sleep more than a tenth of the time waited so far: a long wait ends at most about
  // 10 % late.
  const auto tenth = std::chrono::duration_cast<std::chrono::microseconds>(elapsed / 10);
  std::this_thread::sleep_for(
      std::min({sleep_, max_sleep_, std::max(tenth, std::chrono::microseconds(1))}));
  sleep_ = std::min(sleep_ * 2, max_sleep_);
}

Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return Clock::time_point::max();
  return Clock::now() + timeout;
}

void wait(MPI_Request& request, std::chrono::microseconds spin, std::chrono::microseconds max_sleep,
          const char* what) {
  wait_until(request, spin, max_sleep, what, Clock::time_point::max());
}

bool wait_until(MPI_Request& request, std::chrono::microseconds spin,
                std::chrono::microseconds max_sleep, const char* what, Clock::time_point deadline) {
  Poller poller(spin, max_sleep);
  for (;;) {
    int done = 0;
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return true;
    if (Clock::now() >= deadline) return false;
    poller.pause();
  }
}

void throw_step_timeout(const Step& step, const std::string& waiting_for) {
  std::ostringstream seconds;
  seconds << std::chrono::duration<double>(step.timeout).count();
  throw CollectiveTimeout(std::string(step.operation) + " on rank " + std::to_string(step.rank) +
                              ": waited " + seconds.str() +
                              " s (Options::collective_timeout) for " + waiting_for +
                              "; a rank that never arrives stalls every collective, so this "
                              "cache's collective operations are unusable now (independent "
                              "operations still work)",
                          kWhere);
}

void finish_step(const Step& step, MPI_Request& request, std::shared_ptr<void> keep,
                 const std::string& waiting_for) {
  if (wait_until(request, step.spin, step.max_sleep, step.operation, deadline_after(step.timeout)))
    return;
  // A collective request cannot be cancelled or freed (MPI 4.0, 3.7.3), and MPI writes its
  // buffers when the missing rank arrives: they stay allocated, reachable, for good.
  static std::mutex lock;
  static auto* abandoned = new std::vector<std::pair<MPI_Request, std::shared_ptr<void>>>();
  {
    std::lock_guard guard(lock);
    abandoned->emplace_back(request, std::move(keep));
  }
  throw_step_timeout(step, waiting_for);
}

void abort_stalled(MPI_Comm comm, const std::string& what) {
  logger("quiver.mpi")
      ->critical(
          "{}: a transfer between ranks that had all arrived stalled past "
          "Options::collective_timeout (a rank vanished mid-transfer); MPI may still "
          "use the buffers, so the job cannot go on: MPI_Abort",
          what);
  MPI_Abort(comm, 70);
  std::abort();
}

Outgoing::Outgoing(const wire::Writer& w) : preamble_(w.preamble()) {
  pieces_.emplace_back(preamble_);
  pieces_.emplace_back(reinterpret_cast<const std::byte*>(w.skeleton().data()),
                       w.skeleton().size());
  for (const auto& p : w.bulk_pieces()) pieces_.push_back(p);
  std::erase_if(pieces_, [](const auto& p) { return p.empty(); });
  for (const auto& p : pieces_) size_ += p.size();
}

const std::byte* Outgoing::bytes(std::uint64_t offset, std::size_t n,
                                 std::vector<std::byte>& scratch) const {
  std::uint64_t start = 0;
  std::size_t i = 0;
  while (i < pieces_.size() && start + pieces_[i].size() <= offset) start += pieces_[i++].size();
  if (i < pieces_.size() && offset - start + n <= pieces_[i].size())
    return pieces_[i].data() + (offset - start);
  scratch.resize(n);
  std::size_t filled = 0;
  for (; filled < n && i < pieces_.size(); ++i) {
    const auto skip = static_cast<std::size_t>(offset + filled - start);
    const auto take = std::min(n - filled, pieces_[i].size() - skip);
    std::memcpy(scratch.data() + filled, pieces_[i].data() + skip, take);
    filled += take;
    start += pieces_[i].size();
  }
  return scratch.data();
}

std::vector<std::byte> first_message(std::span<const std::byte> header, const Outgoing& body,
                                     std::size_t inline_max) {
  const auto inline_n = static_cast<std::size_t>(std::min<std::uint64_t>(inline_max, body.size()));
  std::vector<std::byte> m(header.size() + 8 + inline_n);
  std::memcpy(m.data(), header.data(), header.size());
  store_u64(m.data() + header.size(), body.size());
  std::vector<std::byte> scratch;
  if (inline_n > 0)
    std::memcpy(m.data() + header.size() + 8, body.bytes(0, inline_n, scratch), inline_n);
  return m;
}

void put_rest(const Outgoing& body, std::uint64_t sent, std::size_t chunk, const PutChunk& put) {
  std::vector<std::byte> scratch;
  while (sent < body.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, body.size() - sent));
    put(body.bytes(sent, n, scratch), as_int(n));
    sent += n;
  }
}

void read_stream(std::span<const std::byte> inline_bytes, std::uint64_t body_size,
                 std::size_t chunk, const GetChunk& get,
                 const std::function<void(wire::Reader&)>& decode, std::string context) {
  ChunkSource source(inline_bytes, body_size, chunk, get, std::move(context));
  try {
    wire::read_body(source, rank_limits(), decode);
  } catch (...) {
    source.drain();
    throw;
  }
}

FirstMessage parse_first(std::span<const std::byte> message, std::size_t header_size) {
  if (message.size() < header_size + 8)
    throw ProtocolError(
        "a message of " + std::to_string(message.size()) + " bytes is too short for its header",
        kWhere);
  FirstMessage f;
  f.header = message.first(header_size);
  f.body_size = load_u64(message.data() + header_size);
  f.inline_bytes = message.subspan(header_size + 8);
  if (f.inline_bytes.size() > f.body_size)
    throw ProtocolError("a first message carries more bytes than its body", kWhere);
  return f;
}

void send_body(MPI_Comm comm, int dest, int first_tag, int chunk_tag,
               std::span<const std::byte> header, const wire::Writer& body, std::size_t chunk,
               std::chrono::milliseconds stall) {
  const Outgoing out(body);
  const auto first = first_message(header, out, kInlineBytes);
  auto send = [&](const std::byte* data, int n, int tag) {
    if (stall.count() <= 0) {
      check(MPI_Send(data, n, MPI_BYTE, dest, tag, comm), "MPI_Send");
      return;
    }
    MPI_Request r;
    check(MPI_Isend(data, n, MPI_BYTE, dest, tag, comm, &r), "MPI_Isend");
    if (!wait_until(r, std::chrono::microseconds(1000), std::chrono::microseconds(1000),
                    "MPI_Isend", deadline_after(stall)))
      abort_stalled(comm,
                    "sending " + std::to_string(n) + " bytes to rank " + std::to_string(dest));
  };
  send(first.data(), as_int(first.size()), first_tag);
  put_rest(out, first.size() - header.size() - 8, chunk,
           [&](const std::byte* data, int n) { send(data, n, chunk_tag); });
}

Received receive_matched(MPI_Message& message, MPI_Status& status) {
  int count = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
  Received r;
  r.source = status.MPI_SOURCE;
  r.bytes.resize(static_cast<std::size_t>(count));
  check(MPI_Mrecv(r.bytes.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE), "MPI_Mrecv");
  return r;
}

std::optional<Received> receive_first_until(MPI_Comm comm, int source, int tag,
                                            std::chrono::microseconds spin,
                                            std::chrono::microseconds max_sleep,
                                            Clock::time_point deadline) {
  Poller poller(spin, max_sleep);
  for (;;) {
    int found = 0;
    MPI_Message message;
    MPI_Status status;
    check(MPI_Improbe(source, tag, comm, &found, &message, &status), "MPI_Improbe");
    if (found) return receive_matched(message, status);
    if (Clock::now() >= deadline) return std::nullopt;
    poller.pause();
  }
}

Received receive_first(MPI_Comm comm, int source, int tag, std::chrono::microseconds spin,
                       std::chrono::microseconds max_sleep) {
  return *receive_first_until(comm, source, tag, spin, max_sleep, Clock::time_point::max());
}

void receive_rest(MPI_Comm comm, int source, int chunk_tag, const FirstMessage& first,
                  std::size_t chunk, const std::function<void(wire::Reader&)>& decode,
                  std::chrono::milliseconds stall) {
  const GetChunk get = [&](std::byte* dst, int n) {
    if (stall.count() <= 0) {
      check(MPI_Recv(dst, n, MPI_BYTE, source, chunk_tag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
      return;
    }
    MPI_Request r;
    check(MPI_Irecv(dst, n, MPI_BYTE, source, chunk_tag, comm, &r), "MPI_Irecv");
    if (!wait_until(r, std::chrono::microseconds(1000), std::chrono::microseconds(1000),
                    "MPI_Irecv", deadline_after(stall)))
      abort_stalled(
          comm, "receiving " + std::to_string(n) + " bytes from rank " + std::to_string(source));
  };
  read_stream(first.inline_bytes, first.body_size, chunk, get, decode,
              "in a message from rank " + std::to_string(source));
}

void broadcast_body(const Step& step, int root, const wire::Writer* body, std::size_t chunk,
                    const std::string& what, const std::function<void(wire::Reader&)>& decode) {
  // Heap buffers: an abandoned step leaves them to MPI (finish_step).
  auto head = std::make_shared<std::vector<std::byte>>(kBroadcastHead);
  std::optional<Outgoing> out;
  if (body) {
    out.emplace(*body);
    auto first = first_message({}, *out, kBroadcastHead - 8);
    std::memcpy(head->data(), first.data(), first.size());
  }
  MPI_Request request;
  check(
      MPI_Ibcast(head->data(), static_cast<int>(head->size()), MPI_BYTE, root, step.comm, &request),
      "MPI_Ibcast");
  finish_step(step, request, head, what);
  const auto size = load_u64(head->data());
  const auto inline_n = static_cast<std::size_t>(std::min<std::uint64_t>(kBroadcastHead - 8, size));
  if (size > inline_n) {
    // Every rank confirms it has the head before the body flows, so the body flows only
    // between ranks that are all present.
    auto flags = std::make_shared<std::array<int, 2>>();
    (*flags)[0] = 1;
    check(MPI_Iallreduce(&(*flags)[0], &(*flags)[1], 1, MPI_INT, MPI_MIN, step.comm, &request),
          "MPI_Iallreduce");
    finish_step(step, request, flags, "every rank to confirm " + what);
  }
  auto bcast = [&](std::byte* data, int n) {
    MPI_Request r;
    check(MPI_Ibcast(data, n, MPI_BYTE, root, step.comm, &r), "MPI_Ibcast");
    if (!wait_until(r, step.spin, step.max_sleep, "MPI_Ibcast", deadline_after(step.timeout)))
      abort_stalled(step.comm, std::string(step.operation) + ": the body of " + what);
  };
  if (out) {
    put_rest(*out, inline_n, chunk,
             [&](const std::byte* data, int n) { bcast(const_cast<std::byte*>(data), n); });
    return;
  }
  const GetChunk get = [&](std::byte* dst, int n) { bcast(dst, n); };
  read_stream(std::span<const std::byte>(*head).subspan(8, inline_n), size, chunk, get, decode,
              "in a broadcast from rank " + std::to_string(root));
}

}  // namespace quiver::mpi::detail
