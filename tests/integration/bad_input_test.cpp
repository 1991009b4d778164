// The bad-input catalog, end to end: malformed wire streams fed to `quiver serve --stdio`,
// path-like digests and broken configs given to the CLI, corrupt entry files, a store root
// the user may not write, a full disk, and a server printing garbage mid-session. Each test
// asserts a clear error (what and where) and that the entries stored before are intact.
// The decoder-level cases (every frame and codec fault in isolation) are in
// tests/unit/wire_frame_test.cpp and tests/unit/wire_codec_test.cpp; the store-level corrupt
// entry cases in tests/unit/hdf5_store_test.cpp (Hdf5StoreBadEntryTest).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/wire/codec.hpp>
#include <quiver/wire/protocol.hpp>
#include <thread>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::error_of;
using testing::RunResult;

bool has(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

/// One frame: header and payload.
std::string frame(std::uint16_t type, std::uint64_t id, const std::string& payload,
                  std::uint32_t length) {
  auto h = wire::encode_header(wire::FrameHeader{type, 0, id, length});
  return std::string(reinterpret_cast<const char*>(h.data()), h.size()) + payload;
}

/// m as one frame with request id.
std::string message(std::uint64_t id, const wire::Message& m) {
  auto body = wire::encode_body(m);
  return frame(static_cast<std::uint16_t>(wire::type_of(m)), id, body,
               static_cast<std::uint32_t>(body.size()));
}

/// The replies in a server's output (after its greeting), up to the end or a broken frame.
std::vector<wire::Incoming> replies_in(const std::string& out) {
  wire::FrameReader r(bytes_of(out));
  wire::receive_greeting(r);
  std::vector<wire::Incoming> replies;
  while (auto in = wire::receive_message(r)) replies.push_back(std::move(*in));
  return replies;
}

class BadInput : public ::testing::Test {
 protected:
  BadInput() {
    std::signal(SIGPIPE, SIG_IGN);  // a server that stops reading must not kill the test
    fs::create_directories(dir / "xdg-config");
    fs::create_directories(dir / "xdg-cache");
    write_config("[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = \"" + root.string() +
                 "\"\nfsync = false\n");
    env = {"QUIVER_CONFIG=" + config.string(), "XDG_CONFIG_HOME=" + (dir / "xdg-config").string(),
           "XDG_CACHE_HOME=" + (dir / "xdg-cache").string(), "QUIVER_LOG_LEVEL=warn"};
    seeded = {Entry::make(Call("seed", "1").arg("i", 1), testing::sample_value_of_every_kind()),
              Entry::make(Call("seed", "1").arg("i", 2), Value(testing::ramp(50000, 2))),
              Entry::make(Call("seed", "1").arg("i", 3), Value("three"))};
    auto s = store();
    for (const auto& e : seeded) s.save(e);
  }

  void write_config(const std::string& text) const { std::ofstream(config) << text; }

  Hdf5Store store() const {
    Hdf5StoreOptions o;
    o.root = root;
    o.fsync = false;
    return Hdf5Store(o);
  }

  RunResult quiver(const std::vector<std::string>& args, const std::string& input = {}) const {
    return testing::run_cli(args, env, input);
  }

  RunResult serve(const std::string& input) const { return quiver({"serve", "--stdio"}, input); }

  /// Every seeded entry loads with its contents, fsck is clean, and the store holds no
  /// entry besides the seeded ones and those in extra.
  void expect_intact(const std::vector<Entry>& extra = {}) const {
    auto s = store();
    for (const auto& e : seeded) {
      auto loaded = s.load(e.digest);
      ASSERT_TRUE(loaded) << "seeded entry " << e.digest.hex() << " no longer loads";
      EXPECT_EQ(loaded->result, e.result);
      EXPECT_EQ(loaded->call.function, e.call.function);
    }
    auto report = s.fsck(FsckOptions{});
    EXPECT_TRUE(report.clean()) << report.corrupt.size() << " corrupt, "
                                << report.temp_leftovers.size() << " temporary leftovers";
    std::size_t entries = 0;
    s.query(Query{}, [&](const EntrySummary&) { return ++entries, true; });
    EXPECT_EQ(entries, seeded.size() + extra.size());
    EXPECT_EQ(entry_files(), seeded.size() + extra.size());
  }

  /// Files named like entries (<2 hex>/<digest>.h5) under the root.
  std::size_t entry_files() const {
    std::size_t n = 0;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      const auto name = e.path().filename().string();
      if (e.is_regular_file() && e.path().extension() == ".h5" &&
          e.path().parent_path().parent_path() == root &&
          is_hex_prefix(e.path().parent_path().filename().string()) &&
          Digest::parse(name.substr(0, name.size() - 3)))
        ++n;
    }
    return n;
  }

  fs::path entry_path(const Digest& d) const { return store().entry_path(d); }

  /// An executable shell script at dir/name.
  fs::path script(std::string_view name, const std::string& body) const {
    auto p = dir / name;
    std::ofstream(p) << "#!/bin/sh\n" << body;
    fs::permissions(p, fs::perms::owner_all);
    return p;
  }

  testing::TempDir dir{"quiver-bad-input"};
  fs::path root = dir / "store";
  fs::path config = dir / "quiver.toml";
  std::vector<std::string> env;
  std::vector<Entry> seeded;
  Entry fresh = Entry::make(Call("fresh", "1").arg("n", 7), Value(testing::ramp(1000, 7)));
};

