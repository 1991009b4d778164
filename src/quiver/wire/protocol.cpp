#include <algorithm>
#include <cstdio>
#include <quiver/wire/endian.hpp>
#include <quiver/wire/protocol.hpp>

namespace quiver::wire {

namespace {

constexpr const char* kWhere = "quiver::wire";

std::string type_code_text(std::uint16_t code) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", static_cast<unsigned>(code));
  return buf;
}

}  // namespace

std::string_view message_type_name(MessageType t) noexcept {
  switch (t) {
#define QUIVER_X(S, name, code) \
  case MessageType::name:       \
    return #name;
    QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
  }
  return "unknown";
}

std::optional<MessageType> message_type_from_code(std::uint16_t code) noexcept {
  switch (code) {
#define QUIVER_X(S, name, c) \
  case c:                    \
    return MessageType::name;
    QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
  }
  return std::nullopt;
}

bool is_request(MessageType t) noexcept {
  auto code = static_cast<std::uint16_t>(t);
  return code >= 0x10 && code % 2 == 0 && message_type_from_code(code).has_value();
}

std::optional<MessageType> reply_type(MessageType t) noexcept {
  if (!is_request(t)) return std::nullopt;
  return message_type_from_code(static_cast<std::uint16_t>(static_cast<std::uint16_t>(t) + 1));
}

std::vector<std::string> default_capabilities() {
  return {"batch", "query-pages", "chunked-bulk"};
}

ErrorReply ErrorReply::from(const std::exception& e) {
  if (const auto* qe = dynamic_cast<const Error*>(&e))
    return ErrorReply{qe->code(), qe->message(), qe->where()};
  return ErrorReply{ErrorCode::server_error, e.what(), {}};
}

void ErrorReply::raise() const {
  throw_error(code, message, where);
}

MessageType type_of(const Message& m) {
  return std::visit(
      [](const auto& msg) -> MessageType {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          throw InvalidArgument("empty message", kWhere);
        else
          return T::type;
      },
      m);
}

void decode(Reader& r, Greeting& g) {
  auto at = r.offset();
  g.protocol_version = r.u32();
  if (g.protocol_version != kProtocolVersion)
    r.fail_at(at, "protocol version mismatch: the peer speaks quiver wire protocol " +
                      std::to_string(g.protocol_version) + ", this side speaks protocol " +
                      std::to_string(kProtocolVersion));
  decode(r, g.quiver_version);
  decode(r, g.capabilities);
  decode(r, g.limits);
}

Writer encode_message(const Message& m) {
  Writer w;
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          throw InvalidArgument("cannot encode an empty message", kWhere);
        else
          encode(w, msg);
      },
      m);
  return w;
}

Message decode_message(MessageType t, Reader& r) {
  switch (t) {
#define QUIVER_X(S, name, code)     \
  case MessageType::name: {         \
    S msg;                          \
    decode(r, msg);                 \
    return Message(std::move(msg)); \
  }
    QUIVER_WIRE_MESSAGES(QUIVER_X)
#undef QUIVER_X
  }
  r.fail_at(0, "unknown message type " + type_code_text(static_cast<std::uint16_t>(t)));
}

std::string encode_body(const Message& m) {
  return encode_message(m).flatten();
}

Message decode_body(MessageType t, std::span<const std::byte> body, const WireLimits& limits) {
  Message m;
  read_flat_body(
      body, limits, [&](Reader& r) { m = decode_message(t, r); },
      "in a " + std::string(message_type_name(t)) + " body in memory");
  return m;
}

// ---------------------------------------------------------------------------------------------
// Sending

void send_message(FrameWriter& out, std::uint64_t request_id, const Message& m) {
  auto type = type_of(m);
  Writer w = encode_message(m);
  const auto& peer = out.limits();
  if (peer.max_frame == 0) throw InvalidArgument("the peer's maximum frame size is 0", kWhere);
  if (w.skeleton().size() > peer.max_skeleton)
    throw InvalidArgument("a " + std::string(message_type_name(type)) + " message of " +
                              std::to_string(w.skeleton().size()) +
                              " encoded bytes (without bulk) exceeds the peer's maximum of " +
                              std::to_string(peer.max_skeleton),
                          kWhere);
  if (w.bulk_bytes() > peer.max_bulk)
    throw InvalidArgument("a " + std::string(message_type_name(type)) + " message carrying " +
                              std::to_string(w.bulk_bytes()) +
                              " bytes of arrays, bytes and objects exceeds the peer's maximum of " +
                              std::to_string(peer.max_bulk),
                          kWhere);

  auto preamble = w.preamble();
  std::vector<std::span<const std::byte>> body;
  body.reserve(w.bulk_pieces().size() + 2);
  body.emplace_back(preamble);
  if (!w.skeleton().empty()) body.emplace_back(std::as_bytes(std::span(w.skeleton())));
  body.insert(body.end(), w.bulk_pieces().begin(), w.bulk_pieces().end());

  std::uint64_t left = kPreambleSize + w.skeleton().size() + w.bulk_bytes();
  std::vector<std::span<const std::byte>> pieces;
  std::size_t next = 0;
  std::span<const std::byte> current = body[next++];
  while (left > 0) {
    pieces.clear();
    std::uint64_t room = peer.max_frame;
    while (room > 0 && !current.empty()) {
      auto k = static_cast<std::size_t>(std::min<std::uint64_t>(room, current.size()));
      pieces.push_back(current.first(k));
      current = current.subspan(k);
      room -= k;
      if (current.empty() && next < body.size()) current = body[next++];
    }
    left -= peer.max_frame - room;
    FrameHeader h;
    h.type = static_cast<std::uint16_t>(type);
    h.flags = left > 0 ? kFlagMore : 0;
    h.request_id = request_id;
    out.write_frame(h, pieces);
  }
}

