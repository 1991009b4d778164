// store_io: save and load of one large float64 array through Hdf5Store, as throughput
// ratios to plain POSIX I/O of the same bytes, measured in the same run and directory.
//
// Floors. Save: write() of the array's bytes to a temporary file, fsync, close, rename into
// place, fsync the directory (what a durable store save must do at least). Load: read() of
// that file into a preallocated, already-touched plain heap buffer (small pages); the store's
// load_value_into() reads into that same buffer, like with like. A load that returns a new
// array is also set against read() into a freshly allocated buffer. Loads are
// measured with the page cache warm for both sides (each file was just written), and optionally
// cold: the file's pages evicted with posix_fadvise(DONTNEED) before each read, for both sides
// alike. Measurements alternate between floor and store so that drift on a shared machine hits
// both; each is repeated and the median reported. Loads into caller memory and loads of new
// arrays run in separate passes: freeing a loaded 1 GiB array slows what runs next, and must
// not fall before one side of a comparison only.
#include <fcntl.h>
#include <unistd.h>

#include <bench/bench.hpp>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <numbers>
#include <quiver/core/call.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/fd.hpp>
#include <quiver/store/h5_chunks.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace qb = quiver::bench;
using quiver::StoreError;

namespace {

constexpr char kUsage[] =
    R"(usage: bench_store_io [options]
Saves and loads one float64 array through Hdf5Store and through plain write()/read() of the
same bytes in the same directory, and prints a markdown table of throughput ratios.
  --bytes N         array size, K/M/G suffixes allowed (default 1G; env QUIVER_BENCH_BYTES)
  --reps N          repetitions of each measurement; the median is reported
                    (default 3; env QUIVER_BENCH_REPS)
  --dir DIR         directory to work in (default $TMPDIR or /tmp; env QUIVER_BENCH_DIR)
  --cache MODE      page cache state for loads: warm, cold or both (default warm;
                    env QUIVER_BENCH_CACHE)
  --gzip-level N    deflate level of the gzip rows (default 1)
  --chunk-bytes L   extra rows with these chunk sizes (comma-separated, e.g. 1M,16M),
                    checksum on and off
  --gzip-bytes N    array size of the gzip rows, which are slow (default 64M;
                    env QUIVER_BENCH_GZIP_BYTES)
  --no-header       print the table rows without the header line
)";

constexpr double kSaveGoal = 0.8;
constexpr double kLoadGoal = 0.8;

/// A smooth field with noise in the low mantissa bits: compresses like typical simulation
/// output (poorly), unlike a ramp or zeros.
quiver::Array make_field(std::uint64_t elements) {
  quiver::Array a(quiver::DType::float64, {elements});
  std::vector<double> wave(1 << 16);
  for (std::size_t i = 0; i < wave.size(); ++i)
    wave[i] =
        std::sin(2 * std::numbers::pi * static_cast<double>(i) / static_cast<double>(wave.size()));
  std::uint64_t state = 0x9e3779b97f4a7c15u;
  auto v = a.as_mutable<double>();
  for (std::size_t i = 0; i < v.size(); ++i) {
    state += 0x9e3779b97f4a7c15u;  // splitmix64
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    v[i] = wave[i & 0xffff] + static_cast<double>(z >> 11) * 0x1.0p-53 * 1e-6;
  }
  return a;
}

