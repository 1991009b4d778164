// Frames and whole messages over real descriptors: header layout, clean and truncated ends,
// malformed headers, chunked bulk read straight into one allocation, pipelining, the
// greeting after login noise, deadlines, closed pipes, partial writes and gathered frames.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <numeric>
#include <quiver/core/fd.hpp>
#include <quiver/wire/protocol.hpp>
#include <thread>

#include "fuzz/wire_samples.hpp"
#include "testing/testing.hpp"
#include "unit/wire_allocations.hpp"

namespace {

using namespace quiver;
using namespace quiver::wire;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

std::string hex_of(std::string_view s) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

struct PipeEnds {
  Fd read;
  Fd write;
};

PipeEnds make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  return {Fd(fds[0]), Fd(fds[1])};
}

// A connected pair of stream sockets, as SshCache's stream to its process.
PipeEnds make_socket_pair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::runtime_error("socketpair failed");
  return {Fd(fds[0]), Fd(fds[1])};
}

// The bytes write() puts on a stream (through a memfd).
std::string written(const std::function<void(FrameWriter&)>& write, WireLimits peer = {}) {
  Fd fd(memfd_create("wire-test", MFD_CLOEXEC));
  {
    FrameWriter w(fd.get(), peer);
    write(w);
  }
  auto size = lseek(fd.get(), 0, SEEK_END);
  std::string out(static_cast<std::size_t>(size), '\0');
  if (pread(fd.get(), out.data(), out.size(), 0) != size) throw std::runtime_error("pread");
  return out;
}

std::string message_bytes(std::uint64_t id, const Message& m, WireLimits peer = {}) {
  return written([&](FrameWriter& w) { send_message(w, id, m); }, peer);
}

std::string header_bytes(std::uint16_t type, std::uint16_t flags, std::uint64_t id,
                         std::uint32_t length) {
  auto h = encode_header(FrameHeader{type, flags, id, length});
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

// body cut into frames of at most chunk payload bytes.
std::string frames_of(MessageType type, std::uint64_t id, std::string_view body,
                      std::size_t chunk) {
  std::string out;
  for (std::size_t at = 0; at < body.size(); at += chunk) {
    auto piece = body.substr(at, chunk);
    bool more = at + piece.size() < body.size();
    out += header_bytes(static_cast<std::uint16_t>(type), more ? kFlagMore : 0, id,
                        static_cast<std::uint32_t>(piece.size()));
    out += piece;
  }
  return out;
}

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected exception not thrown";
  return {};
}

// A pipe whose write end a background thread feeds, then closes.
class Feeder {
 public:
  explicit Feeder(std::function<void(int fd)> feed) {
    auto ends = make_pipe();
    read_ = std::move(ends.read);
    write_ = std::move(ends.write);
    thread_ = std::thread([this, feed = std::move(feed)] {
      try {
        feed(write_.get());
      } catch (...) {
        error_ = std::current_exception();
      }
      write_.reset();
    });
  }
  ~Feeder() {
    read_.reset();  // a feeder blocked on a full pipe gets EPIPE and ends
    if (thread_.joinable()) thread_.join();
  }
  Feeder(const Feeder&) = delete;
  Feeder& operator=(const Feeder&) = delete;

  int read_fd() const noexcept { return read_.get(); }
  /// Waits for the feeder and rethrows what it threw.
  void join() {
    thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Fd read_;
  Fd write_;
  std::thread thread_;
  std::exception_ptr error_;
};

// ---------------------------------------------------------------------------------------------
// Frames

TEST(WireFrame, HeaderLayoutMatchesTheSpec) {
  EXPECT_EQ(hex_of(header_bytes(0x0012, kFlagMore, 0x0102030405060708ULL, 0x11223344)),
            "51565257"
            "1200"
            "0100"
            "0807060504030201"
            "44332211");
}

TEST(WireFrame, PingIsOneFrameCarryingAnEmptyPreamble) {
  EXPECT_EQ(hex_of(message_bytes(7, Ping{})),
            "51565257"
            "1200"
            "0000"
            "0700000000000000"
            "10000000" +
                std::string(32, '0'));
}

TEST(WireFrame, FramesRoundTripThroughAPipe) {
  auto p = make_pipe();
  std::string payload = "some payload";
  std::array<std::span<const std::byte>, 2> pieces{bytes_of(payload), bytes_of(payload)};
  FrameWriter w(p.write.get());
  w.write_frame(FrameHeader{0x0016, 0, 42, 0}, pieces);
  p.write.reset();
  FrameReader r(p.read.get());
  auto f = r.read_frame();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->header, (FrameHeader{0x0016, 0, 42, 24}));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->payload.data()), f->payload.size()),
            payload + payload);
  EXPECT_EQ(r.offset(), kHeaderSize + 24);
}

