// SshCache over a local `quiver serve --stdio` (type "subprocess"): every Cache method and
// Value kind, chunked values, noise before the greeting, failed setup commands, protocol
// mismatch, a server killed or stopped mid-call, read-only remotes, redaction, many
// threads on one connection, leaks, and a stack built from quiver.toml.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <future>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/wire/protocol.hpp>
#include <set>
#include <thread>

#include "soak/soak.hpp"
#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Entry entry(int i, std::string function = "f") {
  return Entry::make(Call(std::move(function), "1").arg("i", i), Value(testing::ramp(8, i)));
}

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

/// True when no process with this pid exists (not even a zombie).
bool gone(pid_t pid) {
  return !fs::exists("/proc/" + std::to_string(pid));
}

/// True when the process has ended: gone, or a zombie left for whoever adopted it to reap.
bool ended(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  const auto paren = text.rfind(')');
  return paren == std::string::npos || text.substr(paren + 2, 1) == "Z";
}

using testing::error_of;

class RemoteSubprocess : public ::testing::Test {
 protected:
  RemoteSubprocess() {
    std::ofstream(config) << "[store]\ntype = \"hdf5\"\npath = \"" << root.string()
                          << "\"\nfsync = false\n\n[frozen]\ntype = \"hdf5\"\npath = \""
                          << root.string() << "\"\nfsync = false\nread_only = true\n";
  }

  SshCacheOptions options(std::string cache_name = "store") const {
    SshCacheOptions o;
    o.transport = Transport::subprocess;
    o.quiver = testing::cli_path();
    o.config = config.string();
    o.cache_name = std::move(cache_name);
    o.env = {"QUIVER_LOG_LEVEL=warn"};
    o.connect_timeout = 20s;
    o.call_timeout = 20s;
    return o;
  }

  /// A cache holding entry(1) whose server has then been stopped (SIGSTOP); pid is the server.
  std::unique_ptr<SshCache> stopped_cache(std::chrono::milliseconds call_timeout,
                                          pid_t& pid) const {
    auto o = options();
    o.call_timeout = call_timeout;
    auto cache = std::make_unique<SshCache>(o);
    cache->save(entry(1));
    pid = cache->pid();
    if (::kill(pid, SIGSTOP) != 0) throw std::runtime_error("cannot stop the server");
    return cache;
  }

  /// The store the served cache writes, opened directly.
  Hdf5Store direct() const {
    Hdf5StoreOptions o;
    o.root = root;
    o.fsync = false;
    return Hdf5Store(o);
  }

  /// An executable shell script at dir/name.
  fs::path script(std::string_view name, const std::string& body) const {
    auto p = dir / name;
    std::ofstream(p) << "#!/bin/sh\n" << body;
    fs::permissions(p, fs::perms::owner_all);
    return p;
  }

  testing::TempDir dir{"quiver-remote"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
};

TEST_F(RemoteSubprocess, SpawnsLazilyAndReusesOneProcess) {
  SshCache cache(options());
  EXPECT_EQ(cache.pid(), -1);
  EXPECT_EQ(cache.stats().connects, 0u);
  EXPECT_FALSE(cache.contains(entry(1).digest));
  const auto pid = cache.pid();
  EXPECT_GT(pid, 0);
  cache.save(entry(1));
  EXPECT_TRUE(cache.contains(entry(1).digest));
  EXPECT_EQ(cache.pid(), pid);
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_EQ(cache.stats().requests, 4u);  // hello + 3 calls
}

TEST_F(RemoteSubprocess, EveryValueKindRoundTrips) {
  SshCache cache(options());
  auto sample = testing::sample_value_of_every_kind();
  auto e = Entry::make(Call("kinds", "1").arg("x", 1.5).arg("s", "text"), sample);
  cache.save(e);
  EXPECT_EQ(cache.load_value(e.digest), sample);
  auto loaded = cache.load(e.digest);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->call, e.call);
  EXPECT_EQ(loaded->result, sample);
  EXPECT_EQ(loaded->meta, e.meta);
  // Each top-level member on its own too, and what the store holds is the same.
  int i = 0;
  for (const auto& [name, member] : sample.as_map()) {
    auto m = Entry::make(Call("kind", "1").arg("name", name).arg("i", i++), member);
    cache.save(m);
    EXPECT_EQ(cache.load_value(m.digest), member) << name;
    EXPECT_EQ(direct().load_value(m.digest), member) << name;
  }
}

