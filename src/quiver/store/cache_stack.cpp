#include <algorithm>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/prefix.hpp>
#include <set>

namespace quiver {

namespace {
constexpr std::string_view kStackWhere = "cache stack";

/// Copies entries found in a deeper layer into the first one. A failure to copy is logged,
/// not raised: the caller still gets the entry it asked for.
void promote(Cache& first, std::span<const Entry> entries) {
  if (entries.empty() || first.read_only()) return;
  try {
    first.save_many(entries);
  } catch (const Error& e) {
    logger("quiver.store")
        ->warn("cache stack: could not copy {} entr{} into the first layer: {}", entries.size(),
               entries.size() == 1 ? "y" : "ies", e.what());
  }
}

/// Fills the misses of out (answers of the first layer) by asking each deeper layer, with
/// one batch per layer, only for what is still missing; returns the indices filled.
template <class T, class Ask>
std::vector<std::size_t> read_through(const std::vector<std::unique_ptr<Cache>>& layers,
                                      std::span<const Digest> digests, std::vector<T>& out,
                                      Ask ask) {
  std::vector<std::size_t> filled;
  for (std::size_t i = 1; i < layers.size(); ++i) {
    std::vector<std::size_t> missing;
    std::vector<Digest> wanted;
    for (std::size_t k = 0; k < out.size(); ++k)
      if (!out[k]) {
        missing.push_back(k);
        wanted.push_back(digests[k]);
      }
    if (missing.empty()) break;
    auto answers = ask(*layers[i], std::span<const Digest>(wanted));
    for (std::size_t k = 0; k < missing.size(); ++k) {
      if (!answers[k]) continue;
      out[missing[k]] = std::move(answers[k]);
      filled.push_back(missing[k]);
    }
  }
  return filled;
}
}  // namespace

CacheStack::CacheStack(std::vector<std::unique_ptr<Cache>> layers)
    : CacheStack(std::move(layers), {}) {}

CacheStack::CacheStack(std::vector<std::unique_ptr<Cache>> layers, std::vector<bool> write_through)
    : layers_(std::move(layers)), write_through_(std::move(write_through)) {
  if (layers_.empty())
    throw InvalidArgument("a stack needs at least one layer", std::string(kStackWhere));
  for (const auto& layer : layers_)
    if (!layer) throw InvalidArgument("a stack layer is null", std::string(kStackWhere));
  if (write_through_.empty()) write_through_.assign(layers_.size(), false);
  if (write_through_.size() != layers_.size())
    throw InvalidArgument("write_through has " + std::to_string(write_through_.size()) +
                              " flags for " + std::to_string(layers_.size()) + " layers",
                          std::string(kStackWhere));
  write_through_.front() = true;  // layer 0 always takes saves
}

void CacheStack::save(const Entry& entry) {
  save_many(std::span(&entry, 1));
}

void CacheStack::save_many(std::span<const Entry> entries) {
  std::string saved;  // the layers written so far, "1, 2" (numbered from 1)
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (!write_through_[i]) continue;
    try {
      layers_[i]->save_many(entries);
    } catch (const Error& e) {
      if (saved.empty()) throw;
      // Same type, saying what did land: the caller decides whether that is enough.
      throw_error(e.code(),
                  "the write-through to layer " + std::to_string(i + 1) + " failed (the " +
                      (entries.size() == 1 ? "entry is" : "entries are") + " saved in layer" +
                      (saved.find(',') == std::string::npos ? " " : "s ") + saved +
                      "): " + e.message(),
                  e.where());
    }
    saved += (saved.empty() ? "" : ", ") + std::to_string(i + 1);
  }
}

std::optional<Entry> CacheStack::load(const Digest& digest) {
  return load_entry(digest, nullptr, 0);
}

std::optional<Entry> CacheStack::load_into(const Digest& digest, const ArrayDestinations& into) {
  return load_entry(digest, &into, 0);
}

std::optional<Entry> CacheStack::load_entry(const Digest& digest, const ArrayDestinations* into,
                                            std::size_t from) {
  for (std::size_t i = from; i < layers_.size(); ++i) {
    auto entry = into ? layers_[i]->load_into(digest, *into) : layers_[i]->load(digest);
    if (!entry) continue;
    if (i > 0) promote(*layers_.front(), std::span(&*entry, 1));
    return entry;
  }
  return std::nullopt;
}

std::optional<Value> CacheStack::load_value(const Digest& digest) {
  if (auto value = layers_.front()->load_value(digest)) return value;
  return load_value_below(digest, nullptr);
}

std::optional<Value> CacheStack::load_value_into(const Digest& digest,
                                                 const ArrayDestinations& into) {
  if (auto value = layers_.front()->load_value_into(digest, into)) return value;
  return load_value_below(digest, &into);
}