TEST(WireFrame, EndOfStreamAtAFrameBoundaryIsACleanEnd) {
  auto stream = message_bytes(1, Ping{});
  FrameReader r(bytes_of(stream));
  EXPECT_TRUE(receive_message(r));
  EXPECT_FALSE(receive_message(r));
}

TEST(WireFrame, WrongMagicIsAProtocolErrorNamingTheOffset) {
  auto stream = message_bytes(1, Ping{}) + "XXXX" + message_bytes(2, Ping{}).substr(4);
  FrameReader r(bytes_of(stream));
  ASSERT_TRUE(receive_message(r));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("bad frame magic 0x58585858 (expected 0x51565257, \"QVRW\") at stream "
                        "offset 36"));
  EXPECT_TRUE(r.broken());
}

TEST(WireFrame, TruncatedHeaderIsAProtocolError) {
  auto stream = message_bytes(1, Ping{}).substr(0, 7);
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("truncated frame header: the stream ends after 7 of 20 bytes at stream "
                        "offset 0"));
}

TEST(WireFrame, TruncatedPayloadIsAProtocolError) {
  auto stream = message_bytes(1, Ping{}).substr(0, kHeaderSize + 5);
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("truncated frame: the stream ends 5 bytes into a payload of 16 bytes"));
}

TEST(WireFrame, LengthOverTheMaximumIsRejectedBeforeAllocating) {
  auto stream = header_bytes(0x0019, 0, 1, 0xffffffffu) + std::string(64, 'x');
  WireLimits limits;
  limits.max_frame = kMinFrameLimit;
  FrameReader r(bytes_of(stream), limits);
  quiver::testing::LargeAllocations large(1 << 20);
  EXPECT_THAT(error_of<ProtocolError>([&] { r.read_frame(); }),
              HasSubstr("frame payload length 4294967295 exceeds the maximum of 65536 at stream "
                        "offset 16"));
  EXPECT_EQ(large.count(), 0);
}

TEST(WireFrame, UnknownFlagsAreRejected) {
  auto stream = header_bytes(0x0012, 0x0004, 1, 16) + std::string(16, '\0');
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("unknown frame flags 0x0004 (only bit 0 is defined) at stream offset 6"));
}

// ---------------------------------------------------------------------------------------------
// Messages

TEST(WireMessage, UnknownMessageTypeIsReportedAndSkipped) {
  auto stream = header_bytes(0x0099, 0, 5, 3) + "abc" + message_bytes(6, Pong{});
  FrameReader r(bytes_of(stream));
  try {
    receive_message(r);
    FAIL() << "no error";
  } catch (const MalformedMessage& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown message type 0x0099 at stream offset 4"));
    EXPECT_EQ(e.request_id(), 5u);
    EXPECT_EQ(e.type_code(), 0x0099);
  }
  auto next = receive_message(r);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->request_id, 6u);
  EXPECT_EQ(next->type(), MessageType::pong);
}

TEST(WireMessage, MalformedMultiFrameBodyIsSkippedSoTheStreamStaysUsable) {
  Writer w;  // a load_value_reply whose map repeats a key, followed by a 1000-byte bulk
  std::string big(1000, 'b');
  w.u8(1);
  w.u8(8);
  w.u64(2);
  w.str("k");
  w.u8(5);
  w.bulk(bytes_of(big));
  w.str("k");
  w.u8(0);
  auto stream =
      frames_of(MessageType::load_value_reply, 5, w.flatten(), 100) + message_bytes(6, Pong{});
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<MalformedMessage>([&] { receive_message(r); }),
              HasSubstr("duplicate map key \"k\""));
  auto next = receive_message(r);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->request_id, 6u);
}