// ---------------------------------------------------------------------------------------------
// Receiving

namespace {

// The bytes of one message's body, read across its frames.
class FrameSource final : public BodySource {
 public:
  FrameSource(FrameReader& in, const FrameHeader& head, std::uint64_t head_offset)
      : in_(in), head_(head), head_offset_(head_offset), more_(head.more()) {}

  void read(std::byte* dst, std::size_t n) override {
    while (n > 0) {
      if (in_.payload_left() == 0) next_frame();
      auto k = std::min<std::size_t>(n, in_.payload_left());
      in_.read_payload(dst, k);
      dst += k;
      n -= k;
    }
  }

  void expect_size(std::uint64_t n) override {
    if (!more_ && n != head_.length)
      fail("the preamble declares a body of " + std::to_string(n) + " bytes, the frame has " +
           std::to_string(head_.length));
    if (more_ && n <= head_.length)
      fail("the preamble declares a body of " + std::to_string(n) +
           " bytes, yet more frames follow a first frame of " + std::to_string(head_.length));
  }

  void finish() override {
    if (in_.payload_left() > 0)
      fail(std::to_string(in_.payload_left()) + " trailing bytes after the body");
    if (more_) fail("more frames follow the end of the body");
  }

  std::string context() const override {
    auto type = message_type_from_code(head_.type);
    return "in " +
           (type ? "a " + std::string(message_type_name(*type)) + " message"
                 : "a message of unknown type " + type_code_text(head_.type)) +
           " (id " + std::to_string(head_.request_id) + ") at stream offset " +
           std::to_string(head_offset_);
  }

  // Skips the rest of the message's frames.
  void drain() {
    in_.skip_payload(in_.payload_left());
    while (more_) {
      next_frame();
      in_.skip_payload(in_.payload_left());
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ProtocolError(what + " " + context(), kWhere);
  }

  void next_frame() {
    if (!more_) fail("the body ends before its declared length");
    auto at = in_.offset();
    auto h = in_.next_header();
    if (!h) {
      in_.mark_broken("truncated message");
      fail("truncated message: the stream ends at offset " + std::to_string(at) +
           " where a frame marked \"more follow\" promised another");
    }
    if (h->type != head_.type || h->request_id != head_.request_id) {
      in_.mark_broken("interleaved frames");
      fail("a frame of type " + type_code_text(h->type) + " with id " +
           std::to_string(h->request_id) + " at stream offset " + std::to_string(at) +
           " interleaves the frames of this message");
    }
    more_ = h->more();
  }

  FrameReader& in_;
  FrameHeader head_;
  std::uint64_t head_offset_;
  bool more_;
};

}  // namespace

std::optional<Incoming> receive_message(FrameReader& in) {
  return receive_message(in, {});
}

std::optional<Incoming> receive_message(FrameReader& in, const AfterSkeleton& after_skeleton) {
  auto start = in.offset();
  auto head = in.next_header();
  if (!head) return std::nullopt;
  FrameSource source(in, *head, start);
  try {
    auto type = message_type_from_code(head->type);
    if (!type)
      throw ProtocolError("unknown message type " + type_code_text(head->type) +
                              " at stream offset " + std::to_string(start + 4),
                          kWhere);
    Incoming msg;
    msg.request_id = head->request_id;
    read_body(source, in.limits(), [&](Reader& r) {
      msg.message = decode_message(*type, r);
      if (after_skeleton) after_skeleton(msg.request_id, r, msg.message);
    });
    return msg;
  } catch (const ProtocolError& e) {
    if (in.broken()) throw;
    source.drain();
    throw MalformedMessage(e.message(), e.where(), head->request_id, head->type);
  } catch (...) {
    in.mark_broken("an error inside a message");
    throw;
  }
}

GreetingScan receive_greeting(FrameReader& in, std::size_t max_noise) {
  std::array<std::byte, 6> pattern;
  std::copy(kMagic.begin(), kMagic.end(), pattern.begin());
  store_le(pattern.data() + 4, static_cast<std::uint16_t>(MessageType::greeting));
  GreetingScan scan;
  scan.noise = in.skip_until(pattern, max_noise);
  auto msg = receive_message(in);
  if (!msg || !std::holds_alternative<Greeting>(msg->message))
    throw ProtocolError("the stream ended inside the greeting", kWhere);
  scan.greeting = std::move(std::get<Greeting>(msg->message));
  return scan;
}

// ---------------------------------------------------------------------------------------------
// QueryPager

QueryPager::QueryPager(FrameWriter& out, std::uint64_t request_id, std::uint32_t page_size)
    : out_(out),
      request_id_(request_id),
      page_size_(page_size == 0 ? kDefaultQueryPageSize : std::min(page_size, kMaxQueryPageSize)) {}

QuerySink QueryPager::sink() {
  return [this](const EntrySummary& s) {
    page_.summaries.push_back(s);
    if (page_.summaries.size() >= page_size_) send_page(false);
    return true;
  };
}

void QueryPager::finish() {
  send_page(true);
}

void QueryPager::send_page(bool last) {
  page_.last = last;
  Message page(std::move(page_));
  page_ = QueryPage{};
  send_message(out_, request_id_, page);
}

}  // namespace quiver::wire
