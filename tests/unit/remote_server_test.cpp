// The server loop (quiver::serve) in a thread, driven over pipes by a client speaking the
// wire protocol directly: greeting, hello, every method, pipelining, paging, chunking,
// typed errors, malformed requests and redaction.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <quiver/core/errors.hpp>
#include <quiver/core/version.hpp>
#include <quiver/remote/server.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>
#include <quiver/wire/protocol.hpp>
#include <set>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using namespace quiver::wire;

Entry entry(int i, std::string function = "f") {
  return Entry::make(Call(std::move(function), "1").arg("i", i), Value(testing::ramp(8, i)));
}

std::pair<Fd, Fd> make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  return {Fd(fds[0]), Fd(fds[1])};
}

/// A memory cache whose configuration carries secrets, as a remote store's might.
class SecretiveCache : public MemoryCache {
 public:
  nlohmann::json config() const override {
    return {{"type", "memory"},
            {"api_token", "tok-123456"},
            {"url", "https://alice:hunter22@example.org/x"}};
  }
};

/// serve() on its own thread, with a wire client on the other ends of two pipes.
class Served {
 public:
  explicit Served(Cache& cache, ServeOptions options = {}, WireLimits client_limits = {}) {
    auto [c2s_r, c2s_w] = make_pipe();
    auto [s2c_r, s2c_w] = make_pipe();
    to_server_ = std::move(c2s_w);
    from_server_ = std::move(s2c_r);
    server_in_ = std::move(c2s_r);
    server_out_ = std::move(s2c_w);
    thread_ = std::thread([this, &cache, options] {
      status_ = serve(cache, server_in_.get(), server_out_.get(), options);
      server_out_.reset();  // the client sees the end of the stream
    });
    reader_ = std::make_unique<FrameReader>(from_server_.get(), client_limits);
    writer_ = std::make_unique<FrameWriter>(to_server_.get());
    greeting_ = receive_greeting(*reader_).greeting;
    writer_->set_limits(greeting_.limits);
    client_limits_ = client_limits;
  }
  ~Served() {
    to_server_.reset();
    if (thread_.joinable()) thread_.join();
  }

  void send(std::uint64_t id, const Message& m) { send_message(*writer_, id, m); }
  Incoming receive() {
    auto in = receive_message(*reader_);
    if (!in) throw std::runtime_error("the server closed the stream");
    return std::move(*in);
  }
  template <class Reply>
  Reply call(std::uint64_t id, const Message& m) {
    send(id, m);
    auto in = receive();
    EXPECT_EQ(in.request_id, id);
    return expect_reply<Reply>(std::move(in));
  }
  HelloReply hello() {
    Hello h;
    h.limits = client_limits_;
    return call<HelloReply>(1, h);
  }
  /// Closes the client's end and returns serve()'s exit status.
  int finish() {
    to_server_.reset();
    thread_.join();
    return status_;
  }

  FrameReader& reader() { return *reader_; }
  FrameWriter& writer() { return *writer_; }
  const Greeting& greeting() const { return greeting_; }

 private:
  Fd to_server_, from_server_, server_in_, server_out_;
  std::thread thread_;
  int status_ = -1;
  std::unique_ptr<FrameReader> reader_;
  std::unique_ptr<FrameWriter> writer_;
  Greeting greeting_;
  WireLimits client_limits_;
};

TEST(RemoteServer, GreetsThenAnswersHelloAndExitsZeroAtEndOfInput) {
  MemoryCache cache;
  ServeOptions o;
  o.cache_name = "shared";
  Served s(cache, o);
  EXPECT_EQ(s.greeting().protocol_version, kProtocolVersion);
  EXPECT_EQ(s.greeting().quiver_version, kVersion);
  EXPECT_EQ(s.greeting().limits, o.limits);
  auto h = s.hello();
  EXPECT_EQ(h.cache_name, "shared");
  EXPECT_FALSE(h.read_only);
  EXPECT_EQ(s.finish(), 0);
}

