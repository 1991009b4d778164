// remote: SshCache over a local subprocess and over ssh to 127.0.0.1, as ratios to floors
// measured in the same run over the same kind of stream (socket pairs, as SshCache's).
//
// Floors. Round trip: an echo (`cat`, locally or as `ssh host cat`) of one frame of the
// size of a contains request, through a socket pair as SshCache's own stream (and, for
// comparison, through a pipe); the measured side is contains() of a missing digest against a
// memory cache, so that only the transport and the protocol are timed. Throughput: the rate
// of unpipelined contains() over ssh (one call at a time), against which pipelined calls
// (many threads on one SshCache, or one thread keeping a window of contains_async() calls in
// flight) and batched calls (contains_many) are compared. Transfer: `ssh host 'cat >
// /dev/null'` of the array's bytes (save) and `ssh host 'head -c N /dev/zero'` read into a
// fresh buffer (load), each on an already-open ssh connection with the same ssh options
// (cipher) and, as SshCache's, socket pairs for ssh's stdin and stdout, against save() and
// load_value() of the array to a remote memory cache. Peak memory: the high-water RSS
// (VmHWM, reset through clear_refs before each transfer) of this process and of the remote
// server (the "remote" is this machine), as a multiple of the array size. Measured and
// floor runs alternate; the median is reported.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <bench/bench.hpp>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <quiver/core/call.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/remote/process.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/wire/frame.hpp>
#include <quiver/wire/protocol.hpp>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
namespace qb = quiver::bench;
using quiver::InvalidArgument;
using quiver::StoreError;

namespace {

constexpr char kUsage[] =
    R"(usage: bench_remote [options]
Times SshCache over a local `quiver serve --stdio` subprocess and over ssh against echoes of
the same bytes over the same kind of pipe, and prints a markdown table of ratios. The ssh
rows need a reachable host (scripts/bench.sh --only remote starts a private sshd).
  --quiver PATH         local quiver executable (default: quiver next to this program)
  --host HOST           ssh destination; without it only the subprocess rows run
  --ssh-config FILE     ssh -F FILE
  --cipher NAME         ssh -c NAME, for quiver and the floor alike (default: ssh's choice)
  --remote-quiver PATH  quiver on the remote host (default: quiver)
  --remote-dir DIR      remote directory for the server's quiver.toml; it must be on a file
                        system this program can write (as with the private sshd)
  --bytes N             array size of the transfer rows (default 1G; env QUIVER_BENCH_BYTES)
  --rounds N            round trips per latency row (default 4000)
  --threads N           threads of the pipelined row (default 16)
  --window N            contains_async() calls one thread keeps in flight (default 512)
  --batch N             digests per contains_many (default 1000)
  --reps N              repetitions of each transfer (default 3; env QUIVER_BENCH_REPS)
  --dir DIR             local scratch directory (default $TMPDIR or /tmp)
  --no-header           print the table rows without the header line
)";

constexpr double kRoundTripGoal = 1.25;  // at most, x the echo
constexpr double kPipelineGoal = 20;     // at least, x the unpipelined rate
constexpr double kTransferGoal = 0.8;    // at least, x the ssh cat rate
constexpr double kMemoryGoal = 1.5;      // at most, x the array size

/// Bytes that send_message writes for m.
std::size_t frame_size(const quiver::wire::Message& m) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw StoreError("pipe2 failed", "frame_size");
  quiver::Fd r(p[0]), w(p[1]);
  {
    quiver::wire::FrameWriter writer(w.get());
    quiver::wire::send_message(writer, 1, m);
  }
  w.reset();
  std::size_t n = 0;
  char buf[4096];
  for (ssize_t k; (k = ::read(r.get(), buf, sizeof buf)) > 0;) n += static_cast<std::size_t>(k);
  return n;
}

/// Reads one line (up to '\n') from fd.
std::string read_line(int fd, const std::string& what) {
  std::string line;
  char c;
  for (;;) {
    const auto k = ::read(fd, &c, 1);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw StoreError("no line from " + what, what);
    if (c == '\n') return line;
    line += c;
  }
}