TEST_F(RemoteSubprocess, EveryMethodWorks) {
  SshCache cache(options());
  auto a = entry(1), b = entry(2), c = entry(3), missing = entry(99);
  cache.save(a);
  EXPECT_TRUE(direct().contains(a.digest));
  EXPECT_TRUE(cache.contains(a.digest));
  EXPECT_FALSE(cache.contains(missing.digest));
  EXPECT_FALSE(cache.load(missing.digest));
  EXPECT_FALSE(cache.load_value(missing.digest));
  EXPECT_EQ(cache.expand(a.digest.hex().substr(0, 8)), a.digest);
  EXPECT_THROW(cache.expand("0000ffff0000"), NotFound);
  EXPECT_THROW(cache.expand("abc"), InvalidArgument);
  EXPECT_EQ(cache.shrink(a.digest), direct().shrink(a.digest));

  const std::vector<Entry> batch{b, c};
  cache.save_many(batch);
  const std::vector<Digest> digests{a.digest, missing.digest, c.digest};
  EXPECT_EQ(cache.contains_many(digests), (std::vector<bool>{true, false, true}));
  auto many = cache.load_many(digests);
  ASSERT_EQ(many.size(), 3u);
  ASSERT_TRUE(many[0] && many[2]);
  EXPECT_FALSE(many[1]);
  EXPECT_EQ(many[0]->result, a.result);
  EXPECT_EQ(many[2]->result, c.result);

  EXPECT_TRUE(cache.evict(b.digest));
  EXPECT_FALSE(cache.evict(b.digest));
  EXPECT_FALSE(direct().contains(b.digest));
  EXPECT_FALSE(cache.read_only());

  auto info = cache.info();
  EXPECT_EQ(info["cache_name"], "store");
  EXPECT_EQ(info["read_only"], false);
  EXPECT_EQ(info["pid"], static_cast<std::int64_t>(cache.pid()));
  EXPECT_EQ(info["protocol_version"], wire::kProtocolVersion);
  EXPECT_EQ(info["config"]["type"], "hdf5");
  EXPECT_EQ(info["config"]["path"], root.string());
  EXPECT_EQ(fs::path(info["executable"].get<std::string>()), fs::canonical(testing::cli_path()));
  const auto requests = cache.stats().requests;
  EXPECT_EQ(cache.info(), info);  // fetched once per connection
  EXPECT_EQ(cache.stats().requests, requests);
  EXPECT_GE(cache.ping(), 0.0);
}

TEST_F(RemoteSubprocess, BatchCallsCostOneRoundTrip) {
  SshCache cache(options());
  std::vector<Entry> entries;
  std::vector<Digest> digests;
  for (int i = 0; i < 50; ++i) {
    entries.push_back(entry(i));
    digests.push_back(entries.back().digest);
  }
  cache.connect();
  const auto before = cache.stats().requests;
  cache.save_many(entries);
  EXPECT_EQ(cache.contains_many(digests), std::vector<bool>(50, true));
  EXPECT_EQ(cache.load_many(digests).size(), 50u);
  EXPECT_EQ(cache.stats().requests, before + 3);
}

