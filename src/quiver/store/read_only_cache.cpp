#include <quiver/core/errors.hpp>
#include <quiver/core/redact.hpp>
#include <quiver/store/read_only_cache.hpp>

namespace quiver {

namespace {
constexpr std::string_view kReadOnlyWhere = "read-only cache";

/// config with read_only set on the table, or on every layer of a stack.
nlohmann::json mark_read_only(nlohmann::json config) {
  if (config.is_array()) {
    for (auto& layer : config) layer = mark_read_only(std::move(layer));
  } else if (config.is_object()) {
    config["read_only"] = true;
  }
  return config;
}

/// Where a refusal happens: the wrapped cache's path or host when it has one, else its type.
std::string where_of(const Cache& inner) {
  const auto config = inner.config();
  if (!config.is_object()) return std::string(kReadOnlyWhere);
  for (const char* key : {"path", "host", "type"})
    if (const auto it = config.find(key); it != config.end() && it->is_string())
      return it->get<std::string>();
  return std::string(kReadOnlyWhere);
}

/// The Rejected error of a read-only cache asked to `what` ("save", "evict").
Rejected refusal(const Cache& inner, std::string_view what) {
  return Rejected("read-only cache (read_only = true): " + std::string(what) + " refused",
                  where_of(inner));
}
}  // namespace

ReadOnlyCache::ReadOnlyCache(std::unique_ptr<Cache> inner) : inner_(std::move(inner)) {
  if (!inner_) throw InvalidArgument("no cache to wrap", std::string(kReadOnlyWhere));
}

void ReadOnlyCache::save(const Entry&) {
  throw refusal(*inner_, "save");
}

std::optional<Entry> ReadOnlyCache::load(const Digest& digest) {
  return inner_->load(digest);
}

std::optional<Value> ReadOnlyCache::load_value(const Digest& digest) {
  return inner_->load_value(digest);
}

std::optional<Value> ReadOnlyCache::load_value_into(const Digest& digest,
                                                    const ArrayDestinations& into) {
  return inner_->load_value_into(digest, into);
}

std::optional<Entry> ReadOnlyCache::load_into(const Digest& digest, const ArrayDestinations& into) {
  return inner_->load_into(digest, into);
}

bool ReadOnlyCache::contains(const Digest& digest) {
  return inner_->contains(digest);
}

Digest ReadOnlyCache::expand(std::string_view prefix) {
  return inner_->expand(prefix);
}

std::string ReadOnlyCache::shrink(const Digest& digest) {
  return inner_->shrink(digest);
}

void ReadOnlyCache::query(const Query& q, const QuerySink& sink) {
  inner_->query(q, sink);
}

bool ReadOnlyCache::evict(const Digest&) {
  throw refusal(*inner_, "evict");
}

nlohmann::json ReadOnlyCache::config() const {
  return mark_read_only(inner_->config());
}

nlohmann::json ReadOnlyCache::info() {
  auto info = inner_->info();
  if (!info.is_object()) return info;
  info["read_only"] = true;
  if (info.contains("config")) info["config"] = redact(config());
  return info;
}

std::vector<bool> ReadOnlyCache::contains_many(std::span<const Digest> digests) {
  return inner_->contains_many(digests);
}

std::vector<std::optional<Entry>> ReadOnlyCache::load_many(std::span<const Digest> digests) {
  return inner_->load_many(digests);
}

}  // namespace quiver
