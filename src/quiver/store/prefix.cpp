#include <algorithm>
#include <quiver/core/errors.hpp>
#include <quiver/store/prefix.hpp>

namespace quiver {

void throw_ambiguous(std::string_view prefix, std::size_t matches, std::size_t unique_chars,
                     std::string_view where) {
  throw AmbiguousDigest("prefix '" + std::string(prefix) + "' matches " + std::to_string(matches) +
                            " entries; " + std::to_string(unique_chars) +
                            " characters would be unique",
                        std::string(where));
}

Digest expand_among(std::string_view prefix, std::span<const Digest> candidates,
                    std::string_view where) {
  check_prefix(prefix, where);
  const Digest* found = nullptr;
  std::size_t matches = 0, longest_common = 0;
  for (const auto& d : candidates) {
    auto hex = d.hex();
    if (hex.compare(0, prefix.size(), prefix) != 0) continue;
    if (found && *found == d) continue;
    if (found) longest_common = std::max(longest_common, common_prefix_length(*found, d));
    if (!found) found = &d;
    ++matches;
  }
  if (!found)
    throw NotFound("no entry matches prefix '" + std::string(prefix) + "'", std::string(where));
  if (matches > 1) {
    // Characters needed to tell every match apart from the first one found.
    for (const auto& d : candidates)
      if (d.hex().compare(0, prefix.size(), prefix) == 0 && d != *found)
        longest_common = std::max(longest_common, common_prefix_length(*found, d));
    throw_ambiguous(prefix, matches, std::min(longest_common + 1, kDigestHexLength), where);
  }
  return *found;
}

std::string shrink_among(const Digest& digest, std::span<const Digest> candidates) {
  std::size_t need = kMinPrefixLength;
  for (const auto& d : candidates)
    if (d != digest) need = std::max(need, common_prefix_length(digest, d) + 1);
  return digest.hex().substr(0, std::min(need, kDigestHexLength));
}

}  // namespace quiver
