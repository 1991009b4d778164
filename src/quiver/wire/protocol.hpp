// The quiver wire protocol: message types, their fields, and sending and receiving whole
// messages as frames (docs/protocol.md).
//
// A server greets, then answers each request with one reply carrying the request's id (a
// query answers with pages, the last one flagged; any request may be answered with an
// ErrorReply). A client may pipeline: many requests in flight, replies matched by id. The
// frames of one message are contiguous on the stream; send_message writes them all before
// returning, so one thread (or one lock) per FrameWriter keeps messages from interleaving.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <quiver/core/version.hpp>
#include <quiver/wire/codec.hpp>
#include <quiver/wire/frame.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace quiver::wire {

/// Version of the message layouts. Any change to a layout bumps it.
inline constexpr std::uint32_t kProtocolVersion = 1;
/// Bytes a client skips at most, looking for the greeting, before giving up.
inline constexpr std::size_t kDefaultMaxNoise = 1 << 20;
/// Query pages: the default size, and the most summaries a server puts in one page.
inline constexpr std::uint32_t kDefaultQueryPageSize = 256;
inline constexpr std::uint32_t kMaxQueryPageSize = 4096;

// X-macro: struct, name and code of every message. Requests have even codes from 0x10 on;
// the reply to request code c has code c + 1. Codes are part of the protocol: never reuse.
#define QUIVER_WIRE_MESSAGES(X)                     \
  X(Greeting, greeting, 0x0001)                     \
  X(ErrorReply, error, 0x0002)                      \
  X(Hello, hello, 0x0010)                           \
  X(HelloReply, hello_reply, 0x0011)                \
  X(Ping, ping, 0x0012)                             \
  X(Pong, pong, 0x0013)                             \
  X(SaveRequest, save, 0x0014)                      \
  X(SaveReply, save_reply, 0x0015)                  \
  X(LoadRequest, load, 0x0016)                      \
  X(LoadReply, load_reply, 0x0017)                  \
  X(LoadValueRequest, load_value, 0x0018)           \
  X(LoadValueReply, load_value_reply, 0x0019)       \
  X(ContainsRequest, contains, 0x001a)              \
  X(ContainsReply, contains_reply, 0x001b)          \
  X(ExpandRequest, expand, 0x001c)                  \
  X(ExpandReply, expand_reply, 0x001d)              \
  X(ShrinkRequest, shrink, 0x001e)                  \
  X(ShrinkReply, shrink_reply, 0x001f)              \
  X(QueryRequest, query, 0x0020)                    \
  X(QueryPage, query_page, 0x0021)                  \
  X(EvictRequest, evict, 0x0022)                    \
  X(EvictReply, evict_reply, 0x0023)                \
  X(InfoRequest, info, 0x0024)                      \
  X(InfoReply, info_reply, 0x0025)                  \
  X(ContainsManyRequest, contains_many, 0x0026)     \
  X(ContainsManyReply, contains_many_reply, 0x0027) \
  X(LoadManyRequest, load_many, 0x0028)             \
  X(LoadManyReply, load_many_reply, 0x0029)         \
  X(SaveManyRequest, save_many, 0x002a)             \
  X(SaveManyReply, save_many_reply, 0x002b)

enum class MessageType : std::uint16_t {
#define QUIVER_X(S, name, code) name = code,
  QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
};

/// The protocol name of t ("load_reply"); "unknown" for a code outside the table.
std::string_view message_type_name(MessageType t) noexcept;
/// The type with this code; nullopt when the code is unknown.
std::optional<MessageType> message_type_from_code(std::uint16_t code) noexcept;
/// True for the types a client sends.
bool is_request(MessageType t) noexcept;
/// The type answering request t (t + 1); nullopt when t is not a request.
std::optional<MessageType> reply_type(MessageType t) noexcept;

// Each message lists its fields once, in wire order, for the generic codec.
#define QUIVER_WIRE_FIELDS(...)   \
  auto fields() {                 \
    return std::tie(__VA_ARGS__); \
  }                               \
  auto fields() const {           \
    return std::tie(__VA_ARGS__); \
  }
#define QUIVER_WIRE_NO_FIELDS \
  auto fields() const {       \
    return std::tuple<>();    \
  }

/// Optional features a peer supports; receivers ignore names they do not know.
std::vector<std::string> default_capabilities();

/// Server -> client, request id 0, the first frame of the stream. Its type code and the
/// protocol_version at skeleton byte 0 never change, so any client can read them.
struct Greeting {
  static constexpr MessageType type = MessageType::greeting;
  std::uint32_t protocol_version = kProtocolVersion;
  std::string quiver_version = kVersion;
  std::vector<std::string> capabilities = default_capabilities();
  WireLimits limits;  ///< what the server accepts
  QUIVER_WIRE_FIELDS(protocol_version, quiver_version, capabilities, limits)
};

/// The reply to any request that failed: the error's code, message and where.
struct ErrorReply {
  static constexpr MessageType type = MessageType::error;
  ErrorCode code = ErrorCode::server_error;
  std::string message;
  std::string where;
  QUIVER_WIRE_FIELDS(code, message, where)

