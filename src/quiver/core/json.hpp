// Value <-> JSON, for the CLI (--json, --result-json, --arg key=value) and for info().
//
// Plain JSON maps naturally: null, true/false, integers (int64), other numbers (float64),
// strings, arrays (lists), objects (maps). Kinds JSON lacks use a one-key object:
//   {"$array": {"dtype": "float64", "shape": [2, 3], "data": [...flat, C order...]}}
//     (complex elements are [re, im] pairs)
//   {"$bytes": "<base64>"}
//   {"$object": {"type": "...", "archive": "binary", "blob": "<base64>"}}
// A map whose only key starts with '$' is escaped as {"$map": {...}}.
#pragma once

#include <nlohmann/json.hpp>
#include <quiver/core/value.hpp>
#include <string>
#include <string_view>

namespace quiver {

/// JSON form of v. Arrays larger than max_array_elements become a summary
/// {"$array": {"dtype", "shape", "data": null}}; 0 means no limit.
nlohmann::json to_json(const Value& v, std::uint64_t max_array_elements = 0);
/// Value of j (see above); throws InvalidArgument naming the path of a bad element.
Value from_json(const nlohmann::json& j);
/// Parses text as JSON when it is valid JSON, else takes it as a string (for --arg k=v).
Value parse_literal(std::string_view text);

std::string base64_encode(std::span<const std::byte> bytes);
/// Throws InvalidArgument on malformed input.
Buffer base64_decode(std::string_view text);

}  // namespace quiver