// ---- malformed wire streams at the server ---------------------------------------------------

TEST_F(BadInput, WrongMagicEndsTheSessionNamingTheOffsetAndSavesNothingAfterIt) {
  auto ping = message(1, wire::Ping{});
  auto save = message(2, wire::SaveRequest{fresh});
  auto r = serve(ping + "XXXX" + save.substr(4));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "bad frame magic 0x58585858")) << r.err;
  EXPECT_TRUE(has(r.err, "at stream offset " + std::to_string(ping.size()))) << r.err;
  // The ping before the bad frame may or may not be answered (the server may read ahead
  // before it answers); the save after it is never executed.
  auto replies = replies_in(r.out);
  ASSERT_LE(replies.size(), 1u);
  for (const auto& in : replies) EXPECT_EQ(in.request_id, 1u);
  expect_intact();
}

TEST_F(BadInput, TruncatedFrameEndsTheSessionAndLeavesNoPartialEntry) {
  auto save = message(2, wire::SaveRequest{fresh});
  ASSERT_GT(save.size(), 2000u);
  auto r = serve(save.substr(0, save.size() / 2));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "truncated frame")) << r.err;
  EXPECT_TRUE(has(r.err, "stream offset")) << r.err;
  EXPECT_TRUE(replies_in(r.out).empty());
  EXPECT_FALSE(store().contains(fresh.digest));
  expect_intact();
}

TEST_F(BadInput, LengthOverTheMaximumIsRefusedBeforeReadingThePayload) {
  auto r = serve(frame(0x0014, 3, std::string(64, 'x'), 0xffffffffu));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(has(r.err, "frame payload length 4294967295 exceeds the maximum")) << r.err;
  EXPECT_TRUE(has(r.err, "at stream offset 16")) << r.err;
  expect_intact();
}

TEST_F(BadInput, UnknownMessageTypeGetsAnErrorReplyAndTheSessionGoesOn) {
  auto r = serve(frame(0x7777, 42, "abc", 3) + message(43, wire::LoadRequest{seeded[1].digest}));
  EXPECT_EQ(r.status, 0) << r.err;
  auto replies = replies_in(r.out);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].request_id, 42u);
  auto what =
      error_of<ProtocolError>([&] { wire::expect_reply<wire::Pong>(std::move(replies[0])); });
  EXPECT_TRUE(has(what, "0x7777")) << what;
  EXPECT_EQ(replies[1].request_id, 43u);
  auto loaded = wire::expect_reply<wire::LoadReply>(std::move(replies[1])).entry;
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->result, seeded[1].result);
  expect_intact();
}

TEST_F(BadInput, RequestIdReusedIsAnsweredInOrderUnderThatId) {
  // The server answers requests in the order they come, each under the id it carried; ids
  // are the client's to keep unique, and a reused one neither mixes up nor loses a save.
  auto second = Entry::make(Call("fresh", "1").arg("n", 8), Value(std::int64_t{8}));
  auto r = serve(message(7, wire::SaveRequest{fresh}) + message(7, wire::SaveRequest{second}) +
                 message(7, wire::LoadRequest{fresh.digest}) +
                 message(7, wire::LoadRequest{second.digest}));
  EXPECT_EQ(r.status, 0) << r.err;
  auto replies = replies_in(r.out);
  ASSERT_EQ(replies.size(), 4u);
  for (const auto& in : replies) EXPECT_EQ(in.request_id, 7u);
  wire::expect_reply<wire::SaveReply>(std::move(replies[0]));
  wire::expect_reply<wire::SaveReply>(std::move(replies[1]));
  EXPECT_EQ(wire::expect_reply<wire::LoadReply>(std::move(replies[2])).entry->result, fresh.result);
  EXPECT_EQ(wire::expect_reply<wire::LoadReply>(std::move(replies[3])).entry->result,
            second.result);
  expect_intact({fresh, second});
}

