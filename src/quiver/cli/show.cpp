// quiver show: the call, metadata and a structural summary of an entry's result.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/lookup.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/cli/render.hpp>

namespace quiver::cli {

namespace {

void print_text(const Entry& e) {
  std::ostringstream os;
  os << "digest:     " << e.digest.hex() << '\n'
     << "function:   " << e.call.function << '\n'
     << "version:    " << e.call.version << '\n'
     << "arguments:" << (e.call.args.empty() ? " none" : "") << '\n';
  for (const auto& [name, value] : e.call.args)
    os << "  " << name << ": " << describe_tree(value, 2);
  os << "created:    " << format_time(e.meta.created) << '\n'
     << "host:       " << e.meta.host << '\n'
     << "user:       " << e.meta.user << '\n'
     << "wall time:  " << e.meta.wall_time << " s\n"
     << "written by: quiver " << e.meta.quiver_version << " (entry format " << e.meta.format_version
     << ", key format " << e.meta.key_format_version << ")\n"
     << "result:     " << describe_tree(e.result, 0);
  std::cout << os.str();
}

int show(const Invocation& inv) {
  auto prefix = parse_prefix(inv.operands.at(0));
  auto cache = inv.open_cache();
  Entry e = load_entry(*cache, prefix);
  if (!inv.flag("json")) {
    print_text(e);
    return kExitOk;
  }
  nlohmann::json args = nlohmann::json::object();
  for (const auto& [name, value] : e.call.args) args[name] = describe_json(value);
  print_json(
      {{"digest", e.digest.hex()},
       {"call", {{"function", e.call.function}, {"version", e.call.version}, {"args", args}}},
       {"meta", meta_json(e.meta)},
       {"result", describe_json(e.result)}});
  return kExitOk;
}

}  // namespace

Command show_command() {
  Command c;
  c.name = "show";
  c.operands = "PREFIX";
  c.min_operands = c.max_operands = 1;
  c.summary = "describe an entry: its call, metadata and the structure of its result";
  c.add_options = [](po::options_description& d) {
    d.add_options()("json", po::bool_switch(),
                    "print {\"digest\", \"call\", \"meta\", \"result\"} with summaries as JSON");
  };
  c.details =
      "The result is summarised as a tree: kinds, dtypes, shapes and sizes, not the data\n"
      "(use 'quiver get' for that). Each summary node in --json is {\"kind\", \"bytes\"} plus\n"
      "\"value\" (scalars, short strings), \"dtype\" and \"shape\" (arrays), \"length\",\n"
      "\"items\" and \"more\" (lists and maps; at most 50 items are listed).\n";
  c.run = show;
  return c;
}

}  // namespace quiver::cli
