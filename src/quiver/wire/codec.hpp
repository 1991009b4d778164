// The wire codec: a small, bounded, little-endian encoding of Values and cache records
// (grammar in docs/protocol.md). A message body is a preamble, a skeleton and a bulk: the
// skeleton holds every field, with the payloads of arrays, bytes and objects replaced by
// their lengths; the bulk holds those payloads in skeleton order. Large payloads thus travel
// without an extra copy, and a decoder allocates each one once, from its declared length,
// after checking it against what the message declared and the receiver's limits.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <quiver/core/call.hpp>
#include <quiver/core/value.hpp>
#include <quiver/store/cache.hpp>
#include <quiver/wire/frame.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::wire {

/// Deepest nesting of Values (a root value is at depth 1).
inline constexpr std::size_t kMaxDepth = 64;
/// Most dimensions of an array.
inline constexpr std::size_t kMaxRank = 32;
/// Bytes of the body preamble: skeleton length and bulk length, u64 each.
inline constexpr std::size_t kPreambleSize = 16;

/// Builds a skeleton and collects references to bulk payloads (which must outlive it).
class Writer {
 public:
  void u8(std::uint8_t v) { skeleton_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v);
  void raw(const void* data, std::size_t n);
  /// A u64 length and the bytes of s.
  void str(std::string_view s);
  /// A u64 length in the skeleton; the bytes go to the bulk, by reference.
  void bulk(std::span<const std::byte> payload);
  /// Bytes for the bulk, by reference, whose length the skeleton already implies.
  void bulk_implied(std::span<const std::byte> payload);

  /// One level deeper into a Value; throws InvalidArgument past kMaxDepth.
  void enter();
  void leave() noexcept { --depth_; }

  const std::string& skeleton() const noexcept { return skeleton_; }
  const std::vector<std::span<const std::byte>>& bulk_pieces() const noexcept { return bulk_; }
  std::uint64_t bulk_bytes() const noexcept { return bulk_bytes_; }
  /// The preamble of the body: skeleton length and bulk length.
  std::array<std::byte, kPreambleSize> preamble() const noexcept;
  /// The whole body, contiguous (preamble, skeleton, bulk); for tests and tools.
  std::string flatten() const;

 private:
  std::string skeleton_;
  std::vector<std::span<const std::byte>> bulk_;
  std::uint64_t bulk_bytes_ = 0;
  std::size_t depth_ = 0;
};

/// A buffer declared by a skeleton, to be filled from the bulk.
struct BulkSlot {
  std::byte* data = nullptr;
  std::uint64_t size = 0;
};

/// Decodes a skeleton. Every read is checked against the bytes left; bulk payloads are
/// allocated only after their length is checked against the bulk the body declared.
class Reader {
 public:
  /// Reads skeleton, whose body declares bulk_bytes of bulk; context() ends error messages
  /// (e.g. "in a load_reply message at stream offset 1234") and is called only on errors.
  Reader(std::span<const std::byte> skeleton, std::uint64_t bulk_bytes,
         std::function<std::string()> context = {});

  std::uint8_t u8();
  std::uint16_t u16();
  std::uint32_t u32();
  std::uint64_t u64();
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  double f64();
  void raw(void* dst, std::size_t n);
  /// A u64 length and that many bytes.
  std::string str();
  /// A u64 element count, at most the skeleton bytes left (each element takes one or more).
  std::uint64_t count();
  /// A u64 bulk length; returns a buffer of that size, to be filled from the bulk later.
  Buffer bulk(std::string_view what);
  /// A buffer of n bytes (a length the skeleton implies), to be filled from the bulk later.
  Buffer bulk(std::uint64_t n, std::string_view what);

  /// One level deeper into a Value; throws ProtocolError past kMaxDepth.
  void enter();
  void leave() noexcept { --depth_; }

  std::size_t offset() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return skeleton_.size() - pos_; }
  /// Throws ProtocolError unless the skeleton is consumed and the bulk fully declared.
  void finish() const;
  const std::vector<BulkSlot>& slots() const noexcept { return slots_; }
  /// Makes the bulk meant for the buffer at from go to `to` instead (as many bytes); false
  /// when no slot starts at from.
  bool retarget(const std::byte* from, std::byte* to) noexcept;

  /// Throws ProtocolError: what, at skeleton byte offset, and the context.
  [[noreturn]] void fail_at(std::size_t offset, const std::string& what) const;
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

 private:
  const std::byte* take(std::size_t n);
  Buffer take_bulk(std::size_t at, std::uint64_t n, std::string_view what);

  std::span<const std::byte> skeleton_;
  std::size_t pos_ = 0;
  std::uint64_t bulk_bytes_ = 0;
  std::uint64_t bulk_declared_ = 0;
  std::vector<BulkSlot> slots_;
  std::size_t depth_ = 0;
  std::function<std::string()> context_;
};

/// Where the bytes of one body come from: memory, or the frames of one message.
class BodySource {
 public:
  virtual ~BodySource() = default;
  /// Copies the next n body bytes to dst; throws ProtocolError when the body has fewer.
  virtual void read(std::byte* dst, std::size_t n) = 0;
  /// Throws ProtocolError when the body is known not to hold exactly n bytes.
  virtual void expect_size(std::uint64_t n) = 0;
  /// Throws ProtocolError unless the body ends here.
  virtual void finish() = 0;
  /// Names the body in error messages ("in a save message (id 3) at stream offset 96").
  virtual std::string context() const = 0;
};