TEST(WireMessage, TrailingGarbageInAPayloadIsRejected) {
  auto body = encode_body(Ping{}) + "xyz";
  auto stream = frames_of(MessageType::ping, 3, body, 1000);
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<MalformedMessage>([&] { receive_message(r); }),
              HasSubstr("declares a body of 16 bytes, the frame has 19"));
}

TEST(WireMessage, FramesOfAnotherMessageInsideAMessageBreakTheStream) {
  auto body = encode_body(LoadValueReply{Value(std::string(100, 'x'))});
  auto stream =
      header_bytes(0x0019, kFlagMore, 1, 50) + body.substr(0, 50) + message_bytes(2, Pong{});
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("a frame of type 0x0013 with id 2 at stream offset 70 interleaves"));
  EXPECT_TRUE(r.broken());
}

TEST(WireMessage, EndOfStreamInsideAMultiFrameMessageIsATruncation) {
  auto body = encode_body(LoadValueReply{Value(std::string(100, 'x'))});
  auto stream = frames_of(MessageType::load_value_reply, 1, body, 50);
  stream.resize(kHeaderSize + 50);
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }), HasSubstr("truncated message"));
}

TEST(WireMessage, ValueLargerThanAFrameArrivesInChunksIntoOneAllocation) {
  auto array = quiver::testing::ramp(1 << 20);  // 8 MiB
  WireLimits limits;
  limits.max_frame = kMinFrameLimit;
  std::uint64_t sent = 0;
  Feeder feeder([&](int fd) {
    FrameWriter w(fd, limits);
    send_message(w, 9, LoadValueReply{Value(array)});
    sent = w.offset();
  });
  FrameReader r(feeder.read_fd(), limits);
  std::optional<Incoming> in;
  {
    quiver::testing::LargeAllocations large(1 << 20);
    in = receive_message(r);
    ASSERT_TRUE(in);
    const auto& got = std::get<LoadValueReply>(in->message).value->as_array();
    EXPECT_EQ(large.count(), 1);
    EXPECT_EQ(large.last_size(), array.nbytes());
    EXPECT_EQ(large.last_ptr(), got.buffer().data());
    EXPECT_EQ(got, array);
  }
  feeder.join();
  auto body = kPreambleSize + encode_message(LoadValueReply{Value(array)}).skeleton().size() +
              array.nbytes();
  auto frames = (body + kMinFrameLimit - 1) / kMinFrameLimit;
  EXPECT_GT(frames, 100u);
  EXPECT_EQ(sent, body + frames * kHeaderSize);
  EXPECT_EQ(r.offset(), sent);
  EXPECT_EQ(in->request_id, 9u);
}

TEST(WireMessage, PipelinedMessagesKeepTheirRequestIds) {
  auto samples = quiver::testing::sample_messages();
  Feeder feeder([&](int fd) {
    FrameWriter w(fd);
    for (std::size_t i = 0; i < samples.size(); ++i) send_message(w, 100 + i, samples[i]);
  });
  FrameReader r(feeder.read_fd());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto in = receive_message(r);
    ASSERT_TRUE(in);
    EXPECT_EQ(in->request_id, 100 + i);
    EXPECT_EQ(in->type(), type_of(samples[i]));
  }
  EXPECT_FALSE(receive_message(r));
  feeder.join();
}

TEST(WireMessage, MessageOverThePeersBulkLimitIsRefusedBeforeSending) {
  WireLimits peer;
  peer.max_bulk = 1024;
  auto p = make_pipe();
  FrameWriter w(p.write.get(), peer);
  LoadValueReply big{Value(Bytes{Buffer::copy_of(std::string(4096, 'x'))})};
  EXPECT_THAT(error_of<InvalidArgument>([&] { send_message(w, 1, big); }),
              HasSubstr("4096 bytes of arrays, bytes and objects exceeds the peer's maximum of "
                        "1024"));
  EXPECT_EQ(w.offset(), 0u);
}