/// The least a durable save does: write, fsync, close, rename into place, fsync directory.
void raw_save(const fs::path& tmp, const fs::path& final_path, std::span<const std::byte> data) {
  quiver::Fd fd(::open(tmp.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw StoreError(std::string("cannot create: ") + std::strerror(errno), tmp.string());
  qb::write_all(fd.get(), data, tmp);
  if (::fsync(fd.get()) != 0)
    throw StoreError(std::string("fsync failed: ") + std::strerror(errno), tmp.string());
  fd.reset();
  fs::rename(tmp, final_path);
  qb::fsync_directory(final_path.parent_path());
}

void raw_load(const fs::path& path, std::span<std::byte> out) {
  quiver::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw StoreError(std::string("cannot open: ") + std::strerror(errno), path.string());
  qb::read_all(fd.get(), out, path);
}

struct Variant {
  std::string name;
  quiver::Hdf5StoreOptions options;
  bool has_goal = false;
  bool into = false;  // also load into caller memory (load_value_into)
};

struct Settings {
  std::uint64_t reps = 3;
  bool warm = true;
  bool cold = false;
};

/// "1 GiB", "64 MiB", "256 KiB".
std::string size_text(std::uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB"};
  auto x = static_cast<double>(bytes);
  std::size_t u = 0;
  for (; u < 3 && x >= 1024; ++u) x /= 1024;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g %s", x, units[u]);
  return buf;
}

/// Measures saves and loads of one array of nbytes through each variant's store and through
/// the raw floor, all in dir; appends the table rows.
void measure(const fs::path& dir, std::uint64_t nbytes, std::vector<Variant> variants,
             const Settings& settings, std::vector<qb::Row>& rows) {
  const std::uint64_t elements = nbytes / sizeof(double);
  const std::string size = size_text(nbytes);
  std::cerr << "store_io: " << size << " float64 array, " << settings.reps << " reps, in " << dir
            << "\n";
  const quiver::Array field = make_field(elements);
  const quiver::Entry entry = quiver::Entry::make(
      quiver::Call("bench.store_io", "1").arg("elements", static_cast<std::int64_t>(elements)),
      quiver::Value(field));
  const std::span<const std::byte> raw_bytes = field.buffer().span();

  std::vector<std::unique_ptr<quiver::Hdf5Store>> stores;
  for (std::size_t k = 0; k < variants.size(); ++k) {
    variants[k].options.root = dir / ("store-" + std::to_string(k));
    stores.push_back(std::make_unique<quiver::Hdf5Store>(variants[k].options));
  }
  const fs::path raw_dir = dir / "raw";
  fs::create_directories(raw_dir);
  const fs::path raw_tmp = raw_dir / "array.tmp";
  const fs::path raw_file = raw_dir / "array.bin";

  // Saves: the floor and every variant in turn, each starting without an old file to replace.
  qb::Samples raw_save_s;
  std::vector<qb::Samples> save_s(variants.size());
  for (std::uint64_t r = 0; r < settings.reps; ++r) {
    fs::remove(raw_file);
    const double t_raw = qb::time_once([&] { raw_save(raw_tmp, raw_file, raw_bytes); });
    raw_save_s.add(t_raw);
    std::cerr << "  save rep " << r + 1 << ": raw " << qb::format_duration(t_raw);
    for (std::size_t k = 0; k < variants.size(); ++k) {
      stores[k]->evict(entry.digest);
      const double t = qb::time_once([&] { stores[k]->save(entry); });
      save_s[k].add(t);
      std::cerr << ", " << variants[k].name << " " << qb::format_duration(t);
    }
    std::cerr << "\n";
  }
  for (std::size_t k = 0; k < variants.size(); ++k) {
    std::string name = "save " + size + ", " + variants[k].name;
    if (variants[k].options.gzip > 0) {
      const auto file_bytes = fs::file_size(stores[k]->entry_path(entry.digest));
      char buf[48];
      std::snprintf(buf, sizeof(buf), " (file %.0f%% of raw)",
                    100.0 * static_cast<double>(file_bytes) / static_cast<double>(nbytes));
      name += buf;
    }
    rows.push_back(
        qb::throughput_row(std::move(name), nbytes, save_s[k].median(), raw_save_s.median(),
                           variants[k].has_goal ? std::optional(kSaveGoal) : std::nullopt));
  }

  // Loads: the floor reads into a plain heap buffer (operator new[], small pages) allocated
  // and touched beforehand; one reference reads into such a buffer freshly allocated per
  // read, as any API returning a new array must, and another into a fresh
  // quiver::Buffer::allocate() buffer (huge pages, as a loaded array gets).
  const std::unique_ptr<std::byte[]> prealloc(new std::byte[nbytes]);
  std::memset(prealloc.get(), 0, nbytes);
  const std::span<std::byte> prealloc_span(prealloc.get(), nbytes);
  std::vector<std::string> modes;
  if (settings.warm) modes.push_back("warm");
  if (settings.cold) modes.push_back("cold");
  for (const std::string& mode : modes) {
    const bool cold = mode == "cold";
    qb::Samples raw_load_s, fresh_load_s, huge_load_s;
    std::vector<qb::Samples> load_s(variants.size()), into_s(variants.size());
    // 1. Into memory the caller holds: read() and load_value_into() into the same buffer,
    // in turn, with nothing allocated or freed between them (see the top of this file).
    const quiver::ArrayDestinations into{
        {"", quiver::ArrayInto{quiver::DType::float64, prealloc_span}}};
    for (std::uint64_t r = 0; r < settings.reps; ++r) {
      if (cold) qb::evict_from_page_cache(raw_file);
      const double t_raw = qb::time_once([&] { raw_load(raw_file, prealloc_span); });
      raw_load_s.add(t_raw);
      if (r == 0 && std::memcmp(prealloc.get(), raw_bytes.data(), nbytes) != 0)
        throw StoreError("raw file differs from the array written", raw_file.string());
      std::cerr << "  load " << mode << " rep " << r + 1 << ": raw " << qb::format_duration(t_raw);
      for (std::size_t k = 0; k < variants.size(); ++k) {
        if (!variants[k].into) continue;
        const fs::path path = stores[k]->entry_path(entry.digest);
        if (cold) qb::evict_from_page_cache(path);
        if (r == 0) std::memset(prealloc.get(), 0, nbytes);
        const double t_into =
            qb::time_once([&] { (void)stores[k]->load_value_into(entry.digest, into); });
        into_s[k].add(t_into);
        std::cerr << ", " << variants[k].name << " into caller memory "
                  << qb::format_duration(t_into);
        if (r == 0 && std::memcmp(prealloc.get(), raw_bytes.data(), nbytes) != 0)
          throw StoreError("array loaded into caller memory differs (" + variants[k].name + ")",
                           path.string());
      }
      std::cerr << "\n";
    }
    // 2. New arrays: read() into a freshly allocated buffer (small pages, and huge pages as
    // a loaded array gets) and load() of each variant.
    for (std::uint64_t r = 0; r < settings.reps; ++r) {
      if (cold) qb::evict_from_page_cache(raw_file);
      quiver::Buffer huge;
      const double t_huge = qb::time_once([&] {
        huge = quiver::Buffer::allocate(nbytes);
        raw_load(raw_file, std::span<std::byte>(huge.mutable_data(), nbytes));
      });
      huge = {};
      huge_load_s.add(t_huge);
      if (cold) qb::evict_from_page_cache(raw_file);
      std::unique_ptr<std::byte[]> fresh;
      const double t_fresh = qb::time_once([&] {
        fresh.reset(new std::byte[nbytes]);
        raw_load(raw_file, std::span<std::byte>(fresh.get(), nbytes));
      });
      fresh.reset();
      fresh_load_s.add(t_fresh);
      std::cerr << "  load " << mode << " rep " << r + 1 << ": raw fresh buffer "
                << qb::format_duration(t_fresh) << ", raw fresh huge-page buffer "
                << qb::format_duration(t_huge);
      for (std::size_t k = 0; k < variants.size(); ++k) {
        const fs::path path = stores[k]->entry_path(entry.digest);
        if (cold) qb::evict_from_page_cache(path);
        std::optional<quiver::Entry> loaded;
        const double t = qb::time_once([&] { loaded = stores[k]->load(entry.digest); });
        load_s[k].add(t);
        std::cerr << ", " << variants[k].name << " " << qb::format_duration(t);
        if (r == 0 && (!loaded || !(loaded->result == entry.result)))
          throw StoreError("loaded entry differs from the saved one (" + variants[k].name + ")",
                           path.string());
      }
      std::cerr << "\n";
    }
    const std::string what = "load " + size + " (" + mode + "), ";
    // Like with like: a load into the caller's memory against read() into that memory; a load
    // that returns a new array against read() into a new buffer.
    for (std::size_t k = 0; k < variants.size(); ++k) {
      if (variants[k].into)
        rows.push_back(
            qb::throughput_row(what + variants[k].name + ", into caller memory (load_value_into)",
                               nbytes, into_s[k].median(), raw_load_s.median(),
                               variants[k].has_goal ? std::optional(kLoadGoal) : std::nullopt));
      rows.push_back(qb::throughput_row(what + variants[k].name + ", new array", nbytes,
                                        load_s[k].median(), raw_load_s.median()));
      if (variants[k].has_goal)
        rows.push_back(qb::throughput_row(
            what + variants[k].name + ", new array, vs read() into a fresh buffer", nbytes,
            load_s[k].median(), fresh_load_s.median(), kLoadGoal));
    }
    rows.push_back(
        qb::throughput_row("reference: read() " + size + " (" + mode + ") into a fresh buffer",
                           nbytes, fresh_load_s.median(), raw_load_s.median()));
    rows.push_back(qb::throughput_row("reference: read() " + size + " (" + mode +
                                          ") into a fresh huge-page buffer (Buffer::allocate)",
                                      nbytes, huge_load_s.median(), raw_load_s.median()));
  }
}

/// fletcher32 with every kernel this machine runs, over a piece the size the store reads and
/// checksums at a time (256 KiB, in the cache), against memcpy() of that piece.
void measure_checksum(std::uint64_t reps, std::vector<qb::Row>& rows) {
  constexpr std::size_t kPiece = std::size_t{256} << 10, kRounds = 4096;  // 1 GiB in all
  std::vector<std::byte> piece(kPiece), copy(kPiece);
  for (std::size_t i = 0; i < kPiece; ++i) piece[i] = static_cast<std::byte>(i * 2654435761u >> 13);
  std::uint32_t sink = 0;
  struct Kernel {
    quiver::h5::Isa isa;
    const char* name;
    qb::Samples samples;
  };
  std::vector<Kernel> kernels;
  for (auto [isa, name] :
       {std::pair{quiver::h5::Isa::baseline, "baseline"}, std::pair{quiver::h5::Isa::avx2, "AVX2"},
        std::pair{quiver::h5::Isa::avx512, "AVX-512BW"}})
    if (quiver::h5::fletcher32_supports(isa)) kernels.push_back({isa, name, {}});
  qb::Samples floor;
  for (std::uint64_t r = 0; r < reps; ++r) {
    floor.add(qb::time_once([&] {
      for (std::size_t k = 0; k < kRounds; ++k) {
        std::memcpy(copy.data(), piece.data(), kPiece);
        sink += std::to_integer<std::uint32_t>(copy[k % kPiece]);
      }
    }));
    for (Kernel& kernel : kernels)
      kernel.samples.add(qb::time_once([&] {
        for (std::size_t k = 0; k < kRounds; ++k) sink += quiver::h5::fletcher32(piece, kernel.isa);
      }));
  }
  for (const Kernel& kernel : kernels)
    rows.push_back(qb::throughput_row(
        std::string("fletcher32, ") + kernel.name + " kernel, 256 KiB in cache, vs memcpy() of it",
        kPiece * kRounds, kernel.samples.median(), floor.median()));
  if (sink == 1) std::cerr << "";  // keeps the work
}

int run(int argc, char** argv) {
  qb::Flags flags(argc, argv, kUsage);
  const std::uint64_t bytes = flags.size("--bytes", "QUIVER_BENCH_BYTES", 1u << 30);
  const std::uint64_t gzip_bytes = flags.size("--gzip-bytes", "QUIVER_BENCH_GZIP_BYTES", 64u << 20);
  Settings settings;
  settings.reps = flags.size("--reps", "QUIVER_BENCH_REPS", 3);
  const fs::path dir = flags.text("--dir", "QUIVER_BENCH_DIR", qb::default_work_dir());
  const std::string cache_mode = flags.text("--cache", "QUIVER_BENCH_CACHE", "warm");
  const auto gzip_level = static_cast<int>(flags.size("--gzip-level", nullptr, 1));
  const std::string chunk_list = flags.text("--chunk-bytes", nullptr, "");
  const bool header = !flags.present("--no-header");
  flags.finish();
  if (bytes < sizeof(double) || gzip_bytes < sizeof(double) || settings.reps == 0)
    throw quiver::InvalidArgument("--bytes, --gzip-bytes and --reps must be positive",
                                  "bench_store_io");
  if (cache_mode != "warm" && cache_mode != "cold" && cache_mode != "both")
    throw quiver::InvalidArgument("--cache must be warm, cold or both", "bench_store_io");
  settings.warm = cache_mode != "cold";
  settings.cold = cache_mode != "warm";

  std::vector<Variant> plain(2);
  Variant gzip;
  plain[0].name = "default (fletcher32)";
  plain[0].has_goal = true;
  plain[1].name = "checksum=false";
  plain[1].options.checksum = false;
  for (Variant& v : plain) v.into = true;
  gzip.name = "gzip=" + std::to_string(gzip_level);
  gzip.options.gzip = gzip_level;
  for (std::size_t begin = 0; begin < chunk_list.size();) {
    std::size_t end = std::min(chunk_list.find(',', begin), chunk_list.size());
    const std::uint64_t chunk =
        qb::parse_size(chunk_list.substr(begin, end - begin), "--chunk-bytes");
    for (const bool checksum : {true, false}) {
      Variant v;
      v.name = std::string(checksum ? "default" : "checksum=false") +
               ", chunk_bytes=" + size_text(chunk);
      v.options.checksum = checksum;
      v.options.chunk_bytes = chunk;
      v.into = true;
      plain.push_back(std::move(v));
    }
    begin = end + 1;
  }

  // Whole elements only; the gzip rows share the main array when the sizes agree.
  const auto whole = [](std::uint64_t b) { return b / sizeof(double) * sizeof(double); };
  std::vector<std::pair<std::uint64_t, std::vector<Variant>>> groups{{whole(bytes), plain}};
  if (whole(gzip_bytes) == whole(bytes))
    groups[0].second.push_back(gzip);
  else
    groups.push_back({whole(gzip_bytes), {gzip}});
  std::vector<qb::Row> rows;
  measure_checksum(settings.reps, rows);
  for (const auto& [nbytes, variants] : groups) {
    qb::ScratchDir scratch(dir, "quiver-bench-io");
    measure(scratch.path(), nbytes, variants, settings, rows);
  }
  qb::print_table(std::cout, rows, header);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::bench::run_main("bench_store_io", run, argc, argv);
}