std::optional<Value> CacheStack::load_value_below(const Digest& digest,
                                                  const ArrayDestinations* into) {
  if (layers_.front()->read_only()) {  // nothing to promote: only the results are loaded
    for (std::size_t i = 1; i < layers_.size(); ++i) {
      auto& layer = *layers_[i];
      if (auto value = into ? layer.load_value_into(digest, *into) : layer.load_value(digest))
        return value;
    }
    return std::nullopt;
  }
  auto entry = load_entry(digest, into, 1);
  if (!entry) return std::nullopt;
  return std::move(entry->result);
}

bool CacheStack::contains(const Digest& digest) {
  return std::any_of(layers_.begin(), layers_.end(),
                     [&](const auto& layer) { return layer->contains(digest); });
}

Digest CacheStack::expand(std::string_view prefix) {
  check_prefix(prefix, kStackWhere);
  std::set<Digest> found;
  for (const auto& layer : layers_) {
    try {
      found.insert(layer->expand(prefix));
    } catch (const NotFound&) {
    }
  }
  if (found.empty())
    throw NotFound("no entry matches prefix '" + std::string(prefix) + "'",
                   std::string(kStackWhere));
  if (found.size() > 1) {
    std::size_t common = 0;
    for (auto a = found.begin(); a != found.end(); ++a)
      for (auto b = std::next(a); b != found.end(); ++b)
        common = std::max(common, common_prefix_length(*a, *b));
    throw_ambiguous(prefix, found.size(), std::min(common + 1, kDigestHexLength), kStackWhere);
  }
  return *found.begin();
}

std::string CacheStack::shrink(const Digest& digest) {
  std::string longest;
  for (const auto& layer : layers_) {
    auto s = layer->shrink(digest);
    if (s.size() > longest.size()) longest = std::move(s);
  }
  return longest;
}

void CacheStack::query(const Query& q, const QuerySink& sink) {
  if (q.limit == 0u) return;
  // Deeper layers may repeat entries of earlier ones, so the limit is applied here, after
  // removing duplicates, not by each layer.
  Query unlimited = q;
  unlimited.limit.reset();
  std::set<Digest> seen;
  bool stopped = false;
  for (const auto& layer : layers_) {
    layer->query(unlimited, [&](const EntrySummary& s) {
      if (!seen.insert(s.digest).second) return true;
      if (!sink(s) || (q.limit && seen.size() >= *q.limit)) stopped = true;
      return !stopped;
    });
    if (stopped) return;
  }
}

bool CacheStack::evict(const Digest& digest) {
  bool any_writable = false, evicted = false;
  for (const auto& layer : layers_) {
    if (layer->read_only()) continue;
    any_writable = true;
    evicted = layer->evict(digest) || evicted;
  }
  if (!any_writable)
    throw Rejected("every layer is read-only: evict refused", std::string(kStackWhere));
  return evicted;
}

nlohmann::json CacheStack::config() const {
  auto layers = nlohmann::json::array();
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    layers.push_back(layers_[i]->config());
    if (i > 0 && write_through_[i]) layers.back()["write_through"] = true;
  }
  return layers;
}

nlohmann::json CacheStack::info() {
  auto layers = nlohmann::json::array();
  for (const auto& layer : layers_) {
    try {
      layers.push_back(layer->info());
    } catch (const Error& e) {              // one unreachable layer does not hide the others
      const auto config = layer->config();  // an object, or an array for a nested stack
      layers.push_back({{"type", config.is_object() ? config.value("type", "unknown") : "stack"},
                        {"error", e.what()}});
    }
  }
  return {{"type", "stack"}, {"layers", std::move(layers)}};
}

bool CacheStack::read_only() const {
  return layers_.front()->read_only();
}

std::vector<bool> CacheStack::contains_many(std::span<const Digest> digests) {
  auto out = layers_.front()->contains_many(digests);
  read_through(layers_, digests, out,
               [](Cache& layer, std::span<const Digest> d) { return layer.contains_many(d); });
  return out;
}

std::vector<std::optional<Entry>> CacheStack::load_many(std::span<const Digest> digests) {
  auto out = layers_.front()->load_many(digests);
  auto filled = read_through(layers_, digests, out, [](Cache& layer, std::span<const Digest> d) {
    return layer.load_many(d);
  });
  if (!filled.empty()) {
    std::vector<Entry> deeper;
    deeper.reserve(filled.size());
    for (auto k : filled) deeper.push_back(*out[k]);
    promote(*layers_.front(), deeper);
  }
  return out;
}

}  // namespace quiver
