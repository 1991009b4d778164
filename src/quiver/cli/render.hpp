// Values for humans: the full rendering of `quiver get` and the structural summaries of
// `quiver show` (types, shapes, dtypes and sizes, not the data).
#pragma once

#include <nlohmann/json.hpp>
#include <quiver/core/value.hpp>
#include <string>

namespace quiver::cli {

/// Readable multi-line text of v: scalars bare, maps and lists indented, arrays as nested
/// brackets (elided in the middle when they hold more than 1000 elements).
std::string render_value(const Value& v);
/// One line describing v: its kind with the value of a scalar, or dtype, shape and size.
std::string describe_value(const Value& v);
/// describe_value of v followed by an indented line per child, as a tree (at most 50
/// children per map or list are shown).
std::string describe_tree(const Value& v, std::size_t indent = 0);
/// The JSON form of describe_tree: {"kind", "bytes", ...} with "value", "dtype", "shape",
/// "length", "type", "items" and "more" as they apply.
nlohmann::json describe_json(const Value& v);

}  // namespace quiver::cli
