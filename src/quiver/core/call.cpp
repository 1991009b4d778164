#include <pwd.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <ctime>
#include <quiver/core/call.hpp>
#include <quiver/core/version.hpp>

namespace quiver {

namespace {

static_assert(std::endian::native == std::endian::little ||
              std::endian::native == std::endian::big);

// Canonical encoder over any byte sink: see docs/digest.md for the format.
template <class Sink>
class Encoder {
 public:
  explicit Encoder(Sink& sink) : sink_(sink) {}

  void raw(const void* p, std::size_t n) { sink_(p, n); }
  void u8(std::uint8_t v) { raw(&v, 1); }
  void u32(std::uint32_t v) {
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
    raw(&v, 4);
  }
  void u64(std::uint64_t v) {
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    raw(&v, 8);
  }
  void str(std::string_view s) {
    u64(s.size());
    raw(s.data(), s.size());
  }

  void value(const Value& v) {
    u8(static_cast<std::uint8_t>(v.kind()));
    switch (v.kind()) {
      case Kind::null:
        break;
      case Kind::boolean:
        u8(v.as_bool() ? 1 : 0);
        break;
      case Kind::integer:
        u64(static_cast<std::uint64_t>(v.as_int()));
        break;
      case Kind::floating: {
        double d = v.as_double();
        std::uint64_t bits = d != d ? 0x7ff8000000000000ULL : std::bit_cast<std::uint64_t>(d);
        u64(bits);
        break;
      }
      case Kind::string:
        str(v.as_string());
        break;
      case Kind::bytes:
        str(v.as_bytes().data.view());
        break;
      case Kind::array:
        array(v.as_array());
        break;
      case Kind::list:
        u64(v.as_list().size());
        for (const auto& item : v.as_list()) value(item);
        break;
      case Kind::map:
        map(v.as_map());
        break;
      case Kind::object: {
        const auto& o = v.as_object();
        str(o.type_name);
        str(o.archive);
        str(o.blob.view());
        break;
      }
    }
  }

  void map(const Value::Map& m) {
    u64(m.size());
    for (const auto& [k, item] : m) {  // std::map orders keys bytewise
      str(k);
      value(item);
    }
  }

  void array(const Array& a) {
    u8(static_cast<std::uint8_t>(a.dtype()));
    u64(a.rank());
    for (auto d : a.shape()) u64(d);
    u64(a.nbytes());
    if constexpr (std::endian::native == std::endian::little) {
      raw(a.buffer().data(), a.nbytes());
    } else {
      swapped(a);
    }
  }

 private:
  void swapped(const Array& a) {
    auto comp = dtype_component_size(a.dtype());
    const auto* p = a.buffer().data();
    std::byte tmp[8];
    for (std::uint64_t i = 0; i < a.nbytes(); i += comp) {
      for (std::size_t j = 0; j < comp; ++j) tmp[j] = p[i + comp - 1 - j];
      raw(tmp, comp);
    }
  }

  Sink& sink_;
};

constexpr char kKeyMagic[] = "QVRKEY";

template <class Sink>
void encode_call(const Call& call, Sink& sink) {
  if (call.function.empty())
    throw InvalidArgument("a call needs a non-empty function name", "quiver::Call");
  Encoder<Sink> e(sink);
  e.raw(kKeyMagic, 6);
  e.u32(kKeyFormatVersion);
  e.str(call.function);
  e.str(call.version);
  e.map(call.args);
}

struct HashSink {
  Sha256 sha;
  void operator()(const void* p, std::size_t n) { sha.update(p, n); }
};
struct StringSink {
  std::string out;
  void operator()(const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); }
};

}  // namespace

Digest Call::digest() const {
  HashSink sink;
  encode_call(*this, sink);
  return sink.sha.finish();
}

std::string canonical_bytes(const Call& call) {
  StringSink sink;
  encode_call(call, sink);
  return std::move(sink.out);
}

Digest value_digest(const Value& value) {
  HashSink sink;
  Encoder<HashSink>(sink).value(value);
  return sink.sha.finish();
}

const std::string& this_host() {
  static const std::string host = [] {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0) return std::string("unknown");
    return std::string(buf);
  }();
  return host;
}

const std::string& this_user() {
  static const std::string user = [] {
    if (const char* u = std::getenv("USER"); u && *u) return std::string(u);
    if (const passwd* pw = getpwuid(geteuid())) return std::string(pw->pw_name);
    return std::to_string(geteuid());
  }();
  return user;
}

std::int64_t to_unix_ns(Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point from_unix_ns(std::int64_t ns) noexcept {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

std::string format_time(Clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", frac);
  return buf;
}

Metadata Metadata::now(double wall_time_seconds) {
  Metadata m;
  m.created = Clock::now();
  m.host = this_host();
  m.user = this_user();
  m.wall_time = wall_time_seconds;
  m.quiver_version = kVersion;
  m.format_version = kEntryFormatVersion;
  m.key_format_version = kKeyFormatVersion;
  return m;
}

Entry Entry::make(Call call, Value result, double wall_time_seconds) {
  Entry e;
  e.digest = call.digest();
  e.call = std::move(call);
  e.result = std::move(result);
  e.meta = Metadata::now(wall_time_seconds);
  return e;
}

}  // namespace quiver
