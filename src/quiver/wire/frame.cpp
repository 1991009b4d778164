#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <quiver/core/errors.hpp>
#include <quiver/wire/endian.hpp>
#include <quiver/wire/frame.hpp>

namespace quiver::wire {

namespace {

constexpr std::size_t kReadBufferSize = 64 * 1024;
constexpr const char* kFrameReaderWhere = "quiver::wire::FrameReader";
constexpr const char* kFrameWriterWhere = "quiver::wire::FrameWriter";

std::string hex_bytes(std::span<const std::byte> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (auto b : bytes) {
    auto v = static_cast<unsigned>(b);
    out += kDigits[v >> 4];
    out += kDigits[v & 15];
  }
  return out;
}

[[noreturn]] void fail(const std::string& what, std::uint64_t offset) {
  throw ProtocolError(what + " at stream offset " + std::to_string(offset), kFrameReaderWhere);
}

bool is_socket(int fd) noexcept {
  struct stat st {};
  return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

thread_local int t_sigpipe_holds = 0;        // SigpipeHolds alive on this thread
thread_local bool t_sigpipe_raised = false;  // a write under them raised SIGPIPE

}  // namespace

std::array<std::byte, kHeaderSize> encode_header(const FrameHeader& h) noexcept {
  std::array<std::byte, kHeaderSize> out{};
  std::copy(kMagic.begin(), kMagic.end(), out.begin());
  store_le(out.data() + 4, h.type);
  store_le(out.data() + 6, h.flags);
  store_le(out.data() + 8, h.request_id);
  store_le(out.data() + 16, h.length);
  return out;
}

FrameHeader decode_header(std::span<const std::byte, kHeaderSize> bytes, std::uint64_t offset,
                          std::uint32_t max_frame) {
  if (!std::equal(kMagic.begin(), kMagic.end(), bytes.begin()))
    fail("bad frame magic 0x" + hex_bytes(bytes.first<4>()) + " (expected 0x" + hex_bytes(kMagic) +
             ", \"QVRW\")",
         offset);
  FrameHeader h;
  h.type = load_le<std::uint16_t>(bytes.data() + 4);
  h.flags = load_le<std::uint16_t>(bytes.data() + 6);
  h.request_id = load_le<std::uint64_t>(bytes.data() + 8);
  h.length = load_le<std::uint32_t>(bytes.data() + 16);
  if ((h.flags & ~kFlagMore) != 0) {
    char flags[8];
    std::snprintf(flags, sizeof flags, "0x%04x", static_cast<unsigned>(h.flags));
    fail(std::string("unknown frame flags ") + flags + " (only bit 0 is defined)", offset + 6);
  }
  if (h.length > max_frame)
    fail("frame payload length " + std::to_string(h.length) + " exceeds the maximum of " +
             std::to_string(max_frame),
         offset + 16);
  return h;
}

SigpipeHold::SigpipeHold() noexcept : outermost_(t_sigpipe_holds++ == 0) {
  if (!outermost_) return;  // the outermost hold masks, and restores, for all
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  was_blocked_ = sigismember(&old, SIGPIPE) == 1;
  t_sigpipe_raised = false;
}

SigpipeHold::~SigpipeHold() {
  --t_sigpipe_holds;
  if (!outermost_ || was_blocked_) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (t_sigpipe_raised) {
    timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

// ---------------------------------------------------------------------------------------------
// FrameReader

FrameReader::FrameReader(int fd, WireLimits limits)
    : fd_(fd),
      socket_(is_socket(fd)),
      storage_(kReadBufferSize),
      data_(storage_.data()),
      limits_(limits) {}

FrameReader::FrameReader(std::span<const std::byte> memory, WireLimits limits)
    : data_(memory.data()), end_(memory.size()), limits_(limits) {}

bool FrameReader::has_buffered_message() const noexcept {
  if (payload_left_ > 0 || buffered() < kHeaderSize) return false;
  const auto* h = data_ + pos_;
  const auto flags = load_le<std::uint16_t>(h + 6);
  const auto length = load_le<std::uint32_t>(h + 16);
  return (flags & kFlagMore) == 0 && buffered() - kHeaderSize >= length;
}

void FrameReader::mark_broken(std::string why) {
  if (broken_.empty()) broken_ = why.empty() ? "broken" : std::move(why);
}

void FrameReader::check_usable() const {
  if (!broken_.empty())
    throw ProtocolError("the stream is unusable after an earlier error: " + broken_,
                        kFrameReaderWhere);
}

void FrameReader::consume(std::size_t n) noexcept {
  pos_ += n;
  offset_ += n;
}

void FrameReader::wait_readable() {
  if (!deadline_) return;
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(*deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw TimeoutError("no data from the peer before the deadline (stream offset " +
                             std::to_string(offset_) + ")",
                         kFrameReaderWhere);
    if (socket_ && receive_timeout_within(left)) return;
    pollfd p{fd_, POLLIN, 0};
    int timeout = static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX));
    int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return;
    if (rc < 0 && errno != EINTR)
      throw RemoteConnectionError(std::string("cannot wait for the peer: ") + std::strerror(errno),
                                  kFrameReaderWhere);
  }
}

bool FrameReader::receive_timeout_within(std::chrono::milliseconds left) {
  // A blocking read that gives up after at most `left` stands in for a poll before it: one
  // system call per read instead of two. The timeout is changed only when it is too long
  // for the time left (to half of that, so a long wait changes it a few times at most).
  if (receive_timeout_.count() > 0 && receive_timeout_ <= left) return true;
  const auto t = std::max(left / 2, std::chrono::milliseconds(1));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  if (::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return false;
  receive_timeout_ = t;
  return true;
}

std::size_t FrameReader::read_fd(std::byte* dst, std::size_t n) {
  for (;;) {
    wait_readable();
    ssize_t got = ::read(fd_, dst, n);
    if (got >= 0) return static_cast<std::size_t>(got);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd_, POLLIN, 0};
      if (!deadline_ && ::poll(&p, 1, -1) < 0 && errno != EINTR)
        throw RemoteConnectionError(
            std::string("cannot wait for the peer: ") + std::strerror(errno), kFrameReaderWhere);
      continue;
    }
    throw RemoteConnectionError(std::string("cannot read from the peer: ") + std::strerror(errno),
                                kFrameReaderWhere);
  }
}

bool FrameReader::fill() {
  if (fd_ < 0) return false;
  if (pos_ > 0) {
    std::memmove(storage_.data(), storage_.data() + pos_, buffered());
    end_ -= pos_;
    pos_ = 0;
  }
  if (end_ == storage_.size()) return true;
  auto got = read_fd(storage_.data() + end_, storage_.size() - end_);
  end_ += got;
  return got > 0;
}

std::size_t FrameReader::read_upto(std::byte* dst, std::size_t n) {
  std::size_t done = 0;
  while (done < n) {
    if (buffered() == 0) {
      if (fd_ >= 0 && n - done >= storage_.size()) {
        auto got = read_fd(dst + done, n - done);
        if (got == 0) break;
        done += got;
        offset_ += got;
        continue;
      }
      if (!fill()) break;
    }
    auto k = std::min(buffered(), n - done);
    std::memcpy(dst + done, data_ + pos_, k);
    consume(k);
    done += k;
  }
  return done;
}

std::optional<FrameHeader> FrameReader::next_header() {
  check_usable();
  if (payload_left_ > 0) skip_payload(payload_left_);
  std::array<std::byte, kHeaderSize> bytes;
  auto start = offset_;
  std::size_t got = 0;
  try {
    got = read_upto(bytes.data(), bytes.size());
  } catch (const TimeoutError&) {
    if (offset_ != start) mark_broken("a timeout inside a frame header");
    throw;
  }
  if (got == 0) return std::nullopt;
  if (got < kHeaderSize) {
    mark_broken("truncated frame header");
    fail("truncated frame header: the stream ends after " + std::to_string(got) + " of " +
             std::to_string(kHeaderSize) + " bytes",
         start);
  }
  FrameHeader h;
  try {
    h = decode_header(bytes, start, limits_.max_frame);
  } catch (const ProtocolError& e) {
    mark_broken(e.message());
    throw;
  }
  frame_offset_ = start;
  payload_length_ = payload_left_ = h.length;
  return h;
}

void FrameReader::read_payload(std::byte* dst, std::size_t n) {
  check_usable();
  if (n > payload_left_)
    throw InvalidArgument("reading " + std::to_string(n) + " bytes from a frame with " +
                              std::to_string(payload_left_) + " left",
                          kFrameReaderWhere);
  std::size_t got = 0;
  try {
    got = read_upto(dst, n);
  } catch (const TimeoutError&) {
    mark_broken("a timeout inside a frame payload");
    throw;
  }
  payload_left_ -= static_cast<std::uint32_t>(got);
  if (got < n) {
    mark_broken("truncated frame");
    fail("truncated frame: the stream ends " + std::to_string(payload_length_ - payload_left_) +
             " bytes into a payload of " + std::to_string(payload_length_) +
             " bytes (frame at stream offset " + std::to_string(frame_offset_) + ")",
         offset_);
  }
}

void FrameReader::skip_payload(std::size_t n) {
  std::array<std::byte, 4096> sink;
  while (n > 0) {
    auto k = std::min(n, sink.size());
    if (buffered() >= k) {  // fast path: no copy needed
      check_usable();
      if (k > payload_left_) break;
      consume(k);
      payload_left_ -= static_cast<std::uint32_t>(k);
    } else {
      read_payload(sink.data(), k);
    }
    n -= k;
  }
  if (n > 0) throw InvalidArgument("skipping past the end of a frame payload", kFrameReaderWhere);
}

std::optional<Frame> FrameReader::read_frame() {
  auto h = next_header();
  if (!h) return std::nullopt;
  Frame f{*h, std::vector<std::byte>(h->length)};
  read_payload(f.payload.data(), f.payload.size());
  return f;
}

std::string FrameReader::skip_until(std::span<const std::byte> pattern, std::size_t max_skip) {
  check_usable();
  if (pattern.empty() || pattern.size() > kReadBufferSize / 2)
    throw InvalidArgument("bad pattern length", kFrameReaderWhere);
  if (payload_left_ > 0) skip_payload(payload_left_);
  std::string skipped;
  auto noise_tail = [&] {
    constexpr std::size_t kShown = 512;
    return skipped.size() <= kShown ? skipped : "..." + skipped.substr(skipped.size() - kShown);
  };
  for (;;) {
    auto window = std::span<const std::byte>(data_ + pos_, buffered());
    auto it = std::search(window.begin(), window.end(), pattern.begin(), pattern.end());
    // Everything before a match, or before a possible partial match at the end, is noise.
    std::size_t noise = it != window.end()
                            ? static_cast<std::size_t>(it - window.begin())
                            : window.size() - std::min(window.size(), pattern.size() - 1);
    if (skipped.size() + noise > max_skip) {
      noise = max_skip - skipped.size();
      skipped.append(reinterpret_cast<const char*>(data_ + pos_), noise);
      consume(noise);
      mark_broken("no greeting");
      fail("no frame start within the first " + std::to_string(max_skip) +
               " bytes; the peer sent: \"" + noise_tail() + "\"",
           offset_);
    }
    skipped.append(reinterpret_cast<const char*>(data_ + pos_), noise);
    consume(noise);
    if (it != window.end()) return skipped;
    if (!fill()) {
      skipped.append(reinterpret_cast<const char*>(data_ + pos_), buffered());
      consume(buffered());
      mark_broken("end of stream before a frame start");
      fail("the stream ended before a frame start; the peer sent: \"" + noise_tail() + "\"",
           offset_);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// FrameWriter

FrameWriter::FrameWriter(int fd, WireLimits peer_limits)
    : fd_(fd), socket_(is_socket(fd)), limits_(peer_limits) {}

void FrameWriter::write_frame(FrameHeader header,
                              std::span<const std::span<const std::byte>> pieces) {
  std::uint64_t total = 0;
  for (const auto& p : pieces) total += p.size();
  if (total > limits_.max_frame)
    throw InvalidArgument("frame payload of " + std::to_string(total) +
                              " bytes exceeds the peer's maximum of " +
                              std::to_string(limits_.max_frame),
                          kFrameWriterWhere);
  header.length = static_cast<std::uint32_t>(total);
  auto head = encode_header(header);
  if (gather_ && total <= kGatherFrame) {
    if (sent_ == gathered_.size()) {
      gathered_.clear();
      sent_ = 0;
    }
    gathered_.insert(gathered_.end(), head.begin(), head.end());
    for (const auto& p : pieces) gathered_.insert(gathered_.end(), p.begin(), p.end());
    offset_ += kHeaderSize + total;
    if (gathered_.size() - sent_ >= kReadBufferSize) flush();
    return;
  }
  flush();
  std::vector<iovec> iov;
  iov.reserve(pieces.size() + 1);
  iov.push_back({head.data(), head.size()});
  for (const auto& p : pieces)
    if (!p.empty()) iov.push_back({const_cast<std::byte*>(p.data()), p.size()});
  offset_ += write_iov(iov, true);
}

void FrameWriter::set_gather(bool on) {
  if (!on) flush();
  gather_ = on;
}

void FrameWriter::flush() {
  write_gathered(true);
}

bool FrameWriter::flush_now() {
  return write_gathered(false);
}

bool FrameWriter::write_gathered(bool wait) {
  if (!has_gathered()) return true;
  std::vector<iovec> iov{{gathered_.data() + sent_, gathered_.size() - sent_}};
  sent_ += write_iov(iov, wait);
  if (has_gathered()) return false;
  gathered_.clear();
  sent_ = 0;
  return true;
}

std::size_t FrameWriter::write_iov(std::vector<iovec>& iov, bool wait) {
  // A socket is written with MSG_NOSIGNAL; only a pipe needs SIGPIPE held back.
  std::optional<SigpipeHold> sigpipe;
  if (!socket_) sigpipe.emplace();
  std::size_t i = 0, written = 0;
  while (i < iov.size()) {
    auto count = std::min<std::size_t>(iov.size() - i, IOV_MAX);
    ssize_t n;
    if (socket_) {
      msghdr msg{};
      msg.msg_iov = iov.data() + i;
      msg.msg_iovlen = count;
      n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    } else {
      n = ::writev(fd_, iov.data() + i, static_cast<int>(count));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait) break;
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        if (!socket_) t_sigpipe_raised = true;
        throw RemoteConnectionError(
            "the peer closed the stream (stream offset " + std::to_string(offset_) + ")",
            kFrameWriterWhere);
      }
      throw RemoteConnectionError(std::string("cannot write to the peer: ") + std::strerror(errno),
                                  kFrameWriterWhere);
    }
    written += static_cast<std::size_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (left > 0) {
      iov[i].iov_base = static_cast<std::byte*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return written;
}

}  // namespace quiver::wire
