// Typed errors of quiver. Every error carries a code (stable across the wire), a message
// saying what went wrong, and a "where" naming the component, file or digest involved.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace quiver {

// X-macro: one table gives the enum, its names and the exception classes.
// Codes are part of the wire protocol: never renumber, only append.
#define QUIVER_ERROR_TABLE(X)                                                       \
  X(InvalidArgument, invalid_argument, 1)        /* bad input from the caller */    \
  X(NotFound, not_found, 2)                      /* no entry for a digest/prefix */ \
  X(AmbiguousDigest, ambiguous_digest, 3)        /* prefix matches several */       \
  X(Rejected, rejected, 4)                       /* refused: read-only cache */     \
  X(CorruptEntry, corrupt_entry, 5)              /* a stored entry is unreadable */ \
  X(StoreError, store_error, 6)                  /* I/O failure in a store */       \
  X(ConfigError, config_error, 7)                /* bad quiver.toml */              \
  X(TypeError, type_error, 8)                    /* a Value of the wrong kind */    \
  X(RemoteConnectionError, remote_connection, 9) /* transport died */               \
  X(TimeoutError, timeout, 10)                   /* a deadline expired */           \
  X(ProtocolError, protocol_error, 11)           /* malformed wire data */          \
  X(ServerError, server_error, 12)               /* remote failed unexpectedly */

enum class ErrorCode : std::uint16_t {
#define QUIVER_X(cls, name, num) name = num,
  QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X
};

/// The stable lowercase name of an error code ("not_found"); "unknown" for others.
std::string_view error_code_name(ErrorCode code) noexcept;

/// Base of every quiver exception: what() is "<where>: <message>".
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message, std::string where = {});
  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  const std::string& where() const noexcept { return where_; }

 private:
  ErrorCode code_;
  std::string message_;
  std::string where_;
};

#define QUIVER_X(cls, name, num)                                          \
  class cls : public Error {                                              \
   public:                                                                \
    explicit cls(std::string message, std::string where = {})             \
        : Error(ErrorCode::name, std::move(message), std::move(where)) {} \
  };
QUIVER_ERROR_TABLE(QUIVER_X)
#undef QUIVER_X

/// Throws the typed exception for code (used to re-raise errors that crossed a wire).
[[noreturn]] void throw_error(ErrorCode code, std::string message, std::string where = {});

}  // namespace quiver
