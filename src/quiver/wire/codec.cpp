#include <bit>
#include <cstring>
#include <limits>
#include <quiver/wire/codec.hpp>
#include <quiver/wire/endian.hpp>

namespace quiver::wire {

namespace {

constexpr const char* kWriterWhere = "quiver::wire::Writer";
constexpr const char* kReaderWhere = "quiver::wire::Reader";

static_assert(std::endian::native == std::endian::little,
              "Array buffers are little-endian in memory; the bulk is sent as is");

// s shortened and with non-printable bytes escaped, for error messages.
std::string printable(std::string_view s) {
  constexpr std::size_t kShown = 60;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kShown; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kDigits[c >> 4];
      out += kDigits[c & 15];
    }
  }
  if (s.size() > kShown) out += "...";
  return out + "\"";
}

template <class Coder>
class Nest {
 public:
  explicit Nest(Coder& c) : c_(c) { c_.enter(); }
  ~Nest() { c_.leave(); }
  Nest(const Nest&) = delete;
  Nest& operator=(const Nest&) = delete;

 private:
  Coder& c_;
};

// Bytes of an array of dtype and shape; nullopt when the size overflows 64 bits.
std::optional<std::uint64_t> array_bytes(DType dtype, const Shape& shape) {
  std::uint64_t n = dtype_size(dtype);
  for (auto d : shape) {
    if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / d) return std::nullopt;
    n *= d;
  }
  return n;
}