std::vector<std::string> ssh_argv(const std::vector<std::string>& options, const std::string& host,
                                  const std::string& command) {
  std::vector<std::string> argv{"ssh"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.insert(argv.end(), {"-T", "--", host, command});
  return argv;
}

/// Echo round trips of `frame` bytes through p (which runs cat).
double echo_once(quiver::Process& p, std::vector<std::byte>& frame) {
  return qb::time_once([&] {
    qb::write_all(p.stdin_fd().get(), frame, "echo stdin");
    qb::read_all(p.stdout_fd().get(), frame, "echo stdout");
  });
}

/// An echo process and what its stdin and stdout are, for a row's name.
struct Echo {
  quiver::Process process;
  std::string kind;  ///< "socket pair" or "pipe"
};

/// Latency of contains() against echoes of the request's frame size, in alternating blocks:
/// one row per echo. SshCache's stream is a socket pair: the first echo should be one too.
std::vector<qb::Row> round_trip_rows(const std::string& name, quiver::SshCache& cache,
                                     std::vector<Echo>& echoes, std::uint64_t rounds) {
  const auto missing = quiver::Call("bench.remote.missing").digest();
  std::vector<std::byte> frame(frame_size(quiver::wire::ContainsRequest{missing}));
  for (int i = 0; i < 200; ++i) {  // warm up all (the echoes' ssh connects here)
    for (auto& e : echoes) echo_once(e.process, frame);
    cache.contains(missing);
  }
  qb::Samples measured;
  std::vector<qb::Samples> floors(echoes.size());
  constexpr std::uint64_t kBlocks = 10;
  for (std::uint64_t b = 0; b < kBlocks; ++b) {
    for (std::size_t e = 0; e < echoes.size(); ++e)
      for (std::uint64_t i = 0; i < rounds / kBlocks; ++i)
        floors[e].add(echo_once(echoes[e].process, frame));
    for (std::uint64_t i = 0; i < rounds / kBlocks; ++i)
      measured.add(qb::time_once([&] {
        if (cache.contains(missing)) throw StoreError("a missing digest was found", name);
      }));
  }
  std::vector<qb::Row> rows;
  for (std::size_t e = 0; e < echoes.size(); ++e)
    rows.push_back(qb::latency_row(name + " (vs echo of its " + std::to_string(frame.size()) +
                                       "-byte frame over a " + echoes[e].kind + ")",
                                   measured, floors[e],
                                   e == 0 ? std::optional(kRoundTripGoal) : std::nullopt));
  return rows;
}

qb::Row rate_row(std::string name, double rate, double floor_rate) {
  char m[64], f[64];
  std::snprintf(m, sizeof m, "%.0f calls/s", rate);
  std::snprintf(f, sizeof f, "%.0f calls/s", floor_rate);
  const double ratio = rate / floor_rate;
  return {std::move(name),
          m,
          f,
          qb::format_ratio(ratio),
          ">= " + qb::format_ratio(kPipelineGoal),
          ratio >= kPipelineGoal ? "yes" : "no"};
}

/// Unpipelined, pipelined (threads, and one thread with a window of asynchronous calls) and
/// batched contains() rates over cache. The four phases alternate, kPhaseRounds times, and
/// each rate is the median of its phases, so that a change of the machine's load during the
/// run moves the floor and the measured rates alike.
void throughput_rows(quiver::SshCache& cache, std::uint64_t rounds, std::uint64_t threads,
                     std::uint64_t window, std::uint64_t batch, std::vector<qb::Row>& rows) {
  std::vector<quiver::Digest> digests;
  for (std::uint64_t i = 0; i < std::max(rounds, batch); ++i)
    digests.push_back(
        quiver::Call("bench.remote.rate").arg("i", static_cast<std::int64_t>(i)).digest());
  const std::uint64_t total = rounds * 8;         // more calls: the pipelined rate is higher
  const std::uint64_t async_total = rounds * 32;  // and the asynchronous one higher still
  const std::span<const quiver::Digest> one_batch(digests.data(), batch);
  const std::uint64_t batches = std::max<std::uint64_t>(1, total / batch);
  // Rates as Samples of seconds per call, so that the median is the median rate.
  qb::Samples seq, pipe, async, batched;
  std::uint64_t threads_in_flight = 0, async_in_flight = 0;
  constexpr int kPhaseRounds = 3;
  for (int r = 0; r < kPhaseRounds; ++r) {
    seq.add(qb::time_once([&] {
              for (std::uint64_t i = 0; i < rounds; ++i) cache.contains(digests[i]);
            }) /
            static_cast<double>(rounds));

    std::atomic<std::uint64_t> next{0};
    pipe.add(qb::time_once([&] {
               std::vector<std::thread> pool;
               for (std::uint64_t t = 0; t < threads; ++t)
                 pool.emplace_back([&] {
                   for (std::uint64_t i; (i = next++) < total;)
                     cache.contains(digests[i % digests.size()]);
                 });
               for (auto& th : pool) th.join();
             }) /
             static_cast<double>(total));
    threads_in_flight = std::max(threads_in_flight, cache.stats().max_in_flight);

    async.add(qb::time_once([&] {
                std::deque<std::future<bool>> in_flight;
                for (std::uint64_t i = 0; i < async_total; ++i) {
                  if (in_flight.size() >= window) {
                    in_flight.front().get();
                    in_flight.pop_front();
                  }
                  in_flight.push_back(cache.contains_async(digests[i % digests.size()]));
                }
                for (auto& f : in_flight) f.get();
              }) /
              static_cast<double>(async_total));
    async_in_flight = std::max(async_in_flight, cache.stats().max_in_flight);

    batched.add(qb::time_once([&] {
                  for (std::uint64_t b = 0; b < batches; ++b)
                    if (cache.contains_many(one_batch).size() != batch)
                      throw StoreError("contains_many returned a wrong count", "bench_remote");
                }) /
                static_cast<double>(batches * batch));
  }
  std::cerr << "  pipelined: at most " << threads_in_flight << " calls in flight, then "
            << async_in_flight << " with contains_async()\n";
  const double seq_rate = 1 / seq.median();
  rows.push_back(rate_row("contains() pipelined, " + std::to_string(threads) +
                              " threads on one connection (vs unpipelined contains())",
                          1 / pipe.median(), seq_rate));
  rows.push_back(rate_row("contains_async(), one thread, " + std::to_string(window) +
                              " calls in flight (vs unpipelined contains())",
                          1 / async.median(), seq_rate));
  rows.push_back(rate_row(
      "contains_many(), " + std::to_string(batch) + " digests per call (vs unpipelined contains())",
      1 / batched.median(), seq_rate));
}

std::uint64_t checksum(const quiver::Buffer& b) {
  std::uint64_t h = 1469598103934665603u;
  const auto* p = b.data();
  const std::size_t words = b.size() / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, p + i * 8, 8);
    h = (h ^ w) * 1099511628211u;
  }
  return h;
}