/// Reads one body from source: preamble (checked against limits before anything is
/// allocated), skeleton (decoded by decode_skeleton), then the bulk, straight into the
/// buffers the skeleton declared. Throws ProtocolError.
void read_body(BodySource& source, const WireLimits& limits,
               const std::function<void(Reader&)>& decode_skeleton);
/// read_body over a body held in memory.
void read_flat_body(std::span<const std::byte> body, const WireLimits& limits,
                    const std::function<void(Reader&)>& decode_skeleton,
                    std::string context = "in a body in memory");

// Encoders and decoders of each field type. Decoders throw ProtocolError naming the offset.
void encode(Writer& w, bool v);
void encode(Writer& w, std::uint16_t v);
void encode(Writer& w, std::uint32_t v);
void encode(Writer& w, std::uint64_t v);
void encode(Writer& w, std::int64_t v);
void encode(Writer& w, double v);
void encode(Writer& w, const std::string& v);
void encode(Writer& w, const Digest& v);
void encode(Writer& w, ErrorCode v);
void encode(Writer& w, Clock::time_point v);
void encode(Writer& w, const Value& v);
void encode(Writer& w, const Call& v);
void encode(Writer& w, const Metadata& v);
void encode(Writer& w, const Entry& v);
void encode(Writer& w, const EntrySummary& v);
void encode(Writer& w, const Query& v);
void encode(Writer& w, const WireLimits& v);
/// JSON travels as its text.
void encode(Writer& w, const nlohmann::json& v);
void encode(Writer& w, const std::vector<bool>& v);

void decode(Reader& r, bool& v);
void decode(Reader& r, std::uint16_t& v);
void decode(Reader& r, std::uint32_t& v);
void decode(Reader& r, std::uint64_t& v);
void decode(Reader& r, std::int64_t& v);
void decode(Reader& r, double& v);
void decode(Reader& r, std::string& v);
void decode(Reader& r, Digest& v);
void decode(Reader& r, ErrorCode& v);
void decode(Reader& r, Clock::time_point& v);
void decode(Reader& r, Value& v);
/// After decode(r, v), before the bulk is read: the arrays of v at paths of into that fit
/// their destination are read straight there, and v borrows that memory. Arrays that do not
/// fit are left as they are (place_arrays then reports them).
void receive_into(Reader& r, Value& v, const ArrayDestinations& into);
void decode(Reader& r, Call& v);
void decode(Reader& r, Metadata& v);
void decode(Reader& r, Entry& v);
void decode(Reader& r, EntrySummary& v);
void decode(Reader& r, Query& v);
/// Rejects a max_frame below kMinFrameLimit.
void decode(Reader& r, WireLimits& v);
void decode(Reader& r, nlohmann::json& v);
void decode(Reader& r, std::vector<bool>& v);

/// Optional: a presence byte (0 or 1), then the value when present.
template <class T>
void encode(Writer& w, const std::optional<T>& v) {
  encode(w, v.has_value());
  if (v) encode(w, *v);
}
template <class T>
void decode(Reader& r, std::optional<T>& v) {
  bool present = false;
  decode(r, present);
  if (!present) {
    v.reset();
    return;
  }
  decode(r, v.emplace());
}

/// Sequence: a u64 count, then the elements.
template <class T>
void encode(Writer& w, const std::vector<T>& v) {
  w.u64(v.size());
  for (const auto& item : v) encode(w, item);
}
template <class T>
void decode(Reader& r, std::vector<T>& v) {
  auto n = r.count();
  v.clear();
  for (std::uint64_t i = 0; i < n; ++i) decode(r, v.emplace_back());
}

/// String-keyed map: a u64 count, then key and value pairs with keys strictly increasing
/// bytewise (so duplicates and disorder are rejected).
template <class T>
void encode(Writer& w, const std::map<std::string, T, std::less<>>& m) {
  w.u64(m.size());
  for (const auto& [key, value] : m) {
    w.str(key);
    encode(w, value);
  }
}
/// Throws ProtocolError (at the key) for a key not after the previous one.
void check_key_order(Reader& r, std::size_t key_offset, const std::string* previous,
                     const std::string& key);
template <class T>
void decode(Reader& r, std::map<std::string, T, std::less<>>& m) {
  auto n = r.count();
  m.clear();
  const std::string* previous = nullptr;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto at = r.offset();
    auto key = r.str();
    check_key_order(r, at, previous, key);
    auto it = m.emplace_hint(m.end(), std::move(key), T{});
    decode(r, it->second);
    previous = &it->first;
  }
}

/// Records with a fields() tuple (the protocol messages): their fields in order.
template <class M>
requires requires(const M& m) {
  m.fields();
}
void encode(Writer& w, const M& m) {
  std::apply([&](const auto&... f) { (encode(w, f), ...); }, m.fields());
}
template <class M>
requires requires(M& m) {
  m.fields();
}
void decode(Reader& r, M& m) {
  std::apply([&](auto&... f) { (decode(r, f), ...); }, m.fields());
}

}  // namespace quiver::wire
