#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <quiver/core/log.hpp>
#include <quiver/store/index.hpp>
#include <random>
#include <unordered_map>

namespace quiver {

namespace {

constexpr std::string_view kHeader = "#quiver-index\t1\n";
constexpr std::size_t kFixedFields = 11;
constexpr std::size_t kSnapshotBuffer = 1 << 20;

void escape_to(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return std::nullopt;
    switch (s[i]) {
      case '\\':
        out += '\\';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      default:
        return std::nullopt;
    }
  }
  return out;
}

template <class T>
void number_to(std::string& out, T v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The tab-separated fields of line.
std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    auto tab = line.find('\t');
    fields.push_back(line.substr(0, tab));
    if (tab == std::string_view::npos) return fields;
    line.remove_prefix(tab + 1);
  }
}

// The digest field, the function field (escaped) and the creation time of a line, without
// parsing the rest.
struct Key {
  std::string_view digest, function;
  std::int64_t created;
};
std::optional<Key> key_of(std::string_view line) {
  if (line.size() < kDigestHexLength + 1 || line[kDigestHexLength] != '\t') return std::nullopt;
  std::size_t starts[3], pos = kDigestHexLength + 1;
  for (auto& start : starts) {  // function, version, created
    start = pos;
    pos = line.find('\t', pos);
    if (pos == std::string_view::npos) return std::nullopt;
    ++pos;
  }
  auto created = parse_number<std::int64_t>(line.substr(starts[2], pos - 1 - starts[2]));
  if (!created) return std::nullopt;
  return Key{line.substr(0, kDigestHexLength), line.substr(starts[0], starts[1] - 1 - starts[0]),
             *created};
}

// Calls fn(line) for every complete line after the header of an index file.
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  text.remove_prefix(kHeader.size());
  for (auto nl = text.find('\n'); nl != std::string_view::npos; nl = text.find('\n')) {
    auto line = text.substr(0, nl);
    if (!line.empty() && line[0] != '#') fn(line);
    text.remove_prefix(nl + 1);
  }
}

bool is_log(std::string_view name) {
  return name.ends_with(".log") || name.ends_with(".log.old");
}
bool is_snapshot(std::string_view name) {
  return name.starts_with("snapshot.") && name.ends_with(".tsv");
}

std::string random_hex() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string process_tag() {
  return this_host() + "." + std::to_string(::getpid());
}

// The index files of dir with their content, snapshots first; retried when a concurrent
// rebuild renames or deletes a file between listing and reading.
std::vector<std::string> read_index_files(const std::filesystem::path& dir) {
  for (int attempt = 0;; ++attempt) {
    auto names = fs::list_dir(dir.string());
    std::erase_if(names, [](const std::string& n) { return !is_log(n) && !is_snapshot(n); });
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
      return std::pair(!is_snapshot(a), a) < std::pair(!is_snapshot(b), b);
    });
    std::vector<std::string> texts;
    bool vanished = false;
    for (const auto& name : names) {
      auto text = fs::read_all((dir / name).string());
      if (!text) {
        vanished = true;
        continue;
      }
      if (!text->starts_with(kHeader)) {
        if (text->size() >= kHeader.size())
          logger("quiver.store")
              ->warn("{}: not an index file of this version; ignored", (dir / name).string());
        continue;
      }
      texts.push_back(std::move(*text));
    }
    if (!vanished || attempt == 2) return texts;
  }
}

}  // namespace

std::string format_index_line(const EntrySummary& s) {
  std::string out = s.digest.hex();
  auto field = [&](std::string_view text) {
    out += '\t';
    escape_to(out, text);
  };
  auto number = [&](auto v) {
    out += '\t';
    number_to(out, v);
  };
  field(s.function);
  field(s.version);
  number(to_unix_ns(s.meta.created));
  field(s.meta.host);
  field(s.meta.user);
  number(s.bytes);
  number(s.meta.wall_time);
  field(s.meta.quiver_version);
  number(s.meta.format_version);
  number(s.meta.key_format_version);
  for (const auto& [name, digest] : s.arg_digests) {
    field(name);
    out += '=';
    out += digest.hex();
  }
  out += '\n';
  return out;
}

std::optional<EntrySummary> parse_index_line(std::string_view line) {
  auto f = split(line);
  if (f.size() < kFixedFields) return std::nullopt;
  EntrySummary s;
  auto digest = Digest::parse(f[0]);
  auto function = unescape(f[1]), version = unescape(f[2]);
  auto created = parse_number<std::int64_t>(f[3]);
  auto host = unescape(f[4]), user = unescape(f[5]);
  auto bytes = parse_number<std::uint64_t>(f[6]);
  auto wall_time = parse_number<double>(f[7]);
  auto quiver_version = unescape(f[8]);
  auto format_version = parse_number<std::uint32_t>(f[9]);
  auto key_format_version = parse_number<std::uint32_t>(f[10]);
  if (!digest || !function || !version || !created || !host || !user || !bytes || !wall_time ||
      !quiver_version || !format_version || !key_format_version)
    return std::nullopt;
  s.digest = *digest;
  s.function = std::move(*function);
  s.version = std::move(*version);
  s.meta.created = from_unix_ns(*created);
  s.meta.host = std::move(*host);
  s.meta.user = std::move(*user);
  s.bytes = *bytes;
  s.meta.wall_time = *wall_time;
  s.meta.quiver_version = std::move(*quiver_version);
  s.meta.format_version = *format_version;
  s.meta.key_format_version = *key_format_version;
  for (std::size_t i = kFixedFields; i < f.size(); ++i) {
    auto eq = f[i].rfind('=');
    if (eq == std::string_view::npos) return std::nullopt;
    auto name = unescape(f[i].substr(0, eq));
    auto arg = Digest::parse(f[i].substr(eq + 1));
    if (!name || !arg) return std::nullopt;
    s.arg_digests.emplace(std::move(*name), *arg);
  }
  return s;
}