qb::Row memory_row(const std::string& name, const std::vector<double>& peaks,
                   std::uint64_t nbytes) {
  double worst = 0;
  for (double p : peaks) worst = std::max(worst, p);
  char m[64], f[64];
  std::snprintf(m, sizeof m, "%.2f GiB", worst / double(1u << 30));
  std::snprintf(f, sizeof f, "%.2f GiB (the array)",
                static_cast<double>(nbytes) / double(1u << 30));
  const double ratio = worst / static_cast<double>(nbytes);
  return {name,
          m,
          f,
          qb::format_ratio(ratio),
          "<= " + qb::format_ratio(kMemoryGoal),
          ratio <= kMemoryGoal ? "yes" : "no"};
}

struct Remote {
  std::string host;
  std::vector<std::string> ssh_options;
};

/// Save and load of nbytes over ssh against ssh cat of the same bytes; peak memory of both
/// sides.
void transfer_rows(quiver::SshCache& cache, const Remote& remote, std::uint64_t nbytes,
                   std::uint64_t reps, const std::string& label, std::vector<qb::Row>& rows) {
  const auto server = static_cast<pid_t>(cache.info()["pid"].get<std::int64_t>());
  const pid_t self = ::getpid();
  const std::uint64_t elements = nbytes / 8;
  nbytes = elements * 8;
  std::uint64_t sum = 0;
  quiver::Digest digest;
  qb::Samples save_s, save_floor, load_s, load_floor, into_s, into_floor;
  std::vector<double> save_client, save_server, load_client, load_server, into_client;
  {
    quiver::Array a(quiver::DType::uint64, {elements});
    auto v = a.as_mutable<std::uint64_t>();
    std::uint64_t x = 0x9e3779b97f4a7c15u;
    for (auto& e : v) e = (x = x * 6364136223846793005u + 1442695040888963407u);
    sum = checksum(a.buffer());
    const auto entry = quiver::Entry::make(
        quiver::Call("bench.remote.transfer").arg("bytes", static_cast<std::int64_t>(nbytes)),
        quiver::Value(a));
    digest = entry.digest;
    const auto bytes = a.buffer().span();
    for (std::uint64_t r = 0; r < reps; ++r) {
      auto cat = quiver::Process::spawn(
          ssh_argv(remote.ssh_options, remote.host, "echo ready; exec cat > /dev/null"), {}, false,
          quiver::Stdio::sockets);
      read_line(cat.stdout_fd().get(), "ssh cat");  // connected: only the bytes are timed
      const double t_floor = qb::time_once([&] {
        qb::write_all(cat.stdin_fd().get(), bytes, "ssh cat stdin");
        cat.stdin_fd().reset();
        auto st = cat.wait_for(std::chrono::minutes(10));
        if (!st || st->code != 0) throw StoreError("ssh cat failed", "bench_remote");
      });
      save_floor.add(t_floor);
      cache.evict(digest);
      qb::reset_peak_rss(self);
      qb::reset_peak_rss(server);
      const double t = qb::time_once([&] { cache.save(entry); });
      save_s.add(t);
      save_client.push_back(static_cast<double>(qb::peak_rss(self)));
      save_server.push_back(static_cast<double>(qb::peak_rss(server)));
      std::cerr << "  save rep " << r + 1 << ": ssh cat " << qb::format_duration(t_floor)
                << ", quiver " << qb::format_duration(t) << "\n";
    }
  }  // the client drops its array: load starts from nothing
  // The floor of a load: nbytes from ssh host head -c N /dev/zero (connected beforehand)
  // read into memory, into a fresh buffer (dst null) or into dst.
  auto head_floor = [&](std::byte* dst) {
    auto head = quiver::Process::spawn(
        ssh_argv(remote.ssh_options, remote.host,
                 "echo ready; read go; exec head -c " + std::to_string(nbytes) + " /dev/zero"),
        {}, false, quiver::Stdio::sockets);
    read_line(head.stdout_fd().get(), "ssh head");
    const double t_floor = qb::time_once([&] {
      qb::write_all(head.stdin_fd().get(), std::as_bytes(std::span<const char>("go\n", 3)),
                    "ssh head stdin");
      quiver::Buffer b;
      if (!dst) dst = (b = quiver::Buffer::allocate(nbytes)).mutable_data();
      qb::read_all(head.stdout_fd().get(), std::span(dst, nbytes), "ssh head stdout");
    });
    head.close();
    return t_floor;
  };
  for (std::uint64_t r = 0; r < reps; ++r) {
    const double t_floor = head_floor(nullptr);
    load_floor.add(t_floor);
    qb::reset_peak_rss(self);
    qb::reset_peak_rss(server);
    std::optional<quiver::Value> v;
    const double t = qb::time_once([&] { v = cache.load_value(digest); });
    load_s.add(t);
    load_client.push_back(static_cast<double>(qb::peak_rss(self)));
    load_server.push_back(static_cast<double>(qb::peak_rss(server)));
    if (r == 0 && (!v || checksum(v->as_array().buffer()) != sum))
      throw StoreError("the loaded array differs from the saved one", "bench_remote");
    std::cerr << "  load rep " << r + 1 << ": ssh head " << qb::format_duration(t_floor)
              << ", quiver " << qb::format_duration(t) << "\n";
  }
  {
    // The memory a simulation already has for its field, touched: load_value_into receives
    // the array there; the floor reads ssh head's bytes into the same memory.
    std::vector<std::uint64_t> field(elements, 1);
    auto* dst = reinterpret_cast<std::byte*>(field.data());
    for (std::uint64_t r = 0; r < reps; ++r) {
      const double t_floor = head_floor(dst);
      into_floor.add(t_floor);
      qb::reset_peak_rss(self);
      std::optional<quiver::Value> v;
      const double t = qb::time_once([&] {
        v = cache.load_value_into(digest, {{"", quiver::ArrayInto::of(std::span(field))}});
      });
      into_s.add(t);
      into_client.push_back(static_cast<double>(qb::peak_rss(self)));
      if (r == 0 &&
          (!v || checksum(v->as_array().buffer()) != sum || v->as_array().buffer().data() != dst))
        throw StoreError("load_value_into did not receive the array into the field",
                         "bench_remote");
      std::cerr << "  load_value_into rep " << r + 1 << ": ssh head "
                << qb::format_duration(t_floor) << ", quiver " << qb::format_duration(t) << "\n";
    }
  }
  char size[32];
  std::snprintf(size, sizeof size, "%.3g GiB", static_cast<double>(nbytes) / double(1u << 30));
  rows.push_back(qb::throughput_row(
      std::string("save ") + size + " over " + label + " (vs ssh host cat > /dev/null)", nbytes,
      save_s.median(), save_floor.median(), kTransferGoal));
  rows.push_back(qb::throughput_row(std::string("load ") + size + " over " + label +
                                        " (vs ssh host head -c N /dev/zero, fresh buffer)",
                                    nbytes, load_s.median(), load_floor.median(), kTransferGoal));
  rows.push_back(qb::throughput_row(std::string("load_value_into ") + size + " over " + label +
                                        " (vs ssh host head -c N /dev/zero into the same memory)",
                                    nbytes, into_s.median(), into_floor.median(), kTransferGoal));
  rows.push_back(memory_row("peak RSS during save, client", save_client, nbytes));
  rows.push_back(memory_row("peak RSS during save, server (memory cache)", save_server, nbytes));
  rows.push_back(memory_row("peak RSS during load, client", load_client, nbytes));
  rows.push_back(memory_row("peak RSS during load, server (memory cache)", load_server, nbytes));
  rows.push_back(memory_row("peak RSS during load_value_into, client (its destination included)",
                            into_client, nbytes));
}

