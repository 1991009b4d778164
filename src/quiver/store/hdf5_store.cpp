#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <quiver/core/log.hpp>
#include <quiver/core/version.hpp>
#include <quiver/store/h5_entry.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/index.hpp>
#include <quiver/store/index_fs.hpp>
#include <quiver/store/prefix.hpp>

namespace quiver {

namespace {

constexpr std::string_view kSuffix = ".h5";
constexpr std::string_view kTempMarker = ".h5.tmp.";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Deletes a temporary file unless the write it belongs to completed.
struct RemoveOnFailure {
  std::string path;
  bool armed = true;
  ~RemoveOnFailure() {
    if (armed) ::unlink(path.c_str());
  }
};

// A file in one of the <2 hex> directories of a store.
struct StoreFile {
  enum class Kind { entry, temp, misplaced } kind;
  std::string path, name;
  Digest digest;  // for entries
};

// True when a temporary file name says it belongs to a live process on this host.
bool writer_alive(std::string_view name) {
  auto rest = name.substr(name.find(kTempMarker) + kTempMarker.size());  // host.pid.counter
  auto counter_dot = rest.rfind('.');
  if (counter_dot == std::string_view::npos || counter_dot == 0) return false;
  auto pid_dot = rest.rfind('.', counter_dot - 1);
  if (pid_dot == std::string_view::npos || rest.substr(0, pid_dot) != this_host()) return false;
  auto pid_text = rest.substr(pid_dot + 1, counter_dot - pid_dot - 1);
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), pid);
  if (ec != std::errc() || end != pid_text.data() + pid_text.size() || pid <= 0) return false;
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

struct Hdf5Store::Impl {
  Hdf5StoreOptions options;
  std::string root;
  h5::WriteOptions write;
  EntryIndex index;
  std::shared_ptr<spdlog::logger> log = logger("quiver.store");

  Impl(Hdf5StoreOptions o, std::string r)
      : options(std::move(o)),
        root(std::move(r)),
        write{options.checksum, options.gzip, options.chunk_bytes, options.fsync},
        index(root + "/index") {}

  std::string path_of(const Digest& d) const {
    auto hex = d.hex();
    std::string path;
    path.reserve(root.size() + 4 + hex.size() + kSuffix.size());
    path.append(root).append("/").append(hex, 0, 2).append("/").append(hex).append(kSuffix);
    return path;
  }

  void warn_bad(const std::string& path, const std::string& reason) const {
    log->warn("{}: bad entry, treated as a miss: {}", path, reason);
  }

  // The entry stored under d, checked against its file name; nullopt on a miss or a bad file.
  std::optional<Entry> read(const Digest& d, h5::Parts parts,
                            const ArrayDestinations* into = nullptr) const {
    auto path = path_of(d);
    if (!exists(path)) return std::nullopt;
    try {
      Entry e = h5::read_entry(path, parts, into);
      if (e.digest != d) {
        warn_bad(path, "its digest attribute " + e.digest.hex() + " does not match its name");
        return std::nullopt;
      }
      return e;
    } catch (const CorruptEntry& ex) {
      if (exists(path)) warn_bad(path, ex.message());  // else evicted while being read
      return std::nullopt;
    }
  }

  // The digests stored in the directory named by the first two characters of prefix.
  std::vector<Digest> digests_in(std::string_view prefix) const {
    std::vector<Digest> out;
    for (const auto& name : fs::list_dir(root + "/" + std::string(prefix.substr(0, 2)))) {
      if (name.size() != kDigestHexLength + kSuffix.size() || !name.ends_with(kSuffix)) continue;
      if (auto d = Digest::parse(std::string_view(name).substr(0, kDigestHexLength)))
        out.push_back(*d);
    }
    return out;
  }

  // Every entry, temporary and misplaced *.h5 file under the <2 hex> directories.
  std::vector<StoreFile> list_files() const {
    std::vector<StoreFile> files;
    for (const auto& dir : fs::list_dir(root)) {
      if (dir.size() != 2 || !is_hex_prefix(dir)) continue;
      for (const auto& name : fs::list_dir(root + "/" + dir)) {
        StoreFile f{StoreFile::Kind::misplaced, root + "/" + dir + "/" + name, name, {}};
        if (name.starts_with('.') && name.find(kTempMarker) != std::string::npos) {
          f.kind = StoreFile::Kind::temp;
        } else if (name.ends_with(kSuffix)) {
          auto d = Digest::parse(std::string_view(name).substr(0, name.size() - kSuffix.size()));
          if (d && name.starts_with(dir)) {
            f.kind = StoreFile::Kind::entry;
            f.digest = *d;
          }
        } else {
          continue;
        }
        files.push_back(std::move(f));
      }
    }
    std::sort(files.begin(), files.end(),
              [](const StoreFile& a, const StoreFile& b) { return a.path < b.path; });
    return files;
  }