EntryIndex::EntryIndex(std::filesystem::path dir) : dir_(std::move(dir)) {}

void EntryIndex::open_log() {
  fs::make_dir(dir_.string());
  log_path_ = (dir_ / (process_tag() + "." + random_hex() + ".log")).string();
  log_ = fs::open_file(log_path_, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0666);
  log_pid_ = ::getpid();
  fs::write_all(log_.get(), kHeader, log_path_);
}

void EntryIndex::append(const EntrySummary& s) {
  std::string line = format_index_line(s);
  std::lock_guard lock(mutex_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!log_.valid() || log_pid_ != ::getpid()) open_log();
    fs::write_all(log_.get(), line, log_path_);
    struct stat opened {
    }, named{};
    if (::fstat(log_.get(), &opened) == 0 && ::stat(log_path_.c_str(), &named) == 0 &&
        opened.st_ino == named.st_ino && opened.st_dev == named.st_dev)
      return;
    log_.reset();  // a rebuild moved the log away: write the line again to a fresh log
  }
}

void EntryIndex::scan(const std::function<bool(const EntrySummary&)>& sink,
                      std::optional<std::string_view> function) const {
  auto texts = read_index_files(dir_);
  struct Line {
    std::string_view text, function;
    std::int64_t created;
    bool newest = false;
  };
  std::size_t bytes = 0;
  for (const auto& text : texts) bytes += text.size();
  std::vector<Line> lines;
  lines.reserve(bytes / 128);
  std::unordered_map<std::string_view, std::size_t> newest;
  newest.reserve(bytes / 128);
  for (const auto& text : texts) {
    for_each_line(text, [&](std::string_view line) {
      auto key = key_of(line);
      if (!key) return;
      auto [it, inserted] = newest.try_emplace(key->digest, lines.size());
      if (!inserted && key->created >= lines[it->second].created) it->second = lines.size();
      lines.push_back({line, key->function, key->created});
    });
  }
  for (const auto& [digest, at] : newest) lines[at].newest = true;
  std::string wanted;
  if (function) escape_to(wanted, *function);
  for (const auto& line : lines) {
    if (!line.newest || (function && line.function != wanted)) continue;
    if (auto s = parse_index_line(line.text); s && !sink(*s)) return;
  }
}

EntryIndex::Rebuild EntryIndex::begin_rebuild() {
  fs::make_dir(dir_.string());
  std::vector<std::string> superseded;
  for (const auto& name : fs::list_dir(dir_.string())) {
    if (name.ends_with(".log")) {
      auto from = (dir_ / name).string(), to = from + ".old";
      if (::rename(from.c_str(), to.c_str()) == 0) {
        superseded.push_back(name + ".old");
      } else if (errno != ENOENT) {
        throw StoreError("cannot set the index log aside: " + fs::error_text(errno), from);
      }
    } else if (name.ends_with(".log.old") || is_snapshot(name)) {
      superseded.push_back(name);  // set aside by an unfinished rebuild, or an older snapshot
    }
  }
  return Rebuild(dir_, "snapshot." + process_tag() + "." + random_hex() + ".tsv",
                 std::move(superseded));
}

EntryIndex::Rebuild::Rebuild(std::filesystem::path dir, std::string name,
                             std::vector<std::string> superseded)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      tmp_path_((dir_ / (name_ + ".tmp")).string()),
      buffer_(kHeader),
      superseded_(std::move(superseded)) {
  fd_ = fs::open_file(tmp_path_, O_WRONLY | O_CREAT | O_EXCL, 0666);
}

EntryIndex::Rebuild::~Rebuild() {
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void EntryIndex::Rebuild::add(const EntrySummary& s) {
  buffer_ += format_index_line(s);
  if (buffer_.size() >= kSnapshotBuffer) flush();
}

void EntryIndex::Rebuild::flush() {
  fs::write_all(fd_.get(), buffer_, tmp_path_);
  buffer_.clear();
}

void EntryIndex::Rebuild::commit() {
  flush();
  if (::fsync(fd_.get()) != 0)
    throw StoreError("cannot fsync: " + fs::error_text(errno), tmp_path_);
  fd_.reset();
  auto final_path = (dir_ / name_).string();
  if (::rename(tmp_path_.c_str(), final_path.c_str()) != 0)
    throw StoreError("cannot rename the index snapshot into place: " + fs::error_text(errno),
                     final_path);
  committed_ = true;
  for (const auto& name : superseded_) ::unlink((dir_ / name).c_str());
}

}  // namespace quiver