  /// The reply for e: its code, message and where when it is a quiver Error, else
  /// server_error with what().
  static ErrorReply from(const std::exception& e);
  /// Throws the typed exception (throw_error; unknown codes become ServerError).
  [[noreturn]] void raise() const;
};

/// Client -> server, the first request: the client's versions and what it accepts.
struct Hello {
  static constexpr MessageType type = MessageType::hello;
  std::uint32_t protocol_version = kProtocolVersion;
  std::string quiver_version = kVersion;
  std::vector<std::string> capabilities = default_capabilities();
  WireLimits limits;  ///< what the client accepts
  QUIVER_WIRE_FIELDS(protocol_version, quiver_version, capabilities, limits)
};
struct HelloReply {
  static constexpr MessageType type = MessageType::hello_reply;
  std::string cache_name;
  bool read_only = false;
  QUIVER_WIRE_FIELDS(cache_name, read_only)
};

struct Ping {
  static constexpr MessageType type = MessageType::ping;
  QUIVER_WIRE_NO_FIELDS
};
struct Pong {
  static constexpr MessageType type = MessageType::pong;
  QUIVER_WIRE_NO_FIELDS
};

struct SaveRequest {
  static constexpr MessageType type = MessageType::save;
  Entry entry;
  QUIVER_WIRE_FIELDS(entry)
};
struct SaveReply {
  static constexpr MessageType type = MessageType::save_reply;
  QUIVER_WIRE_NO_FIELDS
};

struct LoadRequest {
  static constexpr MessageType type = MessageType::load;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};
struct LoadReply {
  static constexpr MessageType type = MessageType::load_reply;
  std::optional<Entry> entry;  ///< nullopt: a miss
  QUIVER_WIRE_FIELDS(entry)
};

struct LoadValueRequest {
  static constexpr MessageType type = MessageType::load_value;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};
struct LoadValueReply {
  static constexpr MessageType type = MessageType::load_value_reply;
  std::optional<Value> value;  ///< nullopt: a miss
  QUIVER_WIRE_FIELDS(value)
};

struct ContainsRequest {
  static constexpr MessageType type = MessageType::contains;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};
struct ContainsReply {
  static constexpr MessageType type = MessageType::contains_reply;
  bool found = false;
  QUIVER_WIRE_FIELDS(found)
};

struct ExpandRequest {
  static constexpr MessageType type = MessageType::expand;
  std::string prefix;
  QUIVER_WIRE_FIELDS(prefix)
};
struct ExpandReply {
  static constexpr MessageType type = MessageType::expand_reply;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};

struct ShrinkRequest {
  static constexpr MessageType type = MessageType::shrink;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};
struct ShrinkReply {
  static constexpr MessageType type = MessageType::shrink_reply;
  std::string prefix;
  QUIVER_WIRE_FIELDS(prefix)
};

struct QueryRequest {
  static constexpr MessageType type = MessageType::query;
  Query query;
  std::uint32_t page_size = 0;  ///< summaries per page wanted; 0: the server's default
  QUIVER_WIRE_FIELDS(query, page_size)
};
/// One page of query results; a query's replies end with the page flagged last.
struct QueryPage {
  static constexpr MessageType type = MessageType::query_page;
  std::vector<EntrySummary> summaries;
  bool last = false;
  QUIVER_WIRE_FIELDS(summaries, last)
};

struct EvictRequest {
  static constexpr MessageType type = MessageType::evict;
  Digest digest;
  QUIVER_WIRE_FIELDS(digest)
};
struct EvictReply {
  static constexpr MessageType type = MessageType::evict_reply;
  bool evicted = false;
  QUIVER_WIRE_FIELDS(evicted)
};

struct InfoRequest {
  static constexpr MessageType type = MessageType::info;
  QUIVER_WIRE_NO_FIELDS
};
struct InfoReply {
  static constexpr MessageType type = MessageType::info_reply;
  nlohmann::json info;  ///< the server's info(), secrets redacted
  QUIVER_WIRE_FIELDS(info)
};

struct ContainsManyRequest {
  static constexpr MessageType type = MessageType::contains_many;
  std::vector<Digest> digests;
  QUIVER_WIRE_FIELDS(digests)
};
struct ContainsManyReply {
  static constexpr MessageType type = MessageType::contains_many_reply;
  std::vector<bool> found;  ///< one per requested digest, in order
  QUIVER_WIRE_FIELDS(found)
};

struct LoadManyRequest {
  static constexpr MessageType type = MessageType::load_many;
  std::vector<Digest> digests;
  QUIVER_WIRE_FIELDS(digests)
};
struct LoadManyReply {
  static constexpr MessageType type = MessageType::load_many_reply;
  std::vector<std::optional<Entry>> entries;  ///< one per requested digest, in order
  QUIVER_WIRE_FIELDS(entries)
};

struct SaveManyRequest {
  static constexpr MessageType type = MessageType::save_many;
  std::vector<Entry> entries;
  QUIVER_WIRE_FIELDS(entries)
};
struct SaveManyReply {
  static constexpr MessageType type = MessageType::save_many_reply;
  QUIVER_WIRE_NO_FIELDS
};

