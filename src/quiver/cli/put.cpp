// quiver put: stores a result under a call given on the command line.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/core/json.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <sstream>

namespace quiver::cli {

namespace {

Value result_from_json(const std::string& text) {
  std::string json = text;
  if (text == "-") {
    std::ostringstream in;
    in << std::cin.rdbuf();
    json = std::move(in).str();
  }
  try {
    return from_json(nlohmann::json::parse(json));
  } catch (const nlohmann::json::parse_error& e) {
    throw UsageError(std::string("--result-json: ") + e.what());
  } catch (const InvalidArgument& e) {
    throw UsageError(std::string("--result-json: ") + e.what());
  }
}

int put(const Invocation& inv) {
  auto file = inv.get<std::string>("result-file");
  auto json = inv.get<std::string>("result-json");
  if (file.has_value() == json.has_value())
    throw UsageError("give exactly one of --result-file and --result-json");
  auto function = *inv.get<std::string>("function");
  if (function.empty()) throw UsageError("--function must not be empty");
  Call call(function, inv.get<std::string>("version").value_or(""),
            parse_assignments(inv.all("arg"), "--arg"));
  Value result = file ? read_value_file(*file) : result_from_json(*json);
  auto cache = inv.open_cache();
  std::cout << cache->save(call, result).hex() << '\n';
  return kExitOk;
}

}  // namespace

Command put_command() {
  Command c;
  c.name = "put";
  c.summary = "store a result under a call and print its digest";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("function", po::value<std::string>()->value_name("F")->required(), "function name of the call")
      ("version", po::value<std::string>()->value_name("V"), "version string of the call (default: empty)")
      ("arg", po::value<std::vector<std::string>>()->value_name("KEY=VALUE")->composing(),
       "an argument of the call; repeat for more")
      ("result-file", po::value<std::string>()->value_name("FILE.h5"),
       "the result: an HDF5 file, read as a tree (groups are maps, datasets arrays)")
      ("result-json", po::value<std::string>()->value_name("JSON"),
       "the result as JSON (docs/cli.md); '-' reads it from stdin");
    // clang-format on
  };
  c.details =
      "Each --arg VALUE is a JSON literal when it parses as one, else a string:\n"
      "  --arg n=3          integer 3\n"
      "  --arg x=0.5        float 0.5\n"
      "  --arg name=foo     string \"foo\"\n"
      "  --arg 'v=[1,2]'    list [1, 2]\n"
      "  --arg 'id=\"007\"'   string \"007\" (quote to keep digits a string)\n"
      "  --arg flag=true    boolean true\n"
      "The digest depends on the function, the version and every argument, never on\n"
      "their order.\n";
  c.run = put;
  return c;
}

}  // namespace quiver::cli
