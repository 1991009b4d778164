// quiver ls: lists entries matching filters, streaming them as the cache yields them.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>

namespace quiver::cli {

namespace {

constexpr std::size_t kShortDigest = 12;

Query query_of(const Invocation& inv) {
  Query q;
  q.function = inv.get<std::string>("function");
  q.host = inv.get<std::string>("host");
  q.args = parse_assignments(inv.all("arg"), "--arg");
  if (auto since = inv.get<std::string>("since")) q.created_after = parse_time(*since, "--since");
  if (auto until = inv.get<std::string>("until")) q.created_before = parse_time(*until, "--until");
  if (auto limit = inv.get<std::size_t>("limit")) {
    if (*limit == 0) throw UsageError("--limit must be at least 1");
    q.limit = *limit;
  }
  return q;
}

/// One line of the text listing.
std::string row(std::string_view digest, std::string created, std::string function,
                std::string version, std::string size) {
  return std::string(digest) + "  " + pad(std::move(created), 20) + "  " +
         pad(std::move(function), 20) + "  " + pad(std::move(version), 10) + "  " +
         pad(std::move(size), 9, true) + "\n";
}

int ls(const Invocation& inv) {
  Query q = query_of(inv);
  bool json = inv.flag("json");
  std::size_t digest_width = inv.flag("full") ? kDigestHexLength : kShortDigest;
  auto cache = inv.open_cache();
  if (!json)
    std::cout << row(pad("DIGEST", digest_width), "CREATED", "FUNCTION", "VERSION", "SIZE");
  cache->query(q, [&](const EntrySummary& s) {
    if (json)
      print_json_line(summary_json(s));
    else
      std::cout << row(s.digest.hex().substr(0, digest_width), format_time_seconds(s.meta.created),
                       s.function, s.version, format_bytes(s.bytes))
                << std::flush;
    return true;
  });
  return kExitOk;
}

}  // namespace

Command ls_command() {
  Command c;
  c.name = "ls";
  c.summary = "list entries, filtered by function, arguments, host and creation time";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("function", po::value<std::string>()->value_name("F"), "only entries of function F")
      ("arg", po::value<std::vector<std::string>>()->value_name("KEY=VALUE")->composing(),
       "only entries whose argument KEY equals VALUE (parsed as in 'quiver put'); repeatable")
      ("host", po::value<std::string>()->value_name("HOST"), "only entries created on HOST")
      ("since", po::value<std::string>()->value_name("TIME"),
       "only entries created at or after TIME")
      ("until", po::value<std::string>()->value_name("TIME"), "only entries created before TIME")
      ("limit", po::value<std::size_t>()->value_name("N"), "stop after N entries")
      ("full", po::bool_switch(), "print full 64-character digests")
      ("json", po::bool_switch(), "print one JSON object per line (JSON lines)");
    // clang-format on
  };
  c.details =
      "TIME is an ISO 8601 date or time in UTC unless it names a zone (2026-11-22,\n"
      "2026-11-22T04:39:12Z, 2026-11-22T06:39:12+02:00), or a duration meaning that long\n"
      "ago (30m, 2h, 3d, 1w, 1h30m). Entries are printed as the cache yields them, unsorted.\n"
      "Text columns: DIGEST (first 12 characters), CREATED (UTC), FUNCTION, VERSION, SIZE.\n"
      "With --json each line is {\"digest\", \"function\", \"version\", \"created\", \"host\",\n"
      "\"user\", \"wall_time\", \"bytes\"}, written as soon as the entry is found.\n";
  c.run = ls;
  return c;
}

}  // namespace quiver::cli