TEST_F(BadInput, HugeDeclaredArrayShapeWithASmallPayloadIsRefusedAndNothingIsStored) {
  // A save whose result declares 10^12 float64 elements but carries 8 bytes.
  wire::Writer w;
  wire::encode(w, fresh.digest);
  wire::encode(w, fresh.call);
  w.u8(6);   // array
  w.u8(10);  // float64
  w.u8(1);   // rank
  w.u64(1'000'000'000'000ULL);
  std::array<std::byte, 8> payload{};
  w.bulk_implied(payload);
  wire::encode(w, fresh.meta);
  auto body = w.flatten();
  auto r = serve(frame(0x0014, 9, body, static_cast<std::uint32_t>(body.size())) +
                 message(10, wire::Ping{}));
  EXPECT_EQ(r.status, 0) << r.err;
  auto replies = replies_in(r.out);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].request_id, 9u);
  auto what =
      error_of<ProtocolError>([&] { wire::expect_reply<wire::SaveReply>(std::move(replies[0])); });
  EXPECT_TRUE(has(what, "8000000000000 bytes")) << what;
  EXPECT_TRUE(has(what, "save message (id 9)")) << what;
  wire::expect_reply<wire::Pong>(std::move(replies[1]));
  EXPECT_FALSE(store().contains(fresh.digest));
  expect_intact();
}

// ---- digests and prefixes --------------------------------------------------------------------

TEST_F(BadInput, PathLikeAndNonHexDigestsAreUsageErrorsOfEveryCommand) {
  const std::vector<std::string> bad{"",     "/",        "../",  "..",       "../../etc/passwd",
                                     "./ab", "ab/../cd", "ABCD", "zzzz0000", "abcd\n"};
  for (const char* command : {"get", "show", "evict", "expand", "shrink"}) {
    for (const auto& arg : bad) {
      auto r = quiver({command, arg});
      EXPECT_EQ(r.status, 2) << command << " '" << arg << "': " << r.err;
      EXPECT_EQ(r.err.rfind("quiver: ", 0), 0u) << r.err;
      EXPECT_TRUE(has(r.err, "PREFIX") || has(r.err, "DIGEST")) << command << ": " << r.err;
    }
  }
  EXPECT_TRUE(fs::exists(root));
  expect_intact();
}

TEST_F(BadInput, PathLikePrefixesAreRejectedByARemoteCacheToo) {
  SshCacheOptions o;
  o.transport = Transport::subprocess;
  o.quiver = testing::cli_path();
  o.config = config.string();
  o.cache_name = "t";
  o.env = {"QUIVER_LOG_LEVEL=warn"};
  o.connect_timeout = 20s;
  o.call_timeout = 20s;
  SshCache cache(o);
  for (std::string bad : {"", "/", "../", "../../etc", "ab/cd", "ABCD"}) {
    auto what = error_of<InvalidArgument>([&] { cache.expand(bad); });
    EXPECT_TRUE(has(what, "prefix")) << what;
  }
  EXPECT_EQ(cache.load(seeded[0].digest)->result, seeded[0].result);
  expect_intact();
}

// ---- configuration ---------------------------------------------------------------------------

TEST_F(BadInput, BrokenConfigsNameFileLineAndKeyAndTouchNoStore) {
  const auto other = dir / "other-store";
  const auto path = "\"" + other.string() + "\"";
  struct Case {
    std::string text;
    std::string line;  // file:line expected in the error
    std::string what;  // the key named (for a syntax error: what the parser expected)
  };
  const std::vector<Case> cases{
      {"[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = " + path + "\nfsync = \n", ":6",
       "expected value"},
      {"[default]\ncache = \"t\"\n[t]\ntype = \"hdf6\"\npath = " + path + "\n", ":4", "hdf6"},
      {"[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\n", ":3", "path"},
      {"[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = " + path + "\nfsync = \"yes\"\n",
       ":6", "fsync"},
      {"[default]\ncache = \"t\"\n[t]\ntype = \"hdf5\"\npath = " + path + "\ngzip = 42\n", ":6",
       "gzip"},
  };
  for (const auto& c : cases) {
    write_config(c.text);
    for (const auto& args :
         std::vector<std::vector<std::string>>{{"ls"},
                                               {"get", seeded[0].digest.hex()},
                                               {"put", "--function", "f", "--result-json", "1"}}) {
      auto r = quiver(args);
      EXPECT_NE(r.status, 0) << c.text;
      EXPECT_TRUE(has(r.err, config.string() + c.line)) << c.text << "\n" << r.err;
      EXPECT_TRUE(has(r.err, c.what)) << c.text << "\n" << r.err;
    }
    EXPECT_FALSE(fs::exists(other)) << "a broken config created its store\n" << c.text;
  }
  expect_intact();
}

