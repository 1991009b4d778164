// expand()/shrink() logic shared by every backend that can list its digests.
#pragma once

#include <quiver/core/digest.hpp>
#include <span>
#include <string>
#include <string_view>

namespace quiver {

/// The unique digest among candidates that starts with prefix. Throws InvalidArgument for a
/// bad prefix, NotFound when none matches, AmbiguousDigest (with the number of characters
/// that would be unique) when several do. candidates may include non-matching digests.
Digest expand_among(std::string_view prefix, std::span<const Digest> candidates,
                    std::string_view where);
/// The shortest prefix (>= 4 chars) of digest that no other candidate starts with.
std::string shrink_among(const Digest& digest, std::span<const Digest> candidates);
/// Throws AmbiguousDigest for prefix matching both a and b (a != b).
[[noreturn]] void throw_ambiguous(std::string_view prefix, std::size_t matches,
                                  std::size_t unique_chars, std::string_view where);

}  // namespace quiver
