#include <quiver/core/errors.hpp>

namespace quiver {

namespace {
std::string compose(const std::string& message, const std::string& where) {
  return where.empty() ? message : where + ": " + message;
}
}  // namespace

std::string_view error_code_name(ErrorCode code) noexcept {
  switch (code) {
#define QUIVER_X(cls, name, num) \
  case ErrorCode::name:          \
    return #name;
    QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X
  }
  return "unknown";
}

Error::Error(ErrorCode code, std::string message, std::string where)
    : std::runtime_error(compose(message, where)),
      code_(code),
      message_(std::move(message)),
      where_(std::move(where)) {}

void throw_error(ErrorCode code, std::string message, std::string where) {
  switch (code) {
#define QUIVER_X(cls, name, num) \
  case ErrorCode::name:          \
    throw cls(std::move(message), std::move(where));
    QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X
  }
  throw ServerError(std::move(message), std::move(where));
}

}  // namespace quiver
