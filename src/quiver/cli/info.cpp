// quiver info: which config and cache are in use, the cache's own description, versions.
#include <hdf5.h>

#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/config/config.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/redact.hpp>
#include <quiver/core/version.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace quiver::cli {

namespace {

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

std::string scalar_text(const nlohmann::json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

int info_main(const Invocation& inv) {
  auto resolved = resolve_config(inv.open_options());
  auto cache = make_cache(resolved);
  std::string config_file = resolved.file ? std::filesystem::absolute(*resolved.file).string() : "";
  auto config = redact(cache->config());
  // A cache that cannot describe itself (a remote that is down) still shows its config;
  // what failed is said after it, and the exit status is 1.
  nlohmann::json info;
  std::vector<std::string> problems;
  try {
    info = redact(cache->info());
  } catch (const Error& e) {
    info = {{"error", e.what()}};
    problems.push_back(e.what());
  }
  if (const auto layers = info.find("layers"); layers != info.end() && layers->is_array())
    for (std::size_t i = 0; i < layers->size(); ++i)
      if (const auto& layer = (*layers)[i]; layer.contains("error"))
        problems.push_back("layer " + std::to_string(i + 1) + ": " +
                           layer["error"].get<std::string>());
  const int status = problems.empty() ? kExitOk : kExitError;
  nlohmann::json versions = {{"quiver", kVersion},
                             {"key_format", kKeyFormatVersion},
                             {"entry_format", kEntryFormatVersion},
                             {"hdf5", hdf5_version()}};
  if (inv.flag("json")) {
    print_json({{"config_file", resolved.file ? nlohmann::json(config_file) : nullptr},
                {"embedded_default", resolved.embedded_default},
                {"cache", resolved.cache_name},
                {"read_only", cache->read_only()},
                {"config", config},
                {"info", info},
                {"versions", versions}});
    for (const auto& p : problems) print_error(p);
    return status;
  }
  std::ostringstream os;
  os << "config file: " << (resolved.file ? config_file : std::string("none (embedded default)"))
     << '\n'
     << "cache:       " << resolved.cache_name << (cache->read_only() ? " (read-only)" : "")
     << (resolved.file && resolved.embedded_default
             ? " (the embedded default: the config file chooses no cache in [default])"
             : "")
     << "\n\n"
     << to_toml(resolved.cache_name, config, Secrets::redact) << '\n';
  os << "info:\n";
  const auto text = [](const nlohmann::json& v) {
    return v.is_structured() ? v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                             : scalar_text(v);
  };
  for (const auto& [key, value] : info.items()) {
    if (key == "layers" && value.is_array()) {  // a stack: one line per layer
      os << "  layers:\n";
      for (std::size_t i = 0; i < value.size(); ++i)
        os << "    " << i + 1 << ": " << text(value[i]) << '\n';
      continue;
    }
    os << "  " << key << ": " << text(value) << '\n';
  }
  os << "\nquiver " << kVersion << ", key format " << kKeyFormatVersion << ", entry format "
     << kEntryFormatVersion << ", HDF5 " << hdf5_version() << '\n';
  std::cout << os.str();
  for (const auto& p : problems) print_error(p);
  return status;
}

}  // namespace

Command info_command() {
  Command c;
  c.name = "info";
  c.summary = "show the config file and cache in use, the cache's settings and versions";
  c.add_options = [](po::options_description& d) {
    d.add_options()("json", po::bool_switch(),
                    "print {\"config_file\", \"embedded_default\", \"cache\", \"read_only\", "
                    "\"config\", \"info\", \"versions\"}");
  };
  c.details =
      "Secrets in the configuration (keys named like password, token, secret, and passwords\n"
      "in URLs) are shown as ***. A cache (or a layer of a stack) that cannot describe\n"
      "itself, such as a remote that cannot be reached, shows its error in place of its\n"
      "info; it is also printed on stderr and the exit status is 1.\n";
  c.run = info_main;
  return c;
}

}  // namespace quiver::cli