TEST(WireMessage, QueryResultsArriveInPagesWithTheLastFlagged) {
  auto stream = written([](FrameWriter& w) {
    QueryPager pager(w, 4, 2);
    auto sink = pager.sink();
    for (int i = 0; i < 5; ++i) sink(quiver::testing::sample_summary(i));
    pager.finish();
  });
  FrameReader r(bytes_of(stream));
  std::vector<std::pair<std::size_t, bool>> pages;
  while (auto in = receive_message(r)) {
    EXPECT_EQ(in->request_id, 4u);
    auto page = expect_reply<QueryPage>(std::move(*in));
    pages.emplace_back(page.summaries.size(), page.last);
  }
  EXPECT_EQ(pages, (std::vector<std::pair<std::size_t, bool>>{{2, false}, {2, false}, {1, true}}));
}

// ---------------------------------------------------------------------------------------------
// Greeting

TEST(WireGreeting, GreetingIsFoundAfterLoginNoise) {
  std::string noise = "Welcome to the cluster\nmodule loaded: hdf5/1.10\n";
  while (noise.size() < 100'000) noise += "lmod: some notice printed at login\n";
  Greeting sent;
  sent.capabilities = {"batch", "future-feature"};
  Feeder feeder([&](int fd) {
    if (write(fd, noise.data(), noise.size()) != static_cast<ssize_t>(noise.size()))
      throw std::runtime_error("short write");
    FrameWriter w(fd);
    send_message(w, 0, sent);
    send_message(w, 1, Pong{});
  });
  FrameReader r(feeder.read_fd());
  auto scan = receive_greeting(r);
  EXPECT_EQ(scan.noise, noise);
  EXPECT_EQ(scan.greeting.protocol_version, kProtocolVersion);
  EXPECT_EQ(scan.greeting.capabilities, sent.capabilities);
  EXPECT_EQ(scan.greeting.limits, sent.limits);
  auto next = receive_message(r);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->type(), MessageType::pong);
  feeder.join();
}

TEST(WireGreeting, NoGreetingWithinTheBoundIsAProtocolError) {
  auto stream = std::string(5000, '.') + message_bytes(0, Greeting{});
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_greeting(r, 4096); }),
              HasSubstr("no frame start within the first 4096 bytes"));
}

TEST(WireGreeting, StreamEndingBeforeTheGreetingReportsWhatCame) {
  std::string stream = "bash: quiver: command not found\n";
  FrameReader r(bytes_of(stream));
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_greeting(r); }),
              HasSubstr("the stream ended before a frame start; the peer sent: \"bash: quiver: "
                        "command not found\n\""));
}

// ---------------------------------------------------------------------------------------------
// Descriptors: deadlines, closed pipes, partial writes

TEST(WireFrameReader, DeadlineOnASilentPipeIsATimeoutAndLeavesTheReaderUsable) {
  auto p = make_pipe();
  FrameReader r(p.read.get());
  r.set_deadline(std::chrono::steady_clock::now() + 50ms);
  EXPECT_THROW(receive_message(r), TimeoutError);
  EXPECT_FALSE(r.broken());
  FrameWriter w(p.write.get());
  send_message(w, 3, Ping{});
  r.set_deadline(std::nullopt);
  auto in = receive_message(r);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->request_id, 3u);
}

TEST(WireFrameReader, DeadlinesOnASocketAreTimeoutsAndAShorterOneIsHonoured) {
  // On a socket the reader blocks with a receive timeout instead of polling; a long
  // deadline sets a long timeout, which a later short deadline must not wait out.
  auto p = make_socket_pair();
  FrameReader r(p.read.get());
  FrameWriter w(p.write.get());
  send_message(w, 1, Ping{});
  r.set_deadline(std::chrono::steady_clock::now() + 60s);
  auto first = receive_message(r);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->request_id, 1u);
  const auto t0 = std::chrono::steady_clock::now();
  r.set_deadline(t0 + 50ms);
  EXPECT_THROW(receive_message(r), TimeoutError);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);  // not the 30 s of the first timeout
  EXPECT_FALSE(r.broken());
  send_message(w, 2, Ping{});
  r.set_deadline(std::nullopt);  // no deadline: waits past the receive timeout set above
  auto in = receive_message(r);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->request_id, 2u);
}

