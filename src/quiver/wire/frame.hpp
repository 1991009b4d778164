// Frames: the unit of the quiver wire protocol (docs/protocol.md). A frame is a fixed
// 20-byte little-endian header (magic, type, flags, request id, payload length) followed by
// the payload. FrameReader and FrameWriter move frames over a file descriptor (a pipe, the
// ssh stdin/stdout pair, a socket); FrameReader also reads from memory (tests, fuzzing).
#pragma once

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace quiver::wire {

/// The four bytes every frame starts with. They never change between protocol versions.
inline constexpr std::array<std::byte, 4> kMagic{std::byte{'Q'}, std::byte{'V'}, std::byte{'R'},
                                                 std::byte{'W'}};
inline constexpr std::size_t kHeaderSize = 20;
/// Flag: another frame of the same message follows this one.
inline constexpr std::uint16_t kFlagMore = 0x0001;
/// Every peer accepts frames of at least this payload size (the greeting fits in it).
inline constexpr std::uint32_t kMinFrameLimit = 64 * 1024;

/// What one side accepts from its peer. A reader enforces its own limits; a writer obeys
/// the limits its peer announced (greeting or hello).
struct WireLimits {
  std::uint32_t max_frame = 4u << 20;        ///< payload bytes of one frame, >= kMinFrameLimit
  std::uint64_t max_skeleton = 64ull << 20;  ///< encoded bytes of a message minus its bulk
  std::uint64_t max_bulk = 64ull << 30;      ///< array, bytes and blob payload bytes of a message

  friend bool operator==(const WireLimits&, const WireLimits&) = default;
};

struct FrameHeader {
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint64_t request_id = 0;
  std::uint32_t length = 0;  ///< payload bytes

  bool more() const noexcept { return (flags & kFlagMore) != 0; }
  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

/// The 20 header bytes of h.
std::array<std::byte, kHeaderSize> encode_header(const FrameHeader& h) noexcept;
/// Parses header bytes read at stream offset `offset`; throws ProtocolError (naming the
/// field and its stream offset) for a wrong magic, unknown flags or a length over max_frame.
FrameHeader decode_header(std::span<const std::byte, kHeaderSize> bytes, std::uint64_t offset,
                          std::uint32_t max_frame);

/// A whole frame held in memory.
struct Frame {
  FrameHeader header;
  std::vector<std::byte> payload;
};

using Deadline = std::chrono::steady_clock::time_point;

/// Reads frames from a file descriptor (borrowed, not closed) or from a memory span. Reads
/// are buffered; large payload reads go straight into the caller's memory.
class FrameReader {
 public:
  /// Reads from fd, which the caller keeps open for the life of the reader.
  explicit FrameReader(int fd, WireLimits limits = {});
  /// Reads the bytes of memory, which the caller keeps alive; their end is the end of stream.
  explicit FrameReader(std::span<const std::byte> memory, WireLimits limits = {});
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  /// The next frame's header, skipping what is left of the current payload; nullopt when the
  /// stream ends cleanly before a frame. Throws ProtocolError for a bad or truncated header,
  /// TimeoutError when the deadline passes, RemoteConnectionError when reading fails.
  std::optional<FrameHeader> next_header();
  /// Reads n bytes (at most payload_left()) of the current payload into dst.
  void read_payload(std::byte* dst, std::size_t n);
  /// Discards n bytes (at most payload_left()) of the current payload.
  void skip_payload(std::size_t n);
  /// Payload bytes of the current frame not yet read.
  std::uint32_t payload_left() const noexcept { return payload_left_; }
  /// The next whole frame, allocated after its length is checked; nullopt at a clean end.
  std::optional<Frame> read_frame();

  /// Skips bytes until the stream continues with pattern; returns the skipped bytes. Throws
  /// ProtocolError when more than max_skip bytes come first or the stream ends.
  std::string skip_until(std::span<const std::byte> pattern, std::size_t max_skip);

  /// Bytes consumed from the stream so far.
  std::uint64_t offset() const noexcept { return offset_; }
  /// True when bytes read from the fd are waiting in the buffer (the next read needs no
  /// system call).
  bool has_buffered() const noexcept { return buffered() > 0; }
  /// True when, between frames, a whole frame that ends its message (no kFlagMore) waits in
  /// the buffer: reading the next message needs no system call and cannot block.
  bool has_buffered_message() const noexcept;
  /// Reads waiting past deadline throw TimeoutError; nullopt waits forever. A timeout
  /// between frames leaves the reader usable; one inside a frame breaks it. On a pipe each
  /// waiting read polls first; on a socket it blocks with a receive timeout (SO_RCVTIMEO,
  /// set by the reader) no longer than the time left.
  void set_deadline(std::optional<Deadline> deadline) noexcept { deadline_ = deadline; }
  const WireLimits& limits() const noexcept { return limits_; }
  void set_limits(const WireLimits& limits) noexcept { limits_ = limits; }
  /// Makes every later read throw ProtocolError naming why (the stream lost its framing).
  void mark_broken(std::string why);
  bool broken() const noexcept { return !broken_.empty(); }

 private:
  std::size_t buffered() const noexcept { return end_ - pos_; }
  void check_usable() const;
  bool fill();
  std::size_t read_fd(std::byte* dst, std::size_t n);
  void wait_readable();
  bool receive_timeout_within(std::chrono::milliseconds left);
  std::size_t read_upto(std::byte* dst, std::size_t n);
  void consume(std::size_t n) noexcept;

  int fd_ = -1;
  bool socket_ = false;                          // fd_ is a socket: reads wait with SO_RCVTIMEO
  std::chrono::milliseconds receive_timeout_{};  // its SO_RCVTIMEO, 0 while unset
  std::vector<std::byte> storage_;
  const std::byte* data_ = nullptr;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t frame_offset_ = 0;
  std::uint32_t payload_length_ = 0;
  std::uint32_t payload_left_ = 0;
  std::optional<Deadline> deadline_;
  WireLimits limits_;
  std::string broken_;
};

/// Holds SIGPIPE back on the calling thread while alive, so that writing to a closed pipe
/// reports EPIPE instead of killing the process; a SIGPIPE raised meanwhile is consumed.
/// FrameWriter holds it around each write; a thread that writes often (a server loop) may
/// hold it for longer, which spares the two mask changes per write (holds nest).
class SigpipeHold {
 public:
  SigpipeHold() noexcept;
  ~SigpipeHold();
  SigpipeHold(const SigpipeHold&) = delete;
  SigpipeHold& operator=(const SigpipeHold&) = delete;

 private:
  bool outermost_ = false;
  bool was_blocked_ = false;
};

/// Writes frames to a file descriptor (borrowed, not closed) with writev (sendmsg with
/// MSG_NOSIGNAL on a socket), resuming partial writes. Not thread-safe: one thread writes a stream
/// (see send_message).
///
/// Gathering (set_gather): frames with small payloads are copied into a buffer instead of
/// written, so that many small messages leave in one system call on flush(); a large frame
/// flushes the buffer and is written straight from its pieces. A writer that gathers must
/// be flushed before its peer is expected to answer.
class FrameWriter {
 public:
  /// Payloads up to this size are gathered; larger ones are written from their pieces.
  static constexpr std::size_t kGatherFrame = 16 * 1024;

  /// Writes to fd; peer_limits are what the reading side accepts.
  explicit FrameWriter(int fd, WireLimits peer_limits = {});
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  /// Writes one frame whose payload is the concatenation of pieces (header.length is set
  /// from them), or gathers it. Throws InvalidArgument when the payload exceeds
  /// limits().max_frame, RemoteConnectionError when the peer has gone (EPIPE) or writing
  /// fails. SIGPIPE is held back while writing, so a closed pipe is an exception, not a
  /// signal. Blocks until written, also on a non-blocking fd.
  void write_frame(FrameHeader header, std::span<const std::span<const std::byte>> pieces);
  /// Gathers small frames from now on (on) or writes each frame at once (off, the default;
  /// turning it off flushes).
  void set_gather(bool on);
  /// Writes every gathered byte, blocking until done. Throws as write_frame.
  void flush();
  /// Writes what the fd takes now without waiting (fd must be O_NONBLOCK); returns true
  /// when nothing gathered is left. Throws as write_frame.
  bool flush_now();
  /// True when gathered bytes wait for a flush.
  bool has_gathered() const noexcept { return sent_ < gathered_.size(); }
  /// Bytes written to (or gathered for) the stream so far.
  std::uint64_t offset() const noexcept { return offset_; }
  const WireLimits& limits() const noexcept { return limits_; }
  void set_limits(const WireLimits& peer_limits) noexcept { limits_ = peer_limits; }

 private:
  /// Writes iov; with wait false, returns early when the fd is full. Returns bytes written.
  std::size_t write_iov(std::vector<iovec>& iov, bool wait);
  bool write_gathered(bool wait);

  int fd_ = -1;
  bool socket_ = false;  // fd_ is a socket: written with MSG_NOSIGNAL, no SIGPIPE guard
  std::uint64_t offset_ = 0;
  WireLimits limits_;
  bool gather_ = false;
  std::vector<std::byte> gathered_;
  std::size_t sent_ = 0;  // bytes of gathered_ already written
};

}  // namespace quiver::wire
