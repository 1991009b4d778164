#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <quiver/config/cache_factory.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/remote/ssh_cache.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>

namespace quiver::config {

namespace {

// One function per cache type: it reads every key the type accepts (so that the others are
// reported as unknown) and returns what builds the cache. A new type is one such function
// and one line in kCacheTypes.

CacheBuilder hdf5_cache(TableReader& t, bool read_only) {
  Hdf5StoreOptions o;
  o.root = t.required_path("path");
  o.create_root = !read_only;
  o.fsync = t.boolean("fsync").value_or(o.fsync);
  o.gzip = static_cast<int>(t.integer("gzip", 0, 9).value_or(o.gzip));
  o.checksum = t.boolean("checksum").value_or(o.checksum);
  o.chunk_bytes = static_cast<std::uint64_t>(
      t.integer("chunk_bytes", 1, std::numeric_limits<std::int64_t>::max())
          .value_or(static_cast<std::int64_t>(o.chunk_bytes)));
  return [o] { return std::make_unique<Hdf5Store>(o); };
}

CacheBuilder memory_cache(TableReader&, bool) {
  return [] { return std::make_unique<MemoryCache>(); };
}

/// env: a table of strings (`{ K = "V" }`) or an array of "K=V" strings; as "K=V" entries.
std::vector<std::string> environment(TableReader& t) {
  const auto* v = t.value("env");
  std::vector<std::string> out;
  if (!v) return out;
  if (v->is_object()) {
    for (const auto& [k, item] : v->items()) {
      if (k.empty() || k.find('=') != std::string::npos)
        t.fail("env", "'" + k + "' is not a variable name");
      if (!item.is_string())
        t.fail("env", "expected a string for " + k + ", got " + json_kind(item));
      out.push_back(k + "=" + item.get<std::string>());
    }
    return out;
  }
  for (const auto& e : t.string_list("env").value_or(std::vector<std::string>{}))
    if (e.find('=') == 0 || e.find('=') == std::string::npos)
      t.fail("env", "expected \"NAME=value\", got \"" + e + "\"");
    else
      out.push_back(e);
  return out;
}

std::chrono::milliseconds timeout(TableReader& t, std::string_view key,
                                  std::chrono::milliseconds fallback) {
  auto s = t.number(key, 0.001, 1e7);
  if (!s) return fallback;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(*s * 1000.0)));
}

/// The keys ssh and subprocess caches share (everything but host, ssh and ssh_options).
SshCacheOptions remote_options(TableReader& t, Transport transport) {
  SshCacheOptions o;
  o.transport = transport;
  o.cache_name = t.string("cache_name").value_or("");
  o.config = t.string("config").value_or("");
  o.quiver = t.string("quiver").value_or(o.quiver);
  if (o.quiver.empty()) t.fail("quiver", "expected the quiver executable, got an empty string");
  o.setup_commands = t.string_list("setup_commands").value_or(o.setup_commands);
  o.workdir = t.string("workdir").value_or("");
  o.login_shell = t.boolean("login_shell").value_or(false);
  o.remote_read_only = t.boolean("remote_read_only").value_or(false);
  o.env = environment(t);
  o.connect_timeout = timeout(t, "connect_timeout", o.connect_timeout);
  o.call_timeout = timeout(t, "call_timeout", o.call_timeout);
  return o;
}

CacheBuilder ssh_cache(TableReader& t, bool) {
  auto host = t.required_string("host");
  if (host.empty() || host.front() == '-') t.fail("host", "expected an ssh destination");
  auto o = remote_options(t, Transport::ssh);
  o.host = std::move(host);
  o.ssh = t.string("ssh").value_or(o.ssh);
  o.ssh_options = t.string_list("ssh_options").value_or(o.ssh_options);
  return [o] { return std::make_unique<SshCache>(o); };
}

CacheBuilder subprocess_cache(TableReader& t, bool) {
  auto o = remote_options(t, Transport::subprocess);
  if (auto config = t.path("config")) o.config = config->string();  // a local file here
  o.started_by = t.identity();
  if (in_subprocess_chain(o.started_by))
    t.fail("type",
           "this subprocess cache started the quiver server that is reading it now: the server "
           "found the same config (through $QUIVER_CONFIG, its working directory or --config) "
           "and would start another server, and so on. Set `config` and `cache_name` of this "
           "table to the config and cache the server should serve");
  return [o] { return std::make_unique<SshCache>(o); };
}

struct CacheType {
  std::string_view name;
  CacheBuilder (*read)(TableReader&, bool read_only);
};

constexpr std::array kCacheTypes{
    CacheType{"hdf5", hdf5_cache},
    CacheType{"memory", memory_cache},
    CacheType{"ssh", ssh_cache},
    CacheType{"subprocess", subprocess_cache},
};

/// Reads one cache table: type, read_only and the type's own keys; for a layer of a stack
/// below the first (write_through non-null), also its write_through flag.
CacheBuilder read_table(nlohmann::json& table, const std::string& label, const std::string& pointer,
                        const Origin& origin, bool* write_through = nullptr) {
  TableReader t(table, label, pointer, origin);
  if (write_through)
    *write_through = t.boolean("write_through").value_or(false);
  else if (t.value("write_through"))
    t.fail("write_through",
           "only for the layers below the first of a stack [[...]] (saves always go to the "
           "first layer; write_through sends them to a lower layer too)");
  const auto type_name = t.required_string("type");
  const auto* type = std::find_if(kCacheTypes.begin(), kCacheTypes.end(),
                                  [&](const CacheType& c) { return c.name == type_name; });
  if (type == kCacheTypes.end()) {
    std::string known;
    for (const auto& c : kCacheTypes) known += (known.empty() ? "" : ", ") + std::string(c.name);
    t.fail("type", "unknown type '" + type_name + "' (known: " + known + ")");
  }
  const bool read_only = t.boolean("read_only").value_or(false);
  auto build = type->read(t, read_only);
  t.reject_unread_keys();
  if (!read_only) return build;
  return [build = std::move(build)] { return std::make_unique<ReadOnlyCache>(build()); };
}

}  // namespace

CacheBuilder read_cache_config(nlohmann::json& tree, std::string_view name, const Origin& origin) {
  if (tree.is_object()) return read_table(tree, table_label(name), "", origin);
  if (!tree.is_array())
    throw ConfigError(std::string(name) + ": expected a cache table [" + std::string(name) +
                          "] or a stack [[" + std::string(name) + "]], got " + json_kind(tree),
                      origin.where(""));
  if (tree.empty())
    throw ConfigError(table_label(name, 0) + ": a stack needs at least one layer",
                      origin.where(""));
  std::vector<CacheBuilder> layers;
  std::vector<bool> write_through(tree.size(), false);
  for (std::size_t i = 0; i < tree.size(); ++i) {
    const auto pointer = "/" + std::to_string(i);
    if (!tree[i].is_object())
      throw ConfigError(table_label(name, i) + ": expected a table, got " + json_kind(tree[i]),
                        origin.where(pointer));
    bool through = false;
    layers.push_back(
        read_table(tree[i], table_label(name, i), pointer, origin, i > 0 ? &through : nullptr));
    write_through[i] = through;
  }
  return [layers = std::move(layers), write_through = std::move(write_through)] {
    std::vector<std::unique_ptr<Cache>> built;
    for (const auto& layer : layers) built.push_back(layer());
    return std::make_unique<CacheStack>(std::move(built), write_through);
  };
}

}  // namespace quiver::config
