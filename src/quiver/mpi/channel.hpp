// Moving encoded message bodies between ranks: point to point and by broadcast, in chunks
// that keep every MPI count an int, received straight into the buffers the decoder
// allocates. Internal header of the mpi layer (docs/mpi.md, "How it works").
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <quiver/wire/codec.hpp>
#include <span>
#include <string>
#include <vector>

namespace quiver::mpi::detail {

/// Body bytes carried in the first message of a stream, beside its header.
inline constexpr std::size_t kInlineBytes = 64 * 1024;
/// Size of the first message of a broadcast stream (every rank posts the same count).
inline constexpr std::size_t kBroadcastHead = 4096;
/// Limits for bodies between ranks of one job: the peers are trusted, values may be huge.
wire::WireLimits rank_limits();

/// Throws RemoteConnectionError naming what unless rc is MPI_SUCCESS.
void check(int rc, const char* what);

/// Waits by polling: spins (yielding the CPU) for `spin`, then sleeps in doubling steps up
/// to `max_sleep` but never longer than a tenth of the time waited so far, so an idle waiter
/// costs almost no CPU, a busy one answers quickly and a long wait ends at most ~10 % late.
class Poller {
 public:
  Poller(std::chrono::microseconds spin, std::chrono::microseconds max_sleep);
  /// Called after each unsuccessful poll.
  void pause();

 private:
  std::chrono::steady_clock::time_point start_;
  std::chrono::microseconds spin_, max_sleep_, sleep_{1};
};

using Clock = std::chrono::steady_clock;
/// When a wait of timeout that starts now ends; never (time_point::max) for zero or less.
Clock::time_point deadline_after(std::chrono::milliseconds timeout);

/// Completes request by polling it with a Poller.
void wait(MPI_Request& request, std::chrono::microseconds spin, std::chrono::microseconds max_sleep,
          const char* what);
/// As wait, but gives up at deadline: false then, with the request still active.
bool wait_until(MPI_Request& request, std::chrono::microseconds spin,
                std::chrono::microseconds max_sleep, const char* what, Clock::time_point deadline);

/// A step of a collective operation that waits for other ranks, with its deadline.
struct Step {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  std::chrono::microseconds spin{1000}, max_sleep{1000};
  std::chrono::milliseconds timeout{0};  ///< Options::collective_timeout; zero: none
  const char* operation = "";            ///< the public operation, e.g. "memoize_collective"
};
/// Completes request (a collective of step.comm) within step.timeout. Else the request is
/// abandoned: keep (the buffers MPI may still write) stays allocated for the life of the
/// process, and CollectiveTimeout names the operation and `waiting_for`.
void finish_step(const Step& step, MPI_Request& request, std::shared_ptr<void> keep,
                 const std::string& waiting_for);
/// The CollectiveTimeout of step, waiting for waiting_for.
[[noreturn]] void throw_step_timeout(const Step& step, const std::string& waiting_for);
/// Ends the job (MPI_Abort on comm) after logging why: a transfer into or out of memory the
/// caller owns stalled after every rank had arrived, so neither waiting nor returning is
/// safe. Called only when a rank vanished in the middle of a collective's data transfer.
[[noreturn]] void abort_stalled(MPI_Comm comm, const std::string& what);

/// An encoded body (preamble, skeleton, bulk pieces) seen as one byte sequence. The Writer
/// and the payloads it references must outlive it.
class Outgoing {
 public:
  explicit Outgoing(const wire::Writer& w);
  std::uint64_t size() const noexcept { return size_; }
  /// Bytes [offset, offset + n): a pointer into one piece when they lie in one, else
  /// gathered into scratch.
  const std::byte* bytes(std::uint64_t offset, std::size_t n,
                         std::vector<std::byte>& scratch) const;

 private:
  std::array<std::byte, wire::kPreambleSize> preamble_;
  std::vector<std::span<const std::byte>> pieces_;
  std::uint64_t size_ = 0;
};

/// Sends one MPI message of n bytes (n <= INT_MAX).
using PutChunk = std::function<void(const std::byte* data, int n)>;
/// Receives one MPI message of exactly n bytes into dst.
using GetChunk = std::function<void(std::byte* dst, int n)>;

/// The first message of a stream: header, u64 body size, then up to inline_max body bytes.
std::vector<std::byte> first_message(std::span<const std::byte> header, const Outgoing& body,
                                     std::size_t inline_max);
/// Sends the body bytes after the first `sent` ones, in messages of chunk bytes (the last
/// one shorter).
void put_rest(const Outgoing& body, std::uint64_t sent, std::size_t chunk, const PutChunk& put);

/// Decodes one body whose first bytes arrived in the first message and whose rest arrives in
/// chunk-sized messages through get. On any error the remaining chunks are still received
/// (and dropped), so the stream stays in step; then the error propagates.
void read_stream(std::span<const std::byte> inline_bytes, std::uint64_t body_size,
                 std::size_t chunk, const GetChunk& get,
                 const std::function<void(wire::Reader&)>& decode, std::string context);

/// Splits a first message into its header (header_size bytes), body size and inline bytes;
/// throws ProtocolError when it is too short.
struct FirstMessage {
  std::span<const std::byte> header;
  std::uint64_t body_size = 0;
  std::span<const std::byte> inline_bytes;
};
FirstMessage parse_first(std::span<const std::byte> message, std::size_t header_size);

/// Point to point: sends body to dest. The first message (header + inline bytes) goes with
/// first_tag, the rest with chunk_tag. With a stall timeout (inside a collective, once every
/// rank arrived) each message must complete within it, else abort_stalled.
void send_body(MPI_Comm comm, int dest, int first_tag, int chunk_tag,
               std::span<const std::byte> header, const wire::Writer& body, std::size_t chunk,
               std::chrono::milliseconds stall = {});

/// A received first message.
struct Received {
  int source = -1;
  std::vector<std::byte> bytes;
};
/// Receives a matched message whole.
Received receive_matched(MPI_Message& message, MPI_Status& status);
/// Polls until a message from source with tag arrives, then receives it whole.
Received receive_first(MPI_Comm comm, int source, int tag, std::chrono::microseconds spin,
                       std::chrono::microseconds max_sleep);
/// As receive_first, but nothing when deadline passes first (nothing is left pending then).
std::optional<Received> receive_first_until(MPI_Comm comm, int source, int tag,
                                            std::chrono::microseconds spin,
                                            std::chrono::microseconds max_sleep,
                                            Clock::time_point deadline);
/// Decodes the rest of a point-to-point body whose first message was first. stall: as for
/// send_body.
void receive_rest(MPI_Comm comm, int source, int chunk_tag, const FirstMessage& first,
                  std::size_t chunk, const std::function<void(wire::Reader&)>& decode,
                  std::chrono::milliseconds stall = {});

/// Broadcast from root, a step of a collective operation: root passes body (others nullptr);
/// every rank decodes it. Waiting for the first message, and (for a body longer than it) for
/// every rank to confirm it, ends at step.timeout with CollectiveTimeout naming what; the rest
/// of the body then flows between ranks that are all present (abort_stalled if it stalls).
void broadcast_body(const Step& step, int root, const wire::Writer* body, std::size_t chunk,
                    const std::string& what, const std::function<void(wire::Reader&)>& decode);

}  // namespace quiver::mpi::detail
