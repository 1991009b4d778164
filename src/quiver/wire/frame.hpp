// Frames: the unit of the quiver wire protocol (docs/protocol.md). A frame is a fixed
// 20-byte little-endian header (magic, type, flags, request id, payload length) followed by
// the payload. FrameReader and FrameWriter move frames over a file descriptor (a pipe, the
// ssh stdin/stdout pair, a socket); FrameReader also reads from memory (tests, fuzzing).
#pragma once

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
  /// Reads waiting past deadline throw TimeoutError; nullopt waits forever. A timeout
  /// between frames leaves the reader usable; one inside a frame breaks it.
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
  std::size_t read_upto(std::byte* dst, std::size_t n);
  void consume(std::size_t n) noexcept;

  int fd_ = -1;
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

/// Writes frames to a file descriptor (borrowed, not closed) with writev, resuming partial
/// writes. Not thread-safe: one thread writes a stream (see send_message).
class FrameWriter {
 public:
  /// Writes to fd; peer_limits are what the reading side accepts.
  explicit FrameWriter(int fd, WireLimits peer_limits = {});
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  /// Writes one frame whose payload is the concatenation of pieces (header.length is set
  /// from them). Throws InvalidArgument when the payload exceeds limits().max_frame,
  /// RemoteConnectionError when the peer has gone (EPIPE) or writing fails. SIGPIPE is
  /// held back while writing, so a closed pipe is an exception, not a signal.
  void write_frame(FrameHeader header, std::span<const std::span<const std::byte>> pieces);
  /// Bytes written to the stream so far.
  std::uint64_t offset() const noexcept { return offset_; }
  const WireLimits& limits() const noexcept { return limits_; }
  void set_limits(const WireLimits& peer_limits) noexcept { limits_ = peer_limits; }

 private:
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  WireLimits limits_;
};

}  // namespace quiver::wire