std::string shape_text(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

void Writer::u16(std::uint16_t v) {
  std::byte b[2];
  store_le(b, v);
  raw(b, sizeof b);
}

void Writer::u32(std::uint32_t v) {
  std::byte b[4];
  store_le(b, v);
  raw(b, sizeof b);
}

void Writer::u64(std::uint64_t v) {
  std::byte b[8];
  store_le(b, v);
  raw(b, sizeof b);
}

void Writer::f64(double v) {
  u64(std::bit_cast<std::uint64_t>(v));
}

void Writer::raw(const void* data, std::size_t n) {
  if (n > 0) skeleton_.append(static_cast<const char*>(data), n);
}

void Writer::str(std::string_view s) {
  u64(s.size());
  raw(s.data(), s.size());
}

void Writer::bulk(std::span<const std::byte> payload) {
  u64(payload.size());
  bulk_implied(payload);
}

void Writer::bulk_implied(std::span<const std::byte> payload) {
  if (!payload.empty()) bulk_.push_back(payload);
  bulk_bytes_ += payload.size();
}

void Writer::enter() {
  if (++depth_ > kMaxDepth) {
    --depth_;
    throw InvalidArgument("value nests deeper than " + std::to_string(kMaxDepth) + " levels",
                          kWriterWhere);
  }
}

std::array<std::byte, kPreambleSize> Writer::preamble() const noexcept {
  std::array<std::byte, kPreambleSize> p;
  store_le(p.data(), static_cast<std::uint64_t>(skeleton_.size()));
  store_le(p.data() + 8, bulk_bytes_);
  return p;
}

std::string Writer::flatten() const {
  std::string out;
  out.reserve(kPreambleSize + skeleton_.size() + bulk_bytes_);
  auto p = preamble();
  out.append(reinterpret_cast<const char*>(p.data()), p.size());
  out += skeleton_;
  for (auto piece : bulk_) out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reader

Reader::Reader(std::span<const std::byte> skeleton, std::uint64_t bulk_bytes,
               std::function<std::string()> context)
    : skeleton_(skeleton), bulk_bytes_(bulk_bytes), context_(std::move(context)) {}

void Reader::fail_at(std::size_t offset, const std::string& what) const {
  throw ProtocolError(what + " at skeleton byte " + std::to_string(offset) +
                          (context_ ? " " + context_() : std::string()),
                      kReaderWhere);
}

const std::byte* Reader::take(std::size_t n) {
  if (n > remaining())
    fail("truncated: " + std::to_string(n) + " bytes needed, " + std::to_string(remaining()) +
         " left in the skeleton");
  const auto* p = skeleton_.data() + pos_;
  pos_ += n;
  return p;
}

std::uint8_t Reader::u8() {
  return static_cast<std::uint8_t>(*take(1));
}
std::uint16_t Reader::u16() {
  return load_le<std::uint16_t>(take(2));
}
std::uint32_t Reader::u32() {
  return load_le<std::uint32_t>(take(4));
}
std::uint64_t Reader::u64() {
  return load_le<std::uint64_t>(take(8));
}
double Reader::f64() {
  return std::bit_cast<double>(u64());
}

void Reader::raw(void* dst, std::size_t n) {
  if (n > 0) std::memcpy(dst, take(n), n);
}

std::string Reader::str() {
  auto at = pos_;
  auto n = u64();
  if (n > remaining())
    fail_at(at, "string of " + std::to_string(n) + " bytes, but only " +
                    std::to_string(remaining()) + " bytes left in the skeleton");
  const auto* p = take(static_cast<std::size_t>(n));
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::uint64_t Reader::count() {
  auto at = pos_;
  auto n = u64();
  if (n > remaining())
    fail_at(at, "count of " + std::to_string(n) + " elements, but only " +
                    std::to_string(remaining()) + " bytes left in the skeleton");
  return n;
}

Buffer Reader::bulk(std::string_view what) {
  auto at = pos_;
  return take_bulk(at, u64(), what);
}

Buffer Reader::bulk(std::uint64_t n, std::string_view what) {
  return take_bulk(pos_, n, what);
}

Buffer Reader::take_bulk(std::size_t at, std::uint64_t n, std::string_view what) {
  auto left = bulk_bytes_ - bulk_declared_;
  if (n > left)
    fail_at(at, std::string(what) + " payload of " + std::to_string(n) +
                    " bytes, but the body declares only " + std::to_string(left) +
                    " more bulk bytes");
  bulk_declared_ += n;
  Buffer b = Buffer::allocate(static_cast<std::size_t>(n));
  if (n > 0) slots_.push_back({b.mutable_data(), n});
  return b;
}

bool Reader::retarget(const std::byte* from, std::byte* to) noexcept {
  for (auto& slot : slots_) {
    if (slot.data != from) continue;
    slot.data = to;
    return true;
  }
  return false;
}

void Reader::enter() {
  if (++depth_ > kMaxDepth) {
    --depth_;
    fail("value nests deeper than " + std::to_string(kMaxDepth) + " levels");
  }
}

void Reader::finish() const {
  if (remaining() > 0) fail(std::to_string(remaining()) + " trailing bytes after the last field");
  if (bulk_declared_ != bulk_bytes_)
    fail("the skeleton declares " + std::to_string(bulk_declared_) +
         " bulk bytes, the body carries " + std::to_string(bulk_bytes_));
}

// ---------------------------------------------------------------------------------------------
// Bodies

void read_body(BodySource& source, const WireLimits& limits,
               const std::function<void(Reader&)>& decode_skeleton) {
  auto fail = [&](const std::string& what) {
    throw ProtocolError(what + " " + source.context(), kReaderWhere);
  };
  std::array<std::byte, kPreambleSize> pre;
  source.read(pre.data(), pre.size());
  auto skeleton_bytes = load_le<std::uint64_t>(pre.data());
  auto bulk_bytes = load_le<std::uint64_t>(pre.data() + 8);
  if (skeleton_bytes > limits.max_skeleton)
    fail("skeleton of " + std::to_string(skeleton_bytes) + " bytes exceeds the maximum of " +
         std::to_string(limits.max_skeleton));
  if (bulk_bytes > limits.max_bulk)
    fail("bulk of " + std::to_string(bulk_bytes) + " bytes exceeds the maximum of " +
         std::to_string(limits.max_bulk));
  source.expect_size(kPreambleSize + skeleton_bytes + bulk_bytes);

  std::vector<std::byte> skeleton(static_cast<std::size_t>(skeleton_bytes));
  source.read(skeleton.data(), skeleton.size());
  Reader r(skeleton, bulk_bytes, [&source] { return source.context(); });
  decode_skeleton(r);
  r.finish();
  for (const auto& slot : r.slots()) source.read(slot.data, static_cast<std::size_t>(slot.size));
  source.finish();
}

namespace {

class MemorySource final : public BodySource {
 public:
  MemorySource(std::span<const std::byte> body, std::string context)
      : body_(body), context_(std::move(context)) {}

  void read(std::byte* dst, std::size_t n) override {
    if (n > body_.size() - pos_)
      fail("truncated body: " + std::to_string(n) + " bytes needed at body byte " +
           std::to_string(pos_) + ", " + std::to_string(body_.size() - pos_) + " left");
    if (n == 0) return;  // dst may be null (an empty skeleton)
    std::memcpy(dst, body_.data() + pos_, n);
    pos_ += n;
  }
  void expect_size(std::uint64_t n) override {
    if (n != body_.size())
      fail("the preamble declares a body of " + std::to_string(n) + " bytes, it has " +
           std::to_string(body_.size()));
  }
  void finish() override {
    if (pos_ != body_.size())
      fail(std::to_string(body_.size() - pos_) + " trailing bytes after the body");
  }
  std::string context() const override { return context_; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ProtocolError(what + " " + context_, kReaderWhere);
  }

  std::span<const std::byte> body_;
  std::size_t pos_ = 0;
  std::string context_;
};

}  // namespace

void read_flat_body(std::span<const std::byte> body, const WireLimits& limits,
                    const std::function<void(Reader&)>& decode_skeleton, std::string context) {
  MemorySource source(body, std::move(context));
  read_body(source, limits, decode_skeleton);
}

// ---------------------------------------------------------------------------------------------
// Scalars

void encode(Writer& w, bool v) {
  w.u8(v ? 1 : 0);
}
void encode(Writer& w, std::uint16_t v) {
  w.u16(v);
}
void encode(Writer& w, std::uint32_t v) {
  w.u32(v);
}
void encode(Writer& w, std::uint64_t v) {
  w.u64(v);
}
void encode(Writer& w, std::int64_t v) {
  w.i64(v);
}
void encode(Writer& w, double v) {
  w.f64(v);
}
void encode(Writer& w, const std::string& v) {
  w.str(v);
}
void encode(Writer& w, const Digest& v) {
  w.raw(v.bytes().data(), v.bytes().size());
}
void encode(Writer& w, ErrorCode v) {
  w.u16(static_cast<std::uint16_t>(v));
}
void encode(Writer& w, Clock::time_point v) {
  w.i64(to_unix_ns(v));
}

void decode(Reader& r, bool& v) {
  auto at = r.offset();
  auto b = r.u8();
  if (b > 1) r.fail_at(at, "boolean byte " + std::to_string(b) + " is neither 0 nor 1");
  v = b == 1;
}
void decode(Reader& r, std::uint16_t& v) {
  v = r.u16();
}
void decode(Reader& r, std::uint32_t& v) {
  v = r.u32();
}
void decode(Reader& r, std::uint64_t& v) {
  v = r.u64();
}
void decode(Reader& r, std::int64_t& v) {
  v = r.i64();
}
void decode(Reader& r, double& v) {
  v = r.f64();
}
void decode(Reader& r, std::string& v) {
  v = r.str();
}
void decode(Reader& r, Digest& v) {
  std::array<std::uint8_t, 32> bytes;
  r.raw(bytes.data(), bytes.size());
  v = Digest(bytes);
}
void decode(Reader& r, ErrorCode& v) {
  v = static_cast<ErrorCode>(r.u16());
}
void decode(Reader& r, Clock::time_point& v) {
  v = from_unix_ns(r.i64());
}

void encode(Writer& w, const std::vector<bool>& v) {
  w.u64(v.size());
  for (bool b : v) encode(w, b);
}
void decode(Reader& r, std::vector<bool>& v) {
  auto n = r.count();
  v.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    bool b = false;
    decode(r, b);
    v.push_back(b);
  }
}

void check_key_order(Reader& r, std::size_t key_offset, const std::string* previous,
                     const std::string& key) {
  if (!previous || *previous < key) return;
  if (*previous == key) r.fail_at(key_offset, "duplicate map key " + printable(key));
  r.fail_at(key_offset, "map key " + printable(key) + " is not after " + printable(*previous) +
                            " (keys must be sorted bytewise)");
}

// ---------------------------------------------------------------------------------------------
// Values

void encode(Writer& w, const Value& v) {
  Nest<Writer> nest(w);
  w.u8(static_cast<std::uint8_t>(v.kind()));
  switch (v.kind()) {
    case Kind::null:
      break;
    case Kind::boolean:
      encode(w, v.as_bool());
      break;
    case Kind::integer:
      w.i64(v.as_int());
      break;
    case Kind::floating:
      w.f64(v.as_double());
      break;
    case Kind::string:
      w.str(v.as_string());
      break;
    case Kind::bytes:
      w.bulk(v.as_bytes().data.span());
      break;
    case Kind::array: {
      const auto& a = v.as_array();
      if (a.rank() > kMaxRank)
        throw InvalidArgument("array of rank " + std::to_string(a.rank()) +
                                  " exceeds the wire maximum of " + std::to_string(kMaxRank),
                              kWriterWhere);
      w.u8(static_cast<std::uint8_t>(a.dtype()));
      w.u8(static_cast<std::uint8_t>(a.rank()));
      for (auto d : a.shape()) w.u64(d);
      w.bulk_implied(a.buffer().span());
      break;
    }
    case Kind::list:
      encode(w, v.as_list());
      break;
    case Kind::map:
      encode(w, v.as_map());
      break;
    case Kind::object: {
      const auto& o = v.as_object();
      w.str(o.type_name);
      w.str(o.archive);
      w.bulk(o.blob.span());
      break;
    }
  }
}

void decode(Reader& r, Value& v) {
  Nest<Reader> nest(r);
  auto at = r.offset();
  auto code = r.u8();
  switch (code) {
    case static_cast<std::uint8_t>(Kind::null):
      v = Value();
      break;
    case static_cast<std::uint8_t>(Kind::boolean): {
      bool b = false;
      decode(r, b);
      v = Value(b);
      break;
    }
    case static_cast<std::uint8_t>(Kind::integer):
      v = Value(r.i64());
      break;
    case static_cast<std::uint8_t>(Kind::floating):
      v = Value(r.f64());
      break;
    case static_cast<std::uint8_t>(Kind::string):
      v = Value(r.str());
      break;
    case static_cast<std::uint8_t>(Kind::bytes):
      v = Value(Bytes{r.bulk("bytes")});
      break;
    case static_cast<std::uint8_t>(Kind::array): {
      auto dtype_code = r.u8();
      auto dtype = dtype_from_code(dtype_code);
      if (!dtype) r.fail_at(at + 1, "unknown dtype code " + std::to_string(dtype_code));
      auto rank = r.u8();
      if (rank > kMaxRank)
        r.fail_at(at + 2, "array rank " + std::to_string(rank) + " exceeds the maximum of " +
                              std::to_string(kMaxRank));
      Shape shape(rank);
      for (auto& d : shape) d = r.u64();
      auto nbytes = array_bytes(*dtype, shape);
      if (!nbytes)
        r.fail_at(at, "array shape " + shape_text(shape) + " of " +
                          std::string(dtype_name(*dtype)) + " overflows 64 bits");
      Buffer data =
          r.bulk(*nbytes, "array " + shape_text(shape) + " of " + std::string(dtype_name(*dtype)));
      v = Value(Array(*dtype, std::move(shape), std::move(data)));
      break;
    }
    case static_cast<std::uint8_t>(Kind::list): {
      Value::List list;
      decode(r, list);
      v = Value(std::move(list));
      break;
    }
    case static_cast<std::uint8_t>(Kind::map): {
      Value::Map map;
      decode(r, map);
      v = Value(std::move(map));
      break;
    }
    case static_cast<std::uint8_t>(Kind::object): {
      Object o;
      o.type_name = r.str();
      o.archive = r.str();
      o.blob = r.bulk("object");
      v = Value(std::move(o));
      break;
    }
    default:
      r.fail_at(at, "unknown value kind code " + std::to_string(code));
  }
}

void receive_into(Reader& r, Value& v, const ArrayDestinations& into) {
  for (const auto& [path, dest] : into) {
    Value* node = value_at(v, path);
    if (!node || node->kind() != Kind::array) continue;
    Array& a = node->as_array();
    if (destination_mismatch(path, a.dtype(), a.shape(), dest)) continue;
    if (!r.retarget(a.buffer().data(), dest.bytes.data())) continue;
    a = Array(a.dtype(), a.shape(), Buffer::borrow(dest.bytes.data(), dest.bytes.size()));
  }
}

// ---------------------------------------------------------------------------------------------
// Records

void encode(Writer& w, const Call& v) {
  w.str(v.function);
  w.str(v.version);
  encode(w, v.args);
}
void decode(Reader& r, Call& v) {
  v.function = r.str();
  v.version = r.str();
  decode(r, v.args);
}

void encode(Writer& w, const Metadata& v) {
  encode(w, v.created);
  w.str(v.host);
  w.str(v.user);
  w.f64(v.wall_time);
  w.str(v.quiver_version);
  w.u32(v.format_version);
  w.u32(v.key_format_version);
}
void decode(Reader& r, Metadata& v) {
  decode(r, v.created);
  v.host = r.str();
  v.user = r.str();
  v.wall_time = r.f64();
  v.quiver_version = r.str();
  v.format_version = r.u32();
  v.key_format_version = r.u32();
}

void encode(Writer& w, const Entry& v) {
  encode(w, v.digest);
  encode(w, v.call);
  encode(w, v.result);
  encode(w, v.meta);
}
void decode(Reader& r, Entry& v) {
  decode(r, v.digest);
  decode(r, v.call);
  decode(r, v.result);
  decode(r, v.meta);
}

void encode(Writer& w, const EntrySummary& v) {
  encode(w, v.digest);
  w.str(v.function);
  w.str(v.version);
  encode(w, v.meta);
  w.u64(v.bytes);
  encode(w, v.arg_digests);
}
void decode(Reader& r, EntrySummary& v) {
  decode(r, v.digest);
  v.function = r.str();
  v.version = r.str();
  decode(r, v.meta);
  v.bytes = r.u64();
  decode(r, v.arg_digests);
}

void encode(Writer& w, const Query& v) {
  encode(w, v.function);
  encode(w, v.args);
  encode(w, v.created_after);
  encode(w, v.created_before);
  encode(w, v.host);
  std::optional<std::uint64_t> limit;
  if (v.limit) limit = *v.limit;
  encode(w, limit);
}
void decode(Reader& r, Query& v) {
  decode(r, v.function);
  decode(r, v.args);
  decode(r, v.created_after);
  decode(r, v.created_before);
  decode(r, v.host);
  std::optional<std::uint64_t> limit;
  decode(r, limit);
  if (limit)
    v.limit = static_cast<std::size_t>(*limit);
  else
    v.limit.reset();
}

void encode(Writer& w, const WireLimits& v) {
  w.u32(v.max_frame);
  w.u64(v.max_skeleton);
  w.u64(v.max_bulk);
}
void decode(Reader& r, WireLimits& v) {
  auto at = r.offset();
  v.max_frame = r.u32();
  if (v.max_frame < kMinFrameLimit)
    r.fail_at(at, "maximum frame size " + std::to_string(v.max_frame) +
                      " is below the minimum of " + std::to_string(kMinFrameLimit));
  v.max_skeleton = r.u64();
  v.max_bulk = r.u64();
}

void encode(Writer& w, const nlohmann::json& v) {
  w.str(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}
void decode(Reader& r, nlohmann::json& v) {
  auto at = r.offset();
  auto text = r.str();
  v = nlohmann::json::parse(text, nullptr, false);
  if (v.is_discarded()) r.fail_at(at, "malformed JSON text " + printable(text));
}

}  // namespace quiver::wire
