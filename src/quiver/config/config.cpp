#include <toml++/toml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <quiver/config/cache_factory.hpp>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <sstream>

namespace quiver {

namespace {

using config::Origin;

constexpr std::string_view kFileName = "quiver.toml";

/// The environment variable's value; nullopt when unset or empty.
std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

/// $var when it is an absolute path (the XDG rule), else $HOME/fallback.
std::optional<std::filesystem::path> xdg_dir(const char* var, std::string_view fallback) {
  if (auto v = env(var); v && std::filesystem::path(*v).is_absolute()) return *v;
  if (auto home = env("HOME")) return std::filesystem::path(*home) / fallback;
  return std::nullopt;
}

bool is_file(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec);
}

std::string toml_kind(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

/// A parsed quiver.toml, with the file name for error messages.
class ConfigFile {
 public:
  explicit ConfigFile(std::filesystem::path path) : path_(std::move(path)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in)
      throw ConfigError("cannot read config file: " + std::string(std::strerror(errno)),
                        path_.string());
    std::ostringstream text;
    text << in.rdbuf();
    try {
      doc_ = toml::parse(text.str(), path_.string());
    } catch (const toml::parse_error& e) {
      throw ConfigError(std::string(e.description()), at(e.source().begin.line));
    }
    check_structure();
  }

  const std::filesystem::path& path() const noexcept { return path_; }
  const toml::table& doc() const noexcept { return doc_; }

  std::string at(std::size_t line) const { return path_.string() + ":" + std::to_string(line); }
  std::string at(const toml::node& n) const { return at(n.source().begin.line); }

  /// The names of the caches the file defines, sorted.
  std::string defined_names() const {
    std::string names;
    for (const auto& [key, node] : doc_)
      if (key.str() != kDefaultCacheName)
        names += (names.empty() ? "" : ", ") + std::string(key.str());
    return names.empty() ? "none" : names;
  }

  /// [default] cache, expanded; nullopt when the file has none.
  std::optional<std::pair<std::string, const toml::node*>> default_cache() const {
    const auto* table = doc_.get_as<toml::table>(kDefaultCacheName);
    if (!table) return std::nullopt;
    const auto* node = table->get("cache");
    if (!node) return std::nullopt;
    try {
      return std::pair{expand_variables(node->as_string()->get()), node};
    } catch (const ConfigError& e) {
      throw ConfigError("[default] cache: " + e.message(), at(*node));
    }
  }

 private:
  /// Every top-level key is [default], a cache table or a stack; [default] holds only cache.
  void check_structure() const {
    for (const auto& [key, node] : doc_) {
      const std::string name(key.str());
      if (name == kDefaultCacheName) {
        const auto* table = node.as_table();
        if (!table) throw ConfigError("default: expected a table [default]", at(node));
        for (const auto& [k, v] : *table) {
          if (k.str() != "cache")
            throw ConfigError(
                "[default] " + std::string(k.str()) + ": unknown key (allowed: cache)", at(v));
          if (!v.is_string())
            throw ConfigError("[default] cache: expected a string, got " + toml_kind(v), at(v));
        }
      } else if (!node.is_table() && !node.is_array_of_tables()) {
        throw ConfigError(name + ": expected a cache table [" + name + "] or a stack [[" + name +
                              "]], got " + toml_kind(node),
                          at(node));
      }
    }
  }

  std::filesystem::path path_;
  toml::table doc_;
};

/// TOML -> JSON for one cache's configuration: ${VAR} expanded in strings, lines recorded.
class Converter {
 public:
  Converter(const ConfigFile& file, std::map<std::string, std::size_t>& lines)
      : file_(file), lines_(lines) {}

  /// n as JSON; errors name it label, its keys label + separator + key.
  nlohmann::json convert(const toml::node& n, const std::string& pointer, const std::string& label,
                         std::string_view separator = ".") {
    lines_[pointer] = n.source().begin.line;
    switch (n.type()) {
      case toml::node_type::table: {
        auto out = nlohmann::json::object();
        for (const auto& [key, value] : *n.as_table()) {
          const std::string k(key.str());
          out[k] =
              convert(value, config::pointer_to(pointer, k), label + std::string(separator) + k);
        }
        return out;
      }
      case toml::node_type::array: {
        auto out = nlohmann::json::array();
        const auto& array = *n.as_array();
        for (std::size_t i = 0; i < array.size(); ++i)
          out.push_back(convert(array[i], pointer + "/" + std::to_string(i),
                                label + "[" + std::to_string(i) + "]"));
        return out;
      }
      case toml::node_type::string:
        try {
          return expand_variables(n.as_string()->get());
        } catch (const ConfigError& e) {
          throw ConfigError(label + ": " + e.message(), file_.at(n));
        }
      case toml::node_type::integer:
        return n.as_integer()->get();
      case toml::node_type::floating_point:
        return n.as_floating_point()->get();
      case toml::node_type::boolean:
        return n.as_boolean()->get();
      default: {
        std::ostringstream text;
        n.visit([&](const auto& v) { text << v; });
        return text.str();
      }
    }
  }