TEST_F(RemoteSubprocess, QueryPagesThroughManyEntries) {
  SshCache cache(options());
  std::vector<Entry> entries;
  for (int i = 0; i < 600; ++i) entries.push_back(entry(i, i % 3 ? "many" : "other"));
  cache.save_many(entries);
  std::set<Digest> seen;
  cache.query(Query{}, [&](const EntrySummary& s) {
    seen.insert(s.digest);
    return true;
  });
  EXPECT_EQ(seen.size(), 600u);  // more than two pages of 256
  Query q;
  q.function = "many";
  EXPECT_EQ(cache.query(q).size(), 400u);
  q.limit = 5;
  EXPECT_EQ(cache.query(q).size(), 5u);
  // A sink that stops early abandons the rest; the connection goes on working.
  std::size_t taken = 0;
  cache.query(Query{}, [&](const EntrySummary&) { return ++taken < 10; });
  EXPECT_EQ(taken, 10u);
  EXPECT_TRUE(cache.contains(entries[7].digest));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST_F(RemoteSubprocess, AValueLargerThanAFrameStreamsInChunks) {
  SshCache cache(options());
  // 12 MiB: three times the default 4 MiB frame, in both directions.
  auto big = Entry::make(Call("big", "1").arg("n", 1), Value(testing::ramp(3 << 19, 0.25)));
  cache.save(big);
  EXPECT_EQ(direct().load_value(big.digest), big.result);
  EXPECT_EQ(cache.load_value(big.digest), big.result);
}

TEST_F(RemoteSubprocess, BytesBeforeTheGreetingAreSkippedAndWorkdirIsHonoured) {
  auto o = options();
  o.workdir = dir.path().string();
  o.setup_commands = {"echo 'Welcome to the cluster'", "printf 'QVR almost a magic QV'"};
  SshCache cache(o);
  cache.save(entry(1));
  EXPECT_TRUE(cache.contains(entry(1).digest));
  EXPECT_EQ(fs::path(cache.info()["cwd"].get<std::string>()), fs::canonical(dir.path()));
}

TEST_F(RemoteSubprocess, AFailingSetupCommandReportsItsStatusAndStderr) {
  auto o = options();
  o.setup_commands = {"echo 'module: command not found: bogus' >&2", "false"};
  SshCache cache(o);
  auto what = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "exit status 1")) << what;
  EXPECT_TRUE(has(what, "module: command not found: bogus")) << what;
  EXPECT_EQ(cache.stderr_tail(), std::vector<std::string>{"module: command not found: bogus"});
  // It never reconnects by itself: the next call fails the same way without a new process.
  auto again = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
  EXPECT_EQ(again, what);
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_EQ(cache.pid(), -1);
}

TEST_F(RemoteSubprocess, AMissingExecutableIsAConnectionError) {
  auto o = options();
  o.quiver = (dir / "no-such-quiver").string();
  SshCache cache(o);
  auto what = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "no-such-quiver")) << what;
}

TEST_F(RemoteSubprocess, AServerSpeakingAnotherProtocolVersionIsAHardError) {
  const auto greeting = dir / "greeting.bin";
  {
    Fd fd(::open(greeting.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd);
    wire::FrameWriter w(fd.get());
    wire::Greeting g;
    g.protocol_version = wire::kProtocolVersion + 98;
    wire::send_message(w, 0, g);
  }
  auto o = options();
  o.quiver =
      script("old-quiver", "echo 'motd'\ncat '" + greeting.string() + "'\nexec cat >/dev/null\n")
          .string();
  SshCache cache(o);
  auto what = error_of<ProtocolError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "protocol " + std::to_string(wire::kProtocolVersion + 98))) << what;
  EXPECT_TRUE(has(what, "protocol " + std::to_string(wire::kProtocolVersion))) << what;
}

TEST_F(RemoteSubprocess, ASilentServerHitsTheConnectTimeout) {
  auto o = options();
  o.quiver = script("mute-quiver", "exec cat\n").string();  // silent until input comes
  o.connect_timeout = 300ms;
  SshCache cache(o);
  auto what = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "0.3 s (connect_timeout)")) << what;
}

TEST_F(RemoteSubprocess, AServerClosingItsOutputWithoutAGreetingIsAConnectionError) {
  auto o = options();
  o.quiver = script("closed-quiver", "echo 'no server here' >&2\nexec cat >/dev/null\n").string();
  SshCache cache(o);
  auto what = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "did not start: the process is still running")) << what;
  EXPECT_TRUE(has(what, "no server here")) << what;
}

