// libFuzzer target of digest and prefix parsing: the first line of the input is a digest or
// prefix as a user would type it, the rest supplies up to 64 candidate digests (32 bytes
// each). Checks that Digest::parse, Digest::from_hex, is_hex_prefix and check_prefix agree,
// that expand_among returns only a unique match (or the right typed error), and that every
// candidate's shrink_among prefix expands back to it.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/store/prefix.hpp>
#include <set>
#include <string>
#include <vector>

#include "fuzz_target.hpp"

namespace quiver::fuzz {

namespace {

[[noreturn]] void contradiction(const std::string& what, std::string_view input) {
  std::fprintf(stderr, "digest parsing contradicts itself for '%.*s': %s\n",
               static_cast<int>(input.size()), input.data(), what.c_str());
  std::abort();
}

bool starts_with(const Digest& d, std::string_view prefix) {
  return d.hex().compare(0, prefix.size(), prefix) == 0;
}

void check_parsers(std::string_view s) {
  auto parsed = Digest::parse(s);
  bool thrown = false;
  try {
    auto d = Digest::from_hex(s);
    if (!parsed || *parsed != d) contradiction("from_hex accepts what parse rejects", s);
  } catch (const InvalidArgument& e) {
    thrown = true;
    if (e.message().empty()) contradiction("from_hex error says nothing", s);
  }
  if (parsed && thrown) contradiction("parse accepts what from_hex rejects", s);
  if (parsed && parsed->hex() != s) contradiction("hex() differs from the parsed text", s);

  bool valid_prefix = true;
  try {
    check_prefix(s, "fuzz", 1);
  } catch (const InvalidArgument& e) {
    valid_prefix = false;
    if (e.where() != "fuzz") contradiction("check_prefix error does not name where", s);
  }
  if (valid_prefix != is_hex_prefix(s)) contradiction("check_prefix and is_hex_prefix differ", s);
  if (parsed && !valid_prefix) contradiction("a digest is not a valid prefix", s);
}

void check_expand(std::string_view s, const std::vector<Digest>& candidates) {
  std::set<Digest> matching;
  for (const auto& d : candidates)
    if (starts_with(d, s)) matching.insert(d);
  const bool usable = is_hex_prefix(s) && s.size() >= kMinPrefixLength;
  try {
    auto d = expand_among(s, candidates, "fuzz");
    if (!usable) contradiction("expand_among accepted a bad prefix", s);
    if (matching.size() != 1 || *matching.begin() != d)
      contradiction("expand_among returned a digest that is not the unique match", s);
  } catch (const InvalidArgument&) {
    if (usable) contradiction("expand_among rejected a good prefix", s);
  } catch (const NotFound&) {
    if (!usable || !matching.empty()) contradiction("expand_among missed a match", s);
  } catch (const AmbiguousDigest&) {
    if (!usable || matching.size() < 2) contradiction("expand_among is ambiguous without cause", s);
  }
}

void check_shrink(const std::vector<Digest>& candidates) {
  for (const auto& d : candidates) {
    auto p = shrink_among(d, candidates);
    if (p.size() < kMinPrefixLength || !starts_with(d, p))
      contradiction("shrink_among returned '" + p + "'", d.hex());
    try {
      if (expand_among(p, candidates, "fuzz") != d)
        contradiction("the shrunk prefix '" + p + "' expands to another digest", d.hex());
    } catch (const Error& e) {
      contradiction("the shrunk prefix '" + p + "' does not expand: " + e.what(), d.hex());
    }
  }
}

}  // namespace

bool run_input(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const auto text = input.substr(0, newline);
  check_parsers(text);

  std::vector<Digest> candidates;
  if (newline != std::string_view::npos) {
    auto rest = input.substr(newline + 1);
    // Candidates share the text's leading bytes when it parses, so prefixes collide often.
    for (std::size_t at = 0; at + 32 <= rest.size() && candidates.size() < 64; at += 32) {
      std::array<std::uint8_t, 32> bytes{};
      std::memcpy(bytes.data(), rest.data() + at, 32);
      candidates.emplace_back(bytes);
    }
  }
  check_expand(text, candidates);
  check_shrink(candidates);
  return Digest::parse(text).has_value() ||
         (is_hex_prefix(text) && text.size() >= kMinPrefixLength);
}

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  quiver::fuzz::run_input(data, size);
  return 0;
}
