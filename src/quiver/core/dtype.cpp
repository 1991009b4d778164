#include <array>
#include <quiver/core/dtype.hpp>

namespace quiver {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view name;
  std::size_t size;
  std::size_t component;
};
constexpr std::array<DTypeInfo, 12> kTypes{{
    {DType::int8, "int8", 1, 1},
    {DType::int16, "int16", 2, 2},
    {DType::int32, "int32", 4, 4},
    {DType::int64, "int64", 8, 8},
    {DType::uint8, "uint8", 1, 1},
    {DType::uint16, "uint16", 2, 2},
    {DType::uint32, "uint32", 4, 4},
    {DType::uint64, "uint64", 8, 8},
    {DType::float32, "float32", 4, 4},
    {DType::float64, "float64", 8, 8},
    {DType::complex64, "complex64", 8, 4},
    {DType::complex128, "complex128", 16, 8},
}};

const DTypeInfo* find(DType t) noexcept {
  auto i = static_cast<std::size_t>(t);
  return (i >= 1 && i <= kTypes.size()) ? &kTypes[i - 1] : nullptr;
}
}  // namespace

std::size_t dtype_size(DType t) noexcept {
  const auto* info = find(t);
  return info ? info->size : 0;
}

std::size_t dtype_component_size(DType t) noexcept {
  const auto* info = find(t);
  return info ? info->component : 0;
}

std::string_view dtype_name(DType t) noexcept {
  const auto* info = find(t);
  return info ? info->name : std::string_view("invalid");
}

std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (const auto& info : kTypes)
    if (info.name == name) return info.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_code(std::uint8_t code) noexcept {
  if (code >= 1 && code <= kTypes.size()) return static_cast<DType>(code);
  return std::nullopt;
}

}  // namespace quiver