TEST_F(RemoteSubprocess, ServerKilledMidCallFailsEveryPendingCallThenReconnectWorks) {
  // A stopped server holds the calls in flight; a failure must come from its death, not
  // from a deadline.
  pid_t pid = -1;
  auto stopped = stopped_cache(120s, pid);
  auto& cache = *stopped;
  const auto before = cache.stats().requests;
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t t = 0; t < errors.size(); ++t)
    threads.emplace_back([&, t] {
      errors[t] = error_of<RemoteConnectionError>([&] { cache.contains(entry(1).digest); });
    });
  ASSERT_TRUE(testing::eventually([&] { return cache.stats().requests == before + 4; }));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  for (auto& t : threads) t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  for (const auto& what : errors) {
    EXPECT_TRUE(has(what, "signal 9")) << what;
    EXPECT_TRUE(has(what, "reconnect()")) << what;
  }
  EXPECT_THROW(cache.contains(entry(1).digest), RemoteConnectionError);
  cache.reconnect();
  EXPECT_TRUE(cache.contains(entry(1).digest));
  EXPECT_NE(cache.pid(), pid);
  EXPECT_EQ(cache.stats().connects, 2u);
  EXPECT_TRUE(gone(pid));
}

/// A map holding a 64 MiB array of double at "T" and an integer at "steps", stored directly.
Entry big_map(Hdf5Store& store) {
  Value::Map m;
  m["T"] = Value(testing::ramp(std::size_t{8} << 20, 7.0));
  m["steps"] = Value(std::int64_t{3});
  auto e = Entry::make(Call("big.map", "1"), Value(std::move(m)));
  store.save(e);
  return e;
}

/// load_value_into of big_map's "T" through cache into t, checked to be received in place:
/// the returned array is t's memory and equal to e's, and the peak resident memory did not
/// grow by a copy of it.
std::optional<Value> load_in_place(Cache& cache, const Entry& e, std::vector<double>& t) {
  t.assign(std::size_t{8} << 20, 0.0);
  testing::reset_peak_rss("self");
  const auto before = testing::peak_rss_kib("self");
  auto v = cache.load_value_into(e.digest, {{"T", ArrayInto::of(std::span(t))}});
  const auto grew = testing::peak_rss_kib("self") - before;
  if (!v) {
    ADD_FAILURE() << "a miss";
    return v;
  }
  EXPECT_EQ(v->as_map().at("T").as_array().buffer().data(), reinterpret_cast<std::byte*>(t.data()));
  EXPECT_EQ(v->as_map().at("T").as_array(), e.result.as_map().at("T").as_array());
  if (!testing::kSanitized) {  // a copy would raise the peak by the whole 64 MiB
    EXPECT_LT(grew, static_cast<std::int64_t>(t.size() * sizeof(double) / 2 / 1024))
        << "the peak grew by " << grew << " KiB";
  }
  return v;
}

TEST_F(RemoteSubprocess, LoadValueIntoReceivesTheArrayStraightIntoTheCallersMemory) {
  auto store = direct();
  const auto e = big_map(store);
  SshCache cache(options());
  cache.connect();
  std::vector<double> t;
  auto v = load_in_place(cache, e, t);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_map().at("steps"), Value(std::int64_t{3}));
  // A destination that does not fit is reported by its path; the connection stays good.
  std::vector<float> wrong(t.size());
  EXPECT_TRUE(has(error_of<TypeError>([&] {
                    cache.load_value_into(e.digest, {{"T", ArrayInto::of(std::span(wrong))}});
                  }),
                  "'T'"));
  EXPECT_TRUE(cache.contains(e.digest));
  EXPECT_FALSE(cache.load_value_into(entry(2).digest, {{"T", ArrayInto::of(std::span(t))}}));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST_F(RemoteSubprocess, AStackReceivesARemoteHitIntoTheCallersMemoryAndPromotesIt) {
  auto store = direct();
  const auto e = big_map(store);
  Hdf5StoreOptions local;
  local.root = dir / "local";
  local.fsync = false;
  std::vector<std::unique_ptr<Cache>> layers;
  layers.push_back(std::make_unique<Hdf5Store>(local));
  layers.push_back(std::make_unique<SshCache>(options()));
  CacheStack stack(std::move(layers));
  dynamic_cast<SshCache&>(*stack.layers()[1]).connect();
  std::vector<double> t;  // received there, and promoted from there
  ASSERT_TRUE(load_in_place(stack, e, t));
  t.assign(t.size(), -1.0);  // the promoted entry does not depend on that memory
  auto promoted = Hdf5Store(local).load(e.digest);
  ASSERT_TRUE(promoted);
  EXPECT_EQ(promoted->result, e.result);
  EXPECT_EQ(promoted->call, e.call);
}