TEST(RemoteServer, EveryMethodReachesTheCache) {
  MemoryCache cache;
  Served s(cache);
  s.hello();
  auto a = entry(1), b = entry(2);
  s.call<SaveReply>(2, SaveRequest{a});
  EXPECT_TRUE(cache.contains(a.digest));
  EXPECT_TRUE(s.call<ContainsReply>(3, ContainsRequest{a.digest}).found);
  EXPECT_FALSE(s.call<ContainsReply>(4, ContainsRequest{b.digest}).found);
  auto loaded = s.call<LoadReply>(5, LoadRequest{a.digest}).entry;
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->call, a.call);
  EXPECT_EQ(loaded->result, a.result);
  EXPECT_FALSE(s.call<LoadReply>(6, LoadRequest{b.digest}).entry);
  EXPECT_EQ(s.call<LoadValueReply>(7, LoadValueRequest{a.digest}).value, a.result);
  EXPECT_EQ(s.call<ExpandReply>(8, ExpandRequest{a.digest.hex().substr(0, 6)}).digest, a.digest);
  EXPECT_EQ(s.call<ShrinkReply>(9, ShrinkRequest{a.digest}).prefix, cache.shrink(a.digest));
  s.call<SaveManyReply>(10, SaveManyRequest{{b, entry(3)}});
  EXPECT_EQ(s.call<ContainsManyReply>(11, ContainsManyRequest{{a.digest, entry(9).digest}}).found,
            (std::vector<bool>{true, false}));
  auto many = s.call<LoadManyReply>(12, LoadManyRequest{{b.digest, entry(9).digest}}).entries;
  ASSERT_EQ(many.size(), 2u);
  ASSERT_TRUE(many[0]);
  EXPECT_EQ(many[0]->result, b.result);
  EXPECT_FALSE(many[1]);
  EXPECT_TRUE(s.call<EvictReply>(13, EvictRequest{a.digest}).evicted);
  EXPECT_FALSE(s.call<EvictReply>(14, EvictRequest{a.digest}).evicted);
  EXPECT_FALSE(cache.contains(a.digest));
  s.call<Pong>(15, Ping{});
  EXPECT_EQ(s.finish(), 0);
}

TEST(RemoteServer, PipelinedRequestsAreAnsweredInOrderWithTheirIds) {
  MemoryCache cache;
  std::vector<Entry> entries;
  for (int i = 0; i < 20; ++i) entries.push_back(entry(i));
  for (int i = 0; i < 20; i += 2) cache.save(entries[static_cast<std::size_t>(i)]);
  Served s(cache);
  s.hello();
  for (std::uint64_t i = 0; i < 20; ++i) s.send(100 + i, ContainsRequest{entries[i].digest});
  for (std::uint64_t i = 0; i < 20; ++i) {
    auto in = s.receive();
    EXPECT_EQ(in.request_id, 100 + i);
    EXPECT_EQ(expect_reply<ContainsReply>(std::move(in)).found, i % 2 == 0);
  }
}

TEST(RemoteServer, QueryResultsComeInPagesEndingWithTheLast) {
  MemoryCache cache;
  for (int i = 0; i < 250; ++i) cache.save(entry(i));
  Served s(cache);
  s.hello();
  s.send(7, QueryRequest{Query{}, 100});
  std::vector<std::size_t> pages;
  std::set<Digest> seen;
  for (bool last = false; !last;) {
    auto in = s.receive();
    ASSERT_EQ(in.request_id, 7u);
    auto page = expect_reply<QueryPage>(std::move(in));
    pages.push_back(page.summaries.size());
    for (const auto& e : page.summaries) seen.insert(e.digest);
    last = page.last;
  }
  EXPECT_EQ(pages, (std::vector<std::size_t>{100, 100, 50}));
  EXPECT_EQ(seen.size(), 250u);
}