TEST(WireFrameReader, NoDeadlineOnASocketWaitsPastAnEarlierReceiveTimeout) {
  auto p = make_socket_pair();
  FrameReader r(p.read.get());
  r.set_deadline(std::chrono::steady_clock::now() + 4ms);  // sets a 2 ms receive timeout
  EXPECT_THROW(receive_message(r), TimeoutError);
  r.set_deadline(std::nullopt);
  std::thread late([&] {
    std::this_thread::sleep_for(100ms);  // many receive timeouts pass first
    FrameWriter w(p.write.get());
    send_message(w, 9, Ping{});
  });
  std::optional<Incoming> in;
  EXPECT_NO_THROW(in = receive_message(r));
  late.join();
  ASSERT_TRUE(in);
  EXPECT_EQ(in->request_id, 9u);
}

TEST(WireFrameReader, HasBufferedMessageSaysWhetherTheNextMessageIsWhollyBuffered) {
  auto p = make_pipe();
  auto bytes = message_bytes(1, Ping{}) + message_bytes(2, Ping{}) +
               message_bytes(3, Ping{}).substr(0, kHeaderSize + 1);
  ASSERT_EQ(write(p.write.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  FrameReader r(p.read.get());
  EXPECT_FALSE(r.has_buffered_message());  // nothing read yet
  ASSERT_TRUE(receive_message(r));         // one read() takes everything written
  EXPECT_TRUE(r.has_buffered_message());
  auto second = receive_message(r);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->request_id, 2u);
  EXPECT_TRUE(r.has_buffered());
  EXPECT_FALSE(r.has_buffered_message());  // the third is cut short
}

TEST(WireFrameReader, TimeoutInsideAFrameBreaksTheReader) {
  auto p = make_pipe();
  auto partial = message_bytes(1, Ping{}).substr(0, 7);
  ASSERT_EQ(write(p.write.get(), partial.data(), partial.size()), 7);
  FrameReader r(p.read.get());
  r.set_deadline(std::chrono::steady_clock::now() + 50ms);
  EXPECT_THROW(receive_message(r), TimeoutError);
  EXPECT_TRUE(r.broken());
  EXPECT_THAT(error_of<ProtocolError>([&] { receive_message(r); }),
              HasSubstr("unusable after an earlier error"));
}

TEST(WireFrameReader, SignalsInterruptingABlockedReadAreRetried) {
  struct sigaction quiet {};
  quiet.sa_handler = [](int) {};  // no SA_RESTART: a blocked read() fails with EINTR
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &quiet, &old), 0);
  auto p = make_pipe();
  std::optional<Incoming> in;
  std::exception_ptr error;
  std::thread reader([&] {
    try {
      FrameReader r(p.read.get());
      in = receive_message(r);
    } catch (...) {
      error = std::current_exception();
    }
  });
  for (int i = 0; i < 200; ++i) {
    pthread_kill(reader.native_handle(), SIGUSR1);
    std::this_thread::yield();
  }
  FrameWriter w(p.write.get());
  send_message(w, 11, Ping{});
  reader.join();
  sigaction(SIGUSR1, &old, nullptr);
  ASSERT_FALSE(error);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->request_id, 11u);
}

TEST(WireFrameWriter, WritingToAClosedPipeIsARemoteConnectionErrorNotASignal) {
  auto p = make_pipe();
  p.read.reset();
  FrameWriter w(p.write.get());
  EXPECT_THROW(send_message(w, 1, Ping{}), RemoteConnectionError);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST(WireFrameWriter, WritingToAClosedSocketIsARemoteConnectionErrorNotASignal) {
  // No SIGPIPE guard on a socket (MSG_NOSIGNAL): with the signal unblocked, a SIGPIPE would
  // end this test program.
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &pipe_only, &old), 0);
  auto p = make_socket_pair();
  p.read.reset();
  FrameWriter w(p.write.get());
  EXPECT_THAT(error_of<RemoteConnectionError>([&] { send_message(w, 1, Ping{}); }),
              HasSubstr("the peer closed the stream"));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST(WireFrameWriter, PartialWritesToANonBlockingPipeAreResumed) {
  auto p = make_pipe();
  ASSERT_EQ(fcntl(p.write.get(), F_SETFL, O_NONBLOCK), 0);
  fcntl(p.write.get(), F_SETPIPE_SZ, 4096);
  auto array = quiver::testing::ramp(1 << 17);  // 1 MiB in one frame
  std::optional<Incoming> in;
  std::thread reader([&] {
    FrameReader r(p.read.get());
    in = receive_message(r);
  });
  EXPECT_NO_THROW({
    FrameWriter w(p.write.get());
    send_message(w, 1, LoadValueReply{Value(array)});
  });
  p.write.reset();  // the reader ends even when sending failed
  reader.join();
  ASSERT_TRUE(in);
  EXPECT_EQ(std::get<LoadValueReply>(in->message).value->as_array(), array);
}