TEST_F(RemoteSubprocess, AReplyStallingWhileItArrivesIntoTheCallersMemoryEndsAtTheTimeout) {
  auto store = direct();
  const auto e = big_map(store);
  // The server's output passes through dd: after 16 MiB (inside the 64 MiB reply) no
  // byte reaches the client, while the stream stays open, as over a link that hangs.
  auto o = options();
  o.quiver =
      script("stalling-quiver", "'" + testing::cli_path() +
                                    "' \"$@\" | { dd bs=65536 count=16777216 iflag=count_bytes "
                                    "status=none; exec cat >/dev/null; }\n")
          .string();
  o.call_timeout = 3s;  // ample for the reply to start arriving, also under sanitizers
  SshCache cache(o);
  EXPECT_FALSE(cache.contains(entry(2).digest));
  auto t = std::make_unique<std::vector<double>>(std::size_t{8} << 20);
  const auto t0 = std::chrono::steady_clock::now();
  auto what = error_of<TimeoutError>([&] {
    cache.load_value_into(e.digest, {{"T", ArrayInto::of(std::span(*t))}});
  });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_TRUE(has(what, "3 s (call_timeout)")) << what;
  EXPECT_TRUE(has(what, "arriving into this call's memory")) << what;
  t.reset();  // the call gave the memory back: nothing may write there any more (ASan)
  // The rest of the reply would have gone into that memory: the connection is closed.
  what = error_of<RemoteConnectionError>([&] { cache.contains(e.digest); });
  EXPECT_TRUE(has(what, "closed by this client")) << what;
  EXPECT_TRUE(has(what, "reconnect()")) << what;
  cache.reconnect();
  EXPECT_TRUE(cache.contains(e.digest));
  EXPECT_EQ(cache.stats().connects, 2u);
}