std::string write_memory_config(const fs::path& dir) {
  const auto file = dir / "bench-remote-quiver.toml";
  std::ofstream out(file);
  out << "[default]\ncache = \"mem\"\n\n[mem]\ntype = \"memory\"\n";
  if (!out) throw StoreError("cannot write", file.string());
  return file.string();
}

int run(int argc, char** argv) {
  qb::Flags flags(argc, argv, kUsage);
  const fs::path self_dir = fs::read_symlink("/proc/self/exe").parent_path();
  const std::string quiver = flags.text("--quiver", nullptr, (self_dir / "quiver").string());
  Remote remote;
  remote.host = flags.text("--host", nullptr, "");
  const std::string ssh_config = flags.text("--ssh-config", nullptr, "");
  const std::string cipher = flags.text("--cipher", nullptr, "");
  const std::string remote_quiver = flags.text("--remote-quiver", nullptr, "quiver");
  const std::string remote_dir = flags.text("--remote-dir", nullptr, "");
  const std::uint64_t bytes = flags.size("--bytes", "QUIVER_BENCH_BYTES", 1u << 30);
  const std::uint64_t rounds = flags.size("--rounds", nullptr, 4000);
  const std::uint64_t threads = flags.size("--threads", nullptr, 16);
  const std::uint64_t window = flags.size("--window", nullptr, 512);
  const std::uint64_t batch = flags.size("--batch", nullptr, 1000);
  const std::uint64_t reps = flags.size("--reps", "QUIVER_BENCH_REPS", 3);
  const fs::path dir = flags.text("--dir", "QUIVER_BENCH_DIR", qb::default_work_dir());
  const bool header = !flags.present("--no-header");
  flags.finish();
  if (bytes < 8 || rounds < 10 || threads == 0 || window == 0 || batch == 0 || reps == 0)
    throw InvalidArgument(
        "--bytes, --rounds, --threads, --window, --batch and --reps must be positive",
        "bench_remote");
  if (!ssh_config.empty()) remote.ssh_options = {"-F", ssh_config};
  if (!cipher.empty()) remote.ssh_options.insert(remote.ssh_options.end(), {"-c", cipher});

  std::vector<qb::Row> rows;
  qb::ScratchDir scratch(dir, "quiver-bench-remote");
  {
    std::cerr << "remote: local subprocess " << quiver << "\n";
    quiver::SshCacheOptions o;
    o.transport = quiver::Transport::subprocess;
    o.quiver = quiver;
    o.config = write_memory_config(scratch.path());
    quiver::SshCache cache(o);
    std::vector<Echo> echoes;
    echoes.push_back(
        {quiver::Process::spawn({"cat"}, {}, false, quiver::Stdio::sockets), "socket pair"});
    echoes.push_back({quiver::Process::spawn({"cat"}), "pipe"});
    for (auto& r :
         round_trip_rows("contains() round trip, local subprocess", cache, echoes, rounds))
      rows.push_back(std::move(r));
  }
  if (!remote.host.empty()) {
    std::cerr << "remote: ssh " << remote.host << "\n";
    quiver::SshCacheOptions o;
    o.host = remote.host;
    o.ssh_options = remote.ssh_options;
    o.quiver = remote_quiver;
    if (!remote_dir.empty()) o.config = write_memory_config(remote_dir);
    o.call_timeout = std::chrono::minutes(10);
    quiver::SshCache cache(o);
    {
      std::vector<Echo> echoes;
      echoes.push_back(
          {quiver::Process::spawn(ssh_argv(remote.ssh_options, remote.host, "exec cat"), {}, false,
                                  quiver::Stdio::sockets),
           "socket pair"});
      for (auto& r :
           round_trip_rows("contains() round trip, ssh to " + remote.host, cache, echoes, rounds))
        rows.push_back(std::move(r));
    }
    throughput_rows(cache, rounds, threads, window, batch, rows);
    transfer_rows(cache, remote, bytes, reps, "ssh" + (cipher.empty() ? "" : " (" + cipher + ")"),
                  rows);
  }
  qb::print_table(std::cout, rows, header);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::bench::run_main("bench_remote", run, argc, argv);
}