  /// The cache named name: a table, or an array of tables labelled by layer.
  nlohmann::json convert_cache(const toml::node& n, std::string_view name) {
    if (const auto* array = n.as_array()) {
      lines_[""] = n.source().begin.line;
      auto out = nlohmann::json::array();
      for (std::size_t i = 0; i < array->size(); ++i)
        out.push_back(
            convert((*array)[i], "/" + std::to_string(i), config::table_label(name, i), " "));
      return out;
    }
    return convert(n, "", config::table_label(name), " ");
  }

 private:
  const ConfigFile& file_;
  std::map<std::string, std::size_t>& lines_;
};

std::string search_description() {
  std::string s = "looked at $QUIVER_CONFIG, " + std::string(kFileName) +
                  " in the working directory and its parents";
  if (auto dir = xdg_dir("XDG_CONFIG_HOME", ".config"))
    s += ", " + (*dir / "quiver" / kFileName).string();
  return s;
}

/// resolved set to the embedded default.
ResolvedConfig embedded(ResolvedConfig resolved) {
  resolved.cache_name = kDefaultCacheName;
  resolved.tree = default_cache_config();
  resolved.lines.clear();
  resolved.embedded_default = true;
  config::read_cache_config(resolved.tree, resolved.cache_name, Origin{});
  return resolved;
}

Origin origin_of(const ResolvedConfig& c) {
  if (c.embedded_default || !c.file) return Origin{};
  return Origin{c.file, &c.lines, std::filesystem::absolute(*c.file).parent_path()};
}

}  // namespace

std::optional<std::filesystem::path> find_config_file() {
  if (auto file = env("QUIVER_CONFIG")) return std::filesystem::path(*file);
  std::error_code ec;
  auto dir = std::filesystem::current_path(ec);
  if (!ec) {
    for (;;) {
      if (is_file(dir / kFileName)) return dir / kFileName;
      if (dir == dir.parent_path()) break;
      dir = dir.parent_path();
    }
  }
  if (auto config_home = xdg_dir("XDG_CONFIG_HOME", ".config"))
    if (is_file(*config_home / "quiver" / kFileName)) return *config_home / "quiver" / kFileName;
  return std::nullopt;
}

nlohmann::json default_cache_config() {
  auto dir = xdg_dir("XDG_CACHE_HOME", ".cache");
  if (!dir)
    throw ConfigError("no place for the default cache: neither XDG_CACHE_HOME nor HOME is set",
                      "embedded default");
  return {{"type", "hdf5"}, {"path", (*dir / "quiver").string()}};
}

ResolvedConfig resolve_config(const OpenOptions& options) {
  ResolvedConfig resolved;
  resolved.file = options.config_file ? options.config_file : find_config_file();
  const auto& wanted = options.cache_name;
  const bool wants_default = !wanted || *wanted == kDefaultCacheName;
  if (!resolved.file) {
    if (!wants_default)
      throw ConfigError("cache '" + *wanted + "' is not defined: no " + std::string(kFileName) +
                        " found (" + search_description() + ")");
    return embedded(std::move(resolved));
  }

  const auto file = [&] {
    try {
      return ConfigFile(*resolved.file);
    } catch (const ConfigError& e) {
      if (options.config_file || !env("QUIVER_CONFIG")) throw;
      throw ConfigError(e.message() + " (the file named by $QUIVER_CONFIG)", e.where());
    }
  }();
  std::string name;
  std::string where = file.path().string();
  std::string asked_by;
  if (!wants_default) {
    name = *wanted;
  } else if (auto d = file.default_cache(); d && d->first != kDefaultCacheName) {
    name = d->first;
    where = file.at(*d->second);
    asked_by = "[default] cache: ";
  } else {
    return embedded(std::move(resolved));
  }
  const auto* node = file.doc().get(name);
  if (!node)
    throw ConfigError(
        asked_by + "cache '" + name + "' is not defined (defined: " + file.defined_names() + ")",
        where);

  resolved.cache_name = name;
  resolved.tree = Converter(file, resolved.lines).convert_cache(*node, name);
  config::read_cache_config(resolved.tree, name, origin_of(resolved));
  return resolved;
}

std::unique_ptr<Cache> make_cache(const ResolvedConfig& config) {
  auto tree = config.tree;
  return config::read_cache_config(tree, config.cache_name, origin_of(config))();
}

std::unique_ptr<Cache> make_cache(const nlohmann::json& tree, std::string_view name) {
  auto copy = tree;
  return config::read_cache_config(copy, name, Origin{})();
}

}  // namespace quiver