TEST_F(RemoteSubprocess, AStoppedServerMakesTheCallTimeOut) {
  pid_t pid = -1;
  auto stopped = stopped_cache(300ms, pid);
  auto& cache = *stopped;
  auto what = error_of<TimeoutError>([&] { cache.contains(entry(1).digest); });
  EXPECT_TRUE(has(what, "0.3 s (call_timeout)")) << what;
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  // The late reply is dropped; the connection is still good.
  EXPECT_TRUE(cache.contains(entry(1).digest));
  EXPECT_FALSE(cache.contains(entry(2).digest));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST_F(RemoteSubprocess, CallsOnAFullPipeToAStoppedServerStillEndAtTheirTimeout) {
  // Callers write small requests themselves when the stream is idle; with the server stopped
  // the pipe fills, and no call may then wait for room past its call_timeout.
  pid_t pid = -1;
  auto stopped = stopped_cache(100ms, pid);
  auto& cache = *stopped;
  std::atomic<bool> resumed{false};
  std::thread watchdog([&] {  // a call stuck on the pipe fails the test instead of hanging it
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (!resumed && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
    ::kill(pid, SIGCONT);
  });
  constexpr int kThreads = 32, kCalls = 40;  // 1280 requests of 68 bytes: more than a pipe holds
  std::vector<double> longest(kThreads, 0);
  std::vector<int> timeouts(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        try {
          cache.contains(entry(1000 + t * kCalls + i).digest);
        } catch (const TimeoutError&) {
          ++timeouts[t];
        }
        longest[t] =
            std::max(longest[t],
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    });
  for (auto& t : threads) t.join();
  resumed = true;
  watchdog.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(timeouts[t], kCalls) << "thread " << t;
    EXPECT_LT(longest[t], 10.0) << "thread " << t << ": a call outlived its 0.1 s call_timeout";
  }
  // Resumed, the server reads every request in order, whole; the late replies are dropped.
  // It works through the 1280 stale requests first, so a 0.1 s call may time out until then.
  EXPECT_TRUE(testing::eventually(
      [&] {
        try {
          return cache.contains(entry(1).digest);
        } catch (const TimeoutError&) {
          return false;
        }
      },
      60s))
      << "the stream did not come back in step after the server was resumed";
  EXPECT_FALSE(cache.contains(entry(2).digest));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST_F(RemoteSubprocess, ClosingWhileTheServerIsStoppedStillReapsIt) {
  SshCache cache(options());
  cache.connect();
  const auto pid = cache.pid();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  cache.close();
  EXPECT_TRUE(gone(pid));
  EXPECT_THROW(cache.contains(entry(1).digest), RemoteConnectionError);
}

TEST_F(RemoteSubprocess, ARemoteReadOnlyCacheRejectsSaveAndEvictWithoutARoundTrip) {
  auto o = options();
  o.remote_read_only = true;
  SshCache local_flag(o);
  EXPECT_TRUE(local_flag.read_only());
  EXPECT_THROW(local_flag.save(entry(1)), Rejected);
  EXPECT_THROW(local_flag.evict(entry(1).digest), Rejected);
  EXPECT_EQ(local_flag.stats().requests, 0u);
  EXPECT_EQ(local_flag.stats().connects, 0u);

  direct().save(entry(1));
  SshCache frozen(options("frozen"));  // read_only = true in the server's config
  EXPECT_TRUE(frozen.contains(entry(1).digest));
  const auto before = frozen.stats().requests;
  EXPECT_TRUE(frozen.read_only());
  EXPECT_THROW(frozen.save(entry(2)), Rejected);
  const std::vector<Entry> batch{entry(3)};
  EXPECT_THROW(frozen.save_many(batch), Rejected);
  EXPECT_THROW(frozen.evict(entry(1).digest), Rejected);
  EXPECT_EQ(frozen.stats().requests, before);
  EXPECT_TRUE(direct().contains(entry(1).digest));
  EXPECT_EQ(frozen.info()["read_only"], true);
}

TEST_F(RemoteSubprocess, SecretsOfTheServedCacheStayOutOfInfo) {
  // The served cache is itself a subprocess cache whose environment holds a token.
  std::ofstream(config, std::ios::app)
      << "\n[proxy]\ntype = \"subprocess\"\nquiver = \"" << testing::cli_path() << "\"\nconfig = \""
      << config.string() << "\"\ncache_name = \"store\"\nenv = { API_TOKEN = \"tok-s3cr3t-42\" }\n";
  SshCache cache(options("proxy"));
  cache.save(entry(1));
  EXPECT_TRUE(direct().contains(entry(1).digest));
  auto info = cache.info();
  EXPECT_EQ(info["config"]["type"], "subprocess");
  EXPECT_EQ(info["config"]["env"]["API_TOKEN"], "***");
  EXPECT_FALSE(has(info.dump(), "tok-s3cr3t-42")) << info.dump();
}

TEST_F(RemoteSubprocess, EightThreadsShareOneConnection) {
  SshCache cache(options());
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        auto e = entry(t * 1000 + i);
        cache.save(e);
        if (!cache.contains(e.digest)) ++wrong;
        if (cache.load_value(e.digest) != e.result) ++wrong;
        if (cache.contains(entry(t * 1000 + i + 500).digest)) ++wrong;
        if (i % 8 == 0) {
          const std::vector<Digest> two{e.digest, entry(-1 - t).digest};
          if (cache.contains_many(two) != std::vector<bool>{true, false}) ++wrong;
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_GT(cache.stats().max_in_flight, 1u);
  Query q;
  q.function = "f";
  EXPECT_EQ(cache.query(q).size(), 320u);
}

TEST_F(RemoteSubprocess, ContainsManyOfEverySizeAnswersInOrderAndTimesOut) {
  // Up to 256 digests a contains_many is a small call its caller writes and reads itself;
  // larger ones go through the writer and reader threads. Sizes on both sides of that line,
  // from threads at once, each get their own answers in order.
  SshCache cache(options());
  std::vector<Entry> saved;
  for (int i = 0; i < 1000; i += 3) saved.push_back(entry(i));
  cache.save_many(saved);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (std::size_t size : {1u, 255u, 256u, 257u, 1000u})
    threads.emplace_back([&, size] {
      for (int round = 0; round < 5; ++round) {
        std::vector<Digest> digests;
        std::vector<bool> expected;
        for (std::size_t i = 0; i < size; ++i) {
          const int k = static_cast<int>((i * 7 + static_cast<std::size_t>(round)) % 1000);
          digests.push_back(entry(k).digest);
          expected.push_back(k % 3 == 0);
        }
        if (cache.contains_many(digests) != expected) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.stats().connects, 1u);

  // The caller reading its own reply still ends at call_timeout.
  pid_t pid = -1;
  auto stopped = stopped_cache(300ms, pid);
  const std::vector<Digest> three{entry(1).digest, entry(2).digest, entry(3).digest};
  auto what = error_of<TimeoutError>([&] { stopped->contains_many(three); });
  EXPECT_TRUE(has(what, "0.3 s (call_timeout)")) << what;
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  EXPECT_EQ(stopped->contains_many(three),
            (std::vector<bool>{true, false, true}));  // 3 saved above
}

TEST_F(RemoteSubprocess, AsyncCallsInFlightTogetherGetTheirOwnAnswers) {
  SshCache cache(options());
  std::vector<Entry> saved;
  for (int i = 0; i < 50; ++i) saved.push_back(entry(i * 7));
  cache.save_many(saved);
  // 600 calls from one thread, every seventh digest present: a reply handed to the wrong
  // call would show as a wrong answer.
  constexpr int kCalls = 600;
  std::vector<std::future<bool>> futures;
  for (int i = 0; i < kCalls; ++i) futures.push_back(cache.contains_async(entry(i).digest));
  // A blocking call from another thread shares the stream with them.
  std::thread sync([&] {
    EXPECT_TRUE(cache.contains(entry(7).digest));
    EXPECT_FALSE(cache.contains(entry(8).digest));
  });
  int wrong = 0;
  for (int i = 0; i < kCalls; ++i)
    if (futures[static_cast<std::size_t>(i)].get() != (i % 7 == 0 && i < 350)) ++wrong;
  sync.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(cache.stats().max_in_flight, 10u);
  EXPECT_EQ(cache.stats().connects, 1u);
  EXPECT_TRUE(cache.contains(entry(0).digest));  // the stream is in step afterwards
}

TEST_F(RemoteSubprocess, AsyncCallsFailWithTheConnectionWhenTheServerDies) {
  // A stopped server holds the calls in flight; a failure must come from its death, not
  // from a deadline.
  pid_t pid = -1;
  auto stopped = stopped_cache(120s, pid);
  auto& cache = *stopped;
  std::vector<std::future<bool>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(cache.contains_async(entry(1).digest));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  for (auto& f : futures) {
    auto what = error_of<RemoteConnectionError>([&] { f.get(); });
    EXPECT_TRUE(has(what, "signal 9")) << what;
    EXPECT_TRUE(has(what, "reconnect()")) << what;
  }
  // Later calls fail at once, through their future as well.
  auto late = cache.contains_async(entry(1).digest);
  EXPECT_THROW(late.get(), RemoteConnectionError);
  cache.reconnect();
  EXPECT_TRUE(cache.contains_async(entry(1).digest).get());
}

TEST_F(RemoteSubprocess, AsyncCallsToAStoppedServerTimeOutAndTheStreamStaysUsable) {
  pid_t pid = -1;
  auto stopped = stopped_cache(300ms, pid);
  auto& cache = *stopped;
  std::vector<std::future<bool>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(cache.contains_async(entry(1).digest));
  for (auto& f : futures) {
    auto what = error_of<TimeoutError>([&] { f.get(); });
    EXPECT_TRUE(has(what, "no reply to contains")) << what;
    EXPECT_TRUE(has(what, "0.3 s (call_timeout)")) << what;
  }
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  // The late replies are dropped; new calls get their own answers.
  EXPECT_TRUE(cache.contains_async(entry(1).digest).get());
  EXPECT_FALSE(cache.contains_async(entry(2).digest).get());
  EXPECT_TRUE(cache.contains(entry(1).digest));
  EXPECT_EQ(cache.stats().connects, 1u);
}

TEST_F(RemoteSubprocess, AnAsyncCallThatCannotConnectCarriesTheErrorInItsFuture) {
  auto o = options();
  o.quiver = (dir / "no-such-quiver").string();
  SshCache cache(o);
  std::future<bool> f;
  ASSERT_NO_THROW(f = cache.contains_async(entry(1).digest));
  EXPECT_THROW(f.get(), RemoteConnectionError);
}

TEST_F(RemoteSubprocess, NothingLeaksAfterClose) {
  const auto fds = testing::open_fd_count();
  const auto threads = testing::thread_count();
  std::vector<pid_t> pids;
  {
    SshCache cache(options());
    cache.save(entry(1));
    pids.push_back(cache.pid());
    EXPECT_GT(testing::open_fd_count(), fds);
    EXPECT_GT(testing::thread_count(), threads);
    ::kill(cache.pid(), SIGKILL);  // a dead connection must be cleaned up as well
    EXPECT_THROW(cache.contains(entry(1).digest), RemoteConnectionError);
    cache.reconnect();
    EXPECT_TRUE(cache.contains(entry(1).digest));
    pids.push_back(cache.pid());
    cache.close();
    EXPECT_EQ(testing::open_fd_count(), fds);
    SshCache lazy(options());  // destroyed connected, without close()
    lazy.connect();
    pids.push_back(lazy.pid());
  }
  for (auto pid : pids) EXPECT_TRUE(gone(pid)) << pid;
  int status = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  EXPECT_EQ(testing::open_fd_count(), fds);
  EXPECT_EQ(testing::thread_count(), threads);
}

TEST_F(RemoteSubprocess, ABackgroundChildOfTheServerDoesNotHoldCloseOpen) {
  // The child inherits the server's stdout and stderr: without cleanup, the pipes would
  // stay open (and close() would wait) until it ends.
  const auto pidfile = dir / "background.pid";
  auto o = options();
  o.setup_commands = {"(sleep 300 & echo $! > '" + pidfile.string() + "')"};
  const auto fds = testing::open_fd_count();
  {
    SshCache cache(o);
    cache.save(entry(1));
    cache.close();
  }
  pid_t background = 0;
  std::ifstream(pidfile) >> background;
  ASSERT_GT(background, 0);
  EXPECT_TRUE(testing::eventually([&] { return ended(background); }));
  EXPECT_EQ(testing::open_fd_count(), fds);
}

TEST_F(RemoteSubprocess, ALayerOfAStackFromConfig) {
  const auto local = dir / "local";
  std::ofstream(config, std::ios::app)
      << "\n[[layered]]\ntype = \"hdf5\"\npath = \"" << local.string()
      << "\"\nfsync = false\n\n[[layered]]\ntype = \"subprocess\"\nquiver = \""
      << testing::cli_path() << "\"\nconfig = \"" << config.string()
      << "\"\ncache_name = \"store\"\n";
  auto remote_only = entry(1);
  direct().save(remote_only);
  auto stack = open(OpenOptions{config, "layered"});
  auto* layers = dynamic_cast<CacheStack*>(stack.get());
  ASSERT_TRUE(layers);
  ASSERT_EQ(layers->layers().size(), 2u);
  EXPECT_TRUE(dynamic_cast<SshCache*>(layers->layers()[1].get()));
  EXPECT_EQ(stack->load_value(remote_only.digest), remote_only.result);
  Hdf5StoreOptions lo;
  lo.root = local;
  lo.fsync = false;
  EXPECT_TRUE(Hdf5Store(lo).contains(remote_only.digest));  // read through, copied up
  auto fresh = entry(2);
  stack->save(fresh);
  EXPECT_TRUE(Hdf5Store(lo).contains(fresh.digest));
  EXPECT_TRUE(stack->contains(fresh.digest));
}

}  // namespace
}  // namespace quiver