  // The entry in f, checked against its name; throws CorruptEntry.
  EntrySummary check(const StoreFile& f, h5::Parts parts) const {
    if (f.kind != StoreFile::Kind::entry)
      throw CorruptEntry("not named <digest>.h5 in the directory of its first two characters",
                         f.path);
    Entry e = h5::read_entry(f.path, parts);
    if (e.digest != f.digest)
      throw CorruptEntry("its digest attribute " + e.digest.hex() + " does not match its name",
                         f.path);
    EntrySummary s = EntrySummary::of(e);
    struct stat st {};
    if (::stat(f.path.c_str(), &st) == 0) s.bytes = static_cast<std::uint64_t>(st.st_size);
    return s;
  }

  void quarantine(const StoreFile& f) const {
    auto dir = root + "/quarantine";
    fs::make_dir(dir);
    auto target = dir + "/" + f.name;
    for (int i = 1; exists(target); ++i) target = dir + "/" + f.name + "." + std::to_string(i);
    if (::rename(f.path.c_str(), target.c_str()) != 0)
      throw StoreError("cannot move a bad entry to quarantine: " + fs::error_text(errno), f.path);
    log->warn("{}: moved to {}", f.path, target);
  }
};

Hdf5Store::Hdf5Store(Hdf5StoreOptions options) {
  if (options.root.empty()) throw InvalidArgument("an HDF5 store needs a root", "Hdf5Store");
  if (options.gzip < 0 || options.gzip > 9)
    throw InvalidArgument("gzip must be 0 to 9, not " + std::to_string(options.gzip), "Hdf5Store");
  if (options.chunk_bytes == 0) throw InvalidArgument("chunk_bytes must be positive", "Hdf5Store");
  std::error_code ec;
  auto root = std::filesystem::absolute(options.root, ec).lexically_normal();
  if (!ec && !options.create_root) {
    const auto type = std::filesystem::status(root, ec).type();
    if (type == std::filesystem::file_type::not_found)
      throw StoreError("the store root does not exist (a read-only cache does not create it)",
                       root.string());
    if (ec) throw StoreError("cannot read the store root: " + ec.message(), root.string());
    if (type != std::filesystem::file_type::directory)
      throw StoreError("the store root is not a directory", root.string());
  }
  if (!ec) std::filesystem::create_directories(root, ec);
  if (ec) throw StoreError("cannot create the store root: " + ec.message(), options.root.string());
  auto text = root.string();
  while (text.size() > 1 && text.ends_with('/')) text.pop_back();
  impl_ = std::make_unique<Impl>(std::move(options), std::move(text));
}

Hdf5Store::~Hdf5Store() = default;

const Hdf5StoreOptions& Hdf5Store::options() const noexcept {
  return impl_->options;
}

std::filesystem::path Hdf5Store::entry_path(const Digest& digest) const {
  return impl_->path_of(digest);
}

void Hdf5Store::save(const Entry& entry) {
  if (entry.call.digest() != entry.digest)
    throw InvalidArgument("entry digest " + entry.digest.hex() + " does not match its call",
                          "Hdf5Store::save");
  auto hex = entry.digest.hex();
  auto dir = impl_->root + "/" + hex.substr(0, 2);
  fs::make_dir(dir);
  static std::atomic<std::uint64_t> counter{0};
  RemoveOnFailure temp{dir + "/." + hex + std::string(kTempMarker) + this_host() + "." +
                       std::to_string(::getpid()) + "." + std::to_string(++counter)};
  h5::write_entry(temp.path, entry, impl_->write);
  if (impl_->options.fsync) fs::sync_path(temp.path);
  struct stat st {};
  if (::stat(temp.path.c_str(), &st) != 0)
    throw StoreError("cannot stat: " + fs::error_text(errno), temp.path);
  auto final_path = impl_->path_of(entry.digest);
  if (::rename(temp.path.c_str(), final_path.c_str()) != 0)
    throw StoreError("cannot rename into place: " + fs::error_text(errno), final_path);
  temp.armed = false;
  if (impl_->options.fsync) fs::sync_path(dir);

  EntrySummary summary = EntrySummary::of(entry);
  summary.bytes = static_cast<std::uint64_t>(st.st_size);
  try {
    impl_->index.append(summary);
  } catch (const StoreError& ex) {
    impl_->log->warn("{}: saved, but not indexed (query finds it after a rebuild): {}", final_path,
                     ex.what());
  }
}

std::optional<Entry> Hdf5Store::load(const Digest& digest) {
  return impl_->read(digest, h5::Parts::everything);
}

std::optional<Value> Hdf5Store::load_value(const Digest& digest) {
  auto e = impl_->read(digest, h5::Parts::everything);
  if (!e) return std::nullopt;
  return std::move(e->result);
}

std::optional<Value> Hdf5Store::load_value_into(const Digest& digest,
                                                const ArrayDestinations& into) {
  auto e = load_into(digest, into);
  if (!e) return std::nullopt;
  return std::move(e->result);
}

std::optional<Entry> Hdf5Store::load_into(const Digest& digest, const ArrayDestinations& into) {
  auto e = impl_->read(digest, h5::Parts::everything, &into);
  if (e) place_arrays(e->result, into);  // checks that every path was an array of the result
  return e;
}

bool Hdf5Store::contains(const Digest& digest) {
  return exists(impl_->path_of(digest));
}

Digest Hdf5Store::expand(std::string_view prefix) {
  check_prefix(prefix, impl_->root);
  return expand_among(prefix, impl_->digests_in(prefix), impl_->root);
}

std::string Hdf5Store::shrink(const Digest& digest) {
  return shrink_among(digest, impl_->digests_in(digest.hex()));
}

void Hdf5Store::query(const Query& q, const QuerySink& sink) {
  QueryMatcher matcher(q);
  auto limit = matcher.limit();
  if (limit && *limit == 0) return;
  std::size_t sent = 0;
  impl_->index.scan(
      [&](const EntrySummary& s) {
        if (!matcher.matches(s) || !exists(impl_->path_of(s.digest))) return true;
        if (!sink(s)) return false;
        return !limit || ++sent < *limit;
      },
      q.function);
}

bool Hdf5Store::evict(const Digest& digest) {
  auto path = impl_->path_of(digest);
  if (::unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  throw StoreError("cannot remove: " + fs::error_text(errno), path);
}

nlohmann::json Hdf5Store::config() const {
  const auto& o = impl_->options;
  return {{"type", "hdf5"}, {"path", impl_->root},    {"fsync", o.fsync},
          {"gzip", o.gzip}, {"checksum", o.checksum}, {"chunk_bytes", o.chunk_bytes}};
}

nlohmann::json Hdf5Store::info() {
  std::uint64_t entries = 0;
  impl_->index.scan([&](const EntrySummary& s) {
    if (exists(impl_->path_of(s.digest))) ++entries;
    return true;
  });
  unsigned major = 0, minor = 0, release = 0;
  {
    h5::Lock lock;
    H5get_libversion(&major, &minor, &release);
  }
  return {{"type", "hdf5"},
          {"root", impl_->root},
          {"entries", entries},
          {"fsync", impl_->options.fsync},
          {"gzip", impl_->options.gzip},
          {"checksum", impl_->options.checksum},
          {"format_version", kEntryFormatVersion},
          {"hdf5_version",
           std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release)}};
}

void Hdf5Store::rebuild_index(const Progress& progress) {
  auto rebuild = impl_->index.begin_rebuild();
  auto files = impl_->list_files();
  std::erase_if(files, [](const StoreFile& f) { return f.kind != StoreFile::Kind::entry; });
  std::uint64_t done = 0;
  for (const auto& f : files) {
    try {
      rebuild.add(impl_->check(f, h5::Parts::call_and_meta));
    } catch (const CorruptEntry& ex) {
      impl_->warn_bad(f.path, ex.message());
    }
    if (progress) progress(++done, files.size());
  }
  rebuild.commit();
}

FsckReport Hdf5Store::fsck(const FsckOptions& options, const Progress& progress) {
  FsckReport report;
  std::unique_ptr<EntryIndex::Rebuild> rebuild;
  if (options.repair) rebuild.reset(new EntryIndex::Rebuild(impl_->index.begin_rebuild()));
  auto files = impl_->list_files();
  auto total =
      static_cast<std::uint64_t>(std::count_if(files.begin(), files.end(), [](const StoreFile& f) {
        return f.kind != StoreFile::Kind::temp;
      }));
  auto now = std::chrono::system_clock::now();
  for (const auto& f : files) {
    if (f.kind == StoreFile::Kind::temp) {
      struct stat st {};
      if (::stat(f.path.c_str(), &st) != 0) continue;  // renamed into place meanwhile
      auto modified = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
      if (now - modified < options.temp_grace || writer_alive(f.name)) continue;
      report.temp_leftovers.push_back(f.path);
      if (options.repair && ::unlink(f.path.c_str()) == 0) ++report.removed_temps;
      continue;
    }
    ++report.entries;
    try {
      auto summary = impl_->check(f, h5::Parts::everything);
      ++report.ok;
      if (rebuild) rebuild->add(summary);
    } catch (const CorruptEntry& ex) {
      impl_->warn_bad(f.path, ex.message());
      report.corrupt.push_back(f.path);
      if (options.repair) {
        impl_->quarantine(f);
        ++report.quarantined;
      }
    }
    if (progress) progress(report.entries, total);
  }
  if (rebuild) {
    rebuild->commit();
    report.index_rebuilt = true;
  }
  return report;
}

void write_entry_file(const std::filesystem::path& path, const Entry& entry) {
  if (entry.call.digest() != entry.digest)
    throw InvalidArgument("entry digest " + entry.digest.hex() + " does not match its call",
                          path.string());
  h5::write_entry(path.string(), entry, h5::WriteOptions{});
}

Entry read_entry_file(const std::filesystem::path& path) {
  return h5::read_entry(path.string(), h5::Parts::everything);
}

Value read_value_file(const std::filesystem::path& path) {
  return h5::read_plain(path.string());
}

}  // namespace quiver