#undef QUIVER_WIRE_FIELDS
#undef QUIVER_WIRE_NO_FIELDS

/// Any message: std::monostate (the empty message, never sent), then one alternative per
/// row of QUIVER_WIRE_MESSAGES, in that order.
using Message = std::variant<std::monostate
#define QUIVER_X(S, name, code) , S
                                 QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
                             >;

/// The type of m; throws InvalidArgument for an empty (monostate) message.
MessageType type_of(const Message& m);

/// Reads the greeting's version first: a different protocol version is a ProtocolError
/// naming both versions.
void decode(Reader& r, Greeting& g);

/// Encodes m: its skeleton, and references to its bulk payloads (valid while m lives).
Writer encode_message(const Message& m);
/// Decodes the skeleton of a message of type t.
Message decode_message(MessageType t, Reader& r);
/// The body of m (preamble, skeleton, bulk) in one string; for tests and tools.
std::string encode_body(const Message& m);
/// Decodes a whole body held in memory; throws ProtocolError.
Message decode_body(MessageType t, std::span<const std::byte> body, const WireLimits& limits = {});

/// Sends m as one or more contiguous frames of its type and request_id, each at most the
/// peer's max_frame, bulk payloads written straight from their buffers. Throws
/// InvalidArgument when m exceeds the peer's max_skeleton or max_bulk (nothing is sent).
void send_message(FrameWriter& out, std::uint64_t request_id, const Message& m);

/// A received message and the request id it carries.
struct Incoming {
  std::uint64_t request_id = 0;
  Message message;
  MessageType type() const { return type_of(message); }
};

/// A message whose frames were intact but whose content was not (unknown type, bad field,
/// over a limit): its frames have been skipped, so the stream is still usable and the
/// server can answer request_id() with an error.
class MalformedMessage : public ProtocolError {
 public:
  MalformedMessage(std::string message, std::string where, std::uint64_t request_id,
                   std::uint16_t type_code)
      : ProtocolError(std::move(message), std::move(where)),
        request_id_(request_id),
        type_code_(type_code) {}
  std::uint64_t request_id() const noexcept { return request_id_; }
  std::uint16_t type_code() const noexcept { return type_code_; }

 private:
  std::uint64_t request_id_;
  std::uint16_t type_code_;
};

/// Reads the next whole message; nullopt when the stream ends cleanly between messages.
/// Bulk payloads are read straight into buffers allocated once at their declared size.
/// Throws MalformedMessage (stream still usable), ProtocolError for broken framing or a
/// truncated stream, TimeoutError past the reader's deadline, RemoteConnectionError when
/// reading fails. After any error other than MalformedMessage, or a timeout inside a
/// message, the reader is broken.
std::optional<Incoming> receive_message(FrameReader& in);
/// Called once a message's skeleton is decoded, before its bulk is read: it may retarget
/// the bulk (Reader::retarget, receive_into) into memory of its own.
using AfterSkeleton = std::function<void(std::uint64_t request_id, Reader& r, Message& m)>;
/// receive_message, calling after_skeleton (if set) between the skeleton and the bulk.
std::optional<Incoming> receive_message(FrameReader& in, const AfterSkeleton& after_skeleton);

/// The greeting, and the bytes that came before it.
struct GreetingScan {
  Greeting greeting;
  std::string noise;  ///< what login scripts printed; the caller logs it
};

/// Skips at most max_noise bytes of noise, then reads the greeting. Throws ProtocolError
/// (with the noise) when none comes, or when its protocol version differs from ours.
GreetingScan receive_greeting(FrameReader& in, std::size_t max_noise = kDefaultMaxNoise);

/// The Reply in in: an ErrorReply is raised as its typed exception; any other type is a
/// ProtocolError naming both types.
template <class Reply>
Reply expect_reply(Incoming&& in) {
  if (auto* reply = std::get_if<Reply>(&in.message)) return std::move(*reply);
  if (auto* error = std::get_if<ErrorReply>(&in.message)) error->raise();
  throw ProtocolError("expected a " + std::string(message_type_name(Reply::type)) +
                          " message for request " + std::to_string(in.request_id) + ", got " +
                          std::string(message_type_name(in.type())),
                      "quiver::wire::expect_reply");
}

/// Sends query results as QueryPage messages of at most page_size summaries; use
/// sink() as the QuerySink of Cache::query, then finish() to send the last page.
class QueryPager {
 public:
  /// page_size 0 means kDefaultQueryPageSize; larger than kMaxQueryPageSize is capped.
  QueryPager(FrameWriter& out, std::uint64_t request_id, std::uint32_t page_size);
  /// A QuerySink adding to the current page and sending it when full.
  QuerySink sink();
  /// Sends the remaining summaries as the last page (possibly empty).
  void finish();

 private:
  void send_page(bool last);

  FrameWriter& out_;
  std::uint64_t request_id_;
  std::size_t page_size_;
  QueryPage page_;
};

}  // namespace quiver::wire
