// Moving encoded message bodies between ranks: point to point and by broadcast, in chunks
// that keep every MPI count an int, received straight into the buffers the decoder
// allocates. Internal header of the mpi layer (docs/mpi.md, "How it works").
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
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

/// Completes request by polling it with a Poller.
void wait(MPI_Request& request, std::chrono::microseconds spin, std::chrono::microseconds max_sleep,
          const char* what);

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
/// first_tag, the rest with chunk_tag.
void send_body(MPI_Comm comm, int dest, int first_tag, int chunk_tag,
               std::span<const std::byte> header, const wire::Writer& body, std::size_t chunk);

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
/// Decodes the rest of a point-to-point body whose first message was first.
void receive_rest(MPI_Comm comm, int source, int chunk_tag, const FirstMessage& first,
                  std::size_t chunk, const std::function<void(wire::Reader&)>& decode);

/// Broadcast from root: root passes body (others nullptr); every rank decodes it.
void broadcast_body(MPI_Comm comm, int root, const wire::Writer* body, std::size_t chunk,
                    std::chrono::microseconds spin, std::chrono::microseconds max_sleep,
                    const std::function<void(wire::Reader&)>& decode);

}  // namespace quiver::mpi::detail