// ---- corrupt entry files ---------------------------------------------------------------------

TEST_F(BadInput, CorruptEntryFilesAreReportedByTheCliAndTheOthersStillLoad) {
  const auto truncated = Entry::make(Call("bad", "1").arg("k", "t"), Value(testing::ramp(20000)));
  const auto flipped = Entry::make(Call("bad", "1").arg("k", "f"), Value(testing::ramp(20000)));
  const auto foreign = Entry::make(Call("bad", "1").arg("k", "x"), Value(1));
  {
    auto s = store();
    s.save(truncated);
    s.save(flipped);
  }
  fs::resize_file(entry_path(truncated.digest), fs::file_size(entry_path(truncated.digest)) / 2);
  {
    // Flip one bit in the middle of the array data (well past the HDF5 superblock).
    std::fstream f(entry_path(flipped.digest), std::ios::in | std::ios::out | std::ios::binary);
    const auto at = static_cast<std::streamoff>(fs::file_size(entry_path(flipped.digest)) / 2);
    f.seekg(at);
    char c = 0;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x10));
  }
  fs::create_directories(entry_path(foreign.digest).parent_path());
  std::ofstream(entry_path(foreign.digest)) << "not an HDF5 file\n";

  for (const auto* bad : {&truncated, &flipped, &foreign}) {
    auto r = quiver({"get", bad->digest.hex()});
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(has(r.err, entry_path(bad->digest).string()))
        << "the error should name the corrupt file: " << r.err;
  }
  for (const auto& e : seeded) {
    auto r = quiver({"get", e.digest.hex(), "--json"});
    EXPECT_EQ(r.status, 0) << r.err;
  }
  auto fsck = quiver({"fsck"});
  EXPECT_EQ(fsck.status, 3) << fsck.out << fsck.err;
  for (const auto* bad : {&truncated, &flipped, &foreign})
    EXPECT_TRUE(has(fsck.out, "corrupt: " + entry_path(bad->digest).string())) << fsck.out;
  auto repair = quiver({"fsck", "--repair"});
  EXPECT_EQ(repair.status, 4) << repair.out << repair.err;
  expect_intact();
}

// ---- a store root the user may not write ------------------------------------------------------

/// True when the unprivileged user quiver-bad exists or could be made (we are root).
bool have_unprivileged_user() {
  if (getpwnam("quiver-bad")) return true;
  if (geteuid() != 0) return false;
  auto r = testing::run({"useradd", "-m", "-p", "*", "quiver-bad"});
  return r.status == 0 || getpwnam("quiver-bad") != nullptr;
}

TEST_F(BadInput, ARootTheUserMayNotWriteRefusesSavesButStillServesLoads) {
  if (!have_unprivileged_user())
    GTEST_SKIP() << "needs root to create the unprivileged user quiver-bad";
  // The user may read everything (dir is 0755, owned by root) but write nothing of it.
  for (const auto& e : fs::recursive_directory_iterator(dir.path()))
    fs::permissions(e.path(),
                    fs::perms::others_read | fs::perms::others_exec | fs::perms::group_read |
                        fs::perms::group_exec,
                    fs::perm_options::add);
  fs::permissions(dir.path(), fs::perms::others_read | fs::perms::others_exec,
                  fs::perm_options::add);
  auto as_user = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"runuser", "-u", "quiver-bad", "--", "env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(testing::cli_path());
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run(argv);
  };
  auto put = as_user({"put", "--function", "f", "--result-json", "[1, 2]"});
  EXPECT_EQ(put.status, 1) << put.out << put.err;
  EXPECT_TRUE(has(put.err, root.string())) << put.err;
  EXPECT_TRUE(has(put.err, "ermission denied")) << put.err;
  for (const auto& e : seeded) {
    auto get = as_user({"get", e.digest.hex().substr(0, 12), "--json"});
    EXPECT_EQ(get.status, 0) << get.err;
  }
  auto evict = as_user({"evict", seeded[0].digest.hex()});
  EXPECT_NE(evict.status, 0) << evict.out << evict.err;
  EXPECT_TRUE(has(evict.err, "ermission denied")) << evict.err;
  expect_intact();
}

// ---- a full disk ---------------------------------------------------------------------------