TEST(WireFrameWriter, GatheredFramesWaitForAFlushAndFlushNowNeverBlocks) {
  auto p = make_pipe();
  ASSERT_EQ(fcntl(p.write.get(), F_SETFL, O_NONBLOCK), 0);
  ASSERT_GT(fcntl(p.write.get(), F_SETPIPE_SZ, 4096), 0);
  FrameWriter w(p.write.get());
  w.set_gather(true);
  constexpr std::uint64_t kPings = 400;  // 400 frames of 24 bytes: more than the pipe holds
  for (std::uint64_t id = 1; id <= kPings; ++id) send_message(w, id, Ping{});
  int queued = -1;
  ASSERT_EQ(ioctl(p.read.get(), FIONREAD, &queued), 0);
  EXPECT_EQ(queued, 0);  // gathered, not written
  EXPECT_TRUE(w.has_gathered());
  EXPECT_FALSE(w.flush_now());  // the pipe takes part; the call returns instead of waiting
  ASSERT_EQ(ioctl(p.read.get(), FIONREAD, &queued), 0);
  EXPECT_GT(queued, 0);
  EXPECT_TRUE(w.has_gathered());
  std::vector<std::uint64_t> ids;
  std::thread reader([&] {
    FrameReader r(p.read.get());
    while (auto in = receive_message(r)) ids.push_back(in->request_id);
  });
  w.flush();  // waits for the reader to make room
  EXPECT_FALSE(w.has_gathered());
  p.write.reset();
  reader.join();
  std::vector<std::uint64_t> expected(kPings);
  std::iota(expected.begin(), expected.end(), 1);
  EXPECT_EQ(ids, expected);  // every frame once, in order, none torn
}

// ---------------------------------------------------------------------------------------------
// Slow: a multi-GiB value (ctest -E Slow skips it)

TEST(WireFrameSlow, StreamsA2_5GiBArrayThroughAPipeInChunks) {
  constexpr std::uint64_t kBytes = 5ull << 29;  // 2.5 GiB
  constexpr std::uint64_t kElements = kBytes / 8;
  constexpr std::uint64_t kStride = 99'991;  // prime: a misplaced chunk moves the pattern
  constexpr std::uint64_t kMix = 0x9e3779b97f4a7c15ULL;
  // Zero pages until written: only the pattern positions cost memory on the sending side.
  void* mem = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  std::shared_ptr<void> owner(mem, [](void* p) { munmap(p, kBytes); });
  auto* words = static_cast<std::uint64_t*>(mem);
  for (std::uint64_t i = 0; i < kElements; i += kStride) words[i] = i * kMix;
  words[kElements - 1] = kMix;
  Array array(DType::uint64, {kElements}, Buffer::adopt(owner, mem, kBytes));

  std::uint64_t sent = 0;
  Feeder feeder([&](int fd) {
    fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    FrameWriter w(fd);
    send_message(w, 1, LoadValueReply{Value(array)});
    sent = w.offset();
  });
  FrameReader r(feeder.read_fd());
  auto in = receive_message(r);
  feeder.join();
  ASSERT_TRUE(in);
  const auto& got = std::get<LoadValueReply>(in->message).value->as_array();
  ASSERT_EQ(got.nbytes(), kBytes);
  EXPECT_GT(sent, kBytes);
  EXPECT_EQ(r.offset(), sent);
  auto values = got.as<std::uint64_t>();
  for (std::uint64_t i = 0; i + kStride / 2 < kElements; i += kStride) {
    ASSERT_EQ(values[i], i * kMix) << i;
    ASSERT_EQ(values[i + kStride / 2], 0u) << i + kStride / 2;
  }
  EXPECT_EQ(values[kElements - 1], kMix);
}

}  // namespace