TEST(RemoteServer, ValuesLargerThanAFrameTravelAsSeveralFrames) {
  MemoryCache cache;
  WireLimits small;
  small.max_frame = kMinFrameLimit;
  ServeOptions o;
  o.limits = small;
  Served s(cache, o, small);
  s.hello();
  auto big = Entry::make(Call("big", "1").arg("n", 1), Value(testing::ramp(100'000)));  // 800 kB
  s.call<SaveReply>(2, SaveRequest{big});
  EXPECT_EQ(cache.load_value(big.digest), big.result);
  // Read the reply to a load frame by frame: several frames, all but the last flagged.
  s.send(3, LoadValueRequest{big.digest});
  std::size_t frames = 0;
  std::uint64_t bytes = 0;
  for (;;) {
    auto h = s.reader().next_header();
    ASSERT_TRUE(h);
    EXPECT_EQ(h->request_id, 3u);
    EXPECT_LE(h->length, small.max_frame);
    ++frames;
    bytes += h->length;
    if (!h->more()) break;
  }
  EXPECT_GT(bytes, 800'000u);
  EXPECT_GE(frames, bytes / small.max_frame);
}

TEST(RemoteServer, FailuresAreTypedErrorReplies) {
  MemoryCache cache;
  auto [a, b] = [] {
    std::map<std::string, Entry> by_prefix;
    for (int i = 0;; ++i) {
      auto e = entry(i, "collide");
      auto [it, fresh] = by_prefix.emplace(e.digest.hex().substr(0, 4), e);
      if (!fresh) return std::pair{it->second, e};
    }
  }();
  cache.save(a);
  cache.save(b);
  Served s(cache);
  s.hello();
  EXPECT_THROW(s.call<ExpandReply>(2, ExpandRequest{"ffff0000ffff"}), NotFound);
  EXPECT_THROW(s.call<ExpandReply>(3, ExpandRequest{a.digest.hex().substr(0, 4)}), AmbiguousDigest);
  EXPECT_THROW(s.call<ExpandReply>(4, ExpandRequest{"../etc"}), InvalidArgument);
  // The stream is still usable afterwards.
  EXPECT_TRUE(s.call<ContainsReply>(5, ContainsRequest{a.digest}).found);
}

TEST(RemoteServer, ReadOnlyCacheRejectsSaveAndEvict) {
  auto inner = std::make_unique<MemoryCache>();
  auto e = entry(1);
  inner->save(e);
  ReadOnlyCache cache(std::move(inner));
  Served s(cache);
  EXPECT_TRUE(s.hello().read_only);
  EXPECT_THROW(s.call<SaveReply>(2, SaveRequest{entry(2)}), Rejected);
  EXPECT_THROW(s.call<EvictReply>(3, EvictRequest{e.digest}), Rejected);
  EXPECT_TRUE(s.call<ContainsReply>(4, ContainsRequest{e.digest}).found);
}

TEST(RemoteServer, AMalformedRequestGetsAnErrorAndTheStreamGoesOn) {
  MemoryCache cache;
  Served s(cache);
  s.hello();
  // A frame of an unknown message type, then a valid request.
  const std::array<std::byte, 3> junk{std::byte{1}, std::byte{2}, std::byte{3}};
  const std::span<const std::byte> piece(junk);
  s.writer().write_frame(FrameHeader{0x7777, 0, 42, 0}, std::span(&piece, 1));
  auto in = s.receive();
  EXPECT_EQ(in.request_id, 42u);
  EXPECT_THROW(expect_reply<Pong>(std::move(in)), ProtocolError);
  s.call<Pong>(43, Ping{});
  // A reply sent as a request is refused too.
  EXPECT_THROW(s.call<Pong>(44, Pong{}), ProtocolError);
  EXPECT_EQ(s.finish(), 0);
}

TEST(RemoteServer, HelloWithAnotherProtocolVersionIsRefused) {
  MemoryCache cache;
  Served s(cache);
  Hello h;
  h.protocol_version = kProtocolVersion + 1;
  try {
    s.call<HelloReply>(1, h);
    FAIL() << "hello with another protocol version was accepted";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(kProtocolVersion + 1)), std::string::npos)
        << e.what();
  }
}

TEST(RemoteServer, InfoDescribesTheServerWithSecretsRedacted) {
  SecretiveCache cache;
  ServeOptions o;
  o.cache_name = "vault";
  Served s(cache, o);
  s.hello();
  auto info = s.call<InfoReply>(2, InfoRequest{}).info;
  EXPECT_EQ(info["cache_name"], "vault");
  EXPECT_EQ(info["read_only"], false);
  EXPECT_EQ(info["protocol_version"], kProtocolVersion);
  EXPECT_EQ(info["quiver_version"], kVersion);
  EXPECT_EQ(info["pid"], static_cast<std::int64_t>(getpid()));
  EXPECT_FALSE(info["hostname"].get<std::string>().empty());
  EXPECT_FALSE(info["cwd"].get<std::string>().empty());
  EXPECT_FALSE(info["executable"].get<std::string>().empty());
  EXPECT_EQ(info["config"]["type"], "memory");
  const auto text = info.dump();
  EXPECT_EQ(text.find("tok-123456"), std::string::npos) << text;
  EXPECT_EQ(text.find("hunter22"), std::string::npos) << text;
  EXPECT_NE(text.find("***"), std::string::npos) << text;
}

TEST(RemoteServer, ABrokenStreamEndsTheLoopWithStatusOne) {
  MemoryCache cache;
  auto [in_r, in_w] = make_pipe();
  auto [out_r, out_w] = make_pipe();
  const char garbage[] = "this is not a frame header at all";
  ASSERT_EQ(::write(in_w.get(), garbage, sizeof garbage), static_cast<ssize_t>(sizeof garbage));
  in_w.reset();
  int status = -1;
  const int in = in_r.get(), out = out_w.get();  // clang 14 cannot capture bindings
  std::thread t([&cache, &status, in, out] { status = serve(cache, in, out); });
  FrameReader r(out_r.get());
  receive_greeting(r);
  t.join();
  EXPECT_EQ(status, 1);
}

}  // namespace
}  // namespace quiver