/// Runs the CLI with a file-size limit of limit_kib (RLIMIT_FSIZE), SIGXFSZ ignored when
/// ignore_signal, so a write past the limit fails with EFBIG as on a full disk.
RunResult run_with_fsize_limit(const std::vector<std::string>& args,
                               const std::vector<std::string>& env, const std::string& input,
                               int limit_kib, bool ignore_signal) {
  std::vector<std::string> argv{"/bin/bash", "-c",
                                std::string(ignore_signal ? "trap '' XFSZ; " : "") + "ulimit -f " +
                                    std::to_string(limit_kib) + " && exec \"$0\" \"$@\"",
                                testing::cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::run(argv, env, input);
}

std::string big_json_array(std::size_t n) {
  std::string s = "[";
  for (std::size_t i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(i * 0.5 + 0.25);
  return s + "]";
}

TEST_F(BadInput, AFullDiskFailsTheSaveWithAStoreErrorAndLeavesNothingBehind) {
  auto r = run_with_fsize_limit({"put", "--function", "big", "--result-json", "-"}, env,
                                big_json_array(200000), 256, /*ignore_signal=*/true);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, root.string())) << r.err;
  EXPECT_TRUE(has(r.err, "File too large")) << r.err;
  EXPECT_FALSE(has(r.err, "Sanitizer")) << "the failed save crashed the program:\n" << r.err;
  expect_intact();
  std::size_t others = 0;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().extension() != ".h5" &&
        is_hex_prefix(e.path().parent_path().filename().string()))
      ++others;
  EXPECT_EQ(others, 0u) << "a temporary file of the failed save was left behind";
}

TEST_F(BadInput, AWriterKilledByTheFileSizeLimitLeavesNoVisibleEntry) {
  auto r = run_with_fsize_limit({"put", "--function", "big", "--result-json", "-"}, env,
                                big_json_array(200000), 256, /*ignore_signal=*/false);
  EXPECT_EQ(r.status, 128 + SIGXFSZ) << r.out << r.err;
  expect_intact();
}

// ---- a server printing garbage mid-session -------------------------------------------------

TEST_F(BadInput, AServerPrintingGarbageMidSessionIsAProtocolErrorThenReconnectWorks) {
  // The "server" is a script joining two FIFOs; this test speaks the server side through them:
  // a real greeting and hello reply, one good answer, then text where a frame should start.
  const auto c2s = dir / "c2s";
  const auto s2c = dir / "s2c";
  ASSERT_EQ(mkfifo(c2s.c_str(), 0600), 0);
  ASSERT_EQ(mkfifo(s2c.c_str(), 0600), 0);
  const auto fake =
      script("garbage-quiver",
             "cat '" + s2c.string() + "' 2>/dev/null &\nexec cat > '" + c2s.string() + "'\n");
  std::string served_error;
  std::thread server([&] {
    try {
      Fd in(::open(c2s.c_str(), O_RDONLY | O_CLOEXEC));
      Fd out(::open(s2c.c_str(), O_WRONLY | O_CLOEXEC));
      wire::FrameReader reader(in.get());
      wire::FrameWriter writer(out.get());
      wire::send_message(writer, 0, wire::Greeting{});
      auto hello = wire::receive_message(reader);
      wire::send_message(writer, hello->request_id, wire::HelloReply{"t", false});
      auto first = wire::receive_message(reader);
      wire::send_message(writer, first->request_id, wire::ContainsReply{true});
      auto second = wire::receive_message(reader);
      const std::string garbage = "Warning: module foo/1.2 loaded\n";
      ASSERT_EQ(::write(out.get(), garbage.data(), garbage.size()),
                static_cast<ssize_t>(garbage.size()));
      while (wire::receive_message(reader)) {
      }
    } catch (const std::exception& e) {
      served_error = e.what();
    }
  });

  SshCacheOptions o;
  o.transport = Transport::subprocess;
  o.quiver = fake.string();
  o.connect_timeout = 20s;
  o.call_timeout = 20s;
  SshCache cache(o);
  EXPECT_TRUE(cache.contains(seeded[0].digest));
  auto what = error_of<RemoteConnectionError>([&] { cache.contains(seeded[1].digest); });
  EXPECT_TRUE(has(what, "bad frame magic")) << what;
  EXPECT_TRUE(has(what, "stream offset")) << what;
  EXPECT_TRUE(has(what, "reconnect()")) << what;
  // Every later call fails the same way until reconnect(); none hangs.
  EXPECT_THROW(cache.contains(seeded[2].digest), RemoteConnectionError);
  cache.close();
  server.join();
  EXPECT_TRUE(served_error.empty()) << served_error;
  expect_intact();
}

}  // namespace
}  // namespace quiver
