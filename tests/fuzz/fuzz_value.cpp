// libFuzzer target of the Value codec: arbitrary bytes decoded as one Value body (preamble,
// skeleton, bulk) with bounded limits. A Value that decodes must encode to the same bytes
// and decode again to an equal encoding.
#include <cstdio>
#include <cstdlib>
#include <quiver/core/errors.hpp>
#include <quiver/wire/codec.hpp>

#include "fuzz_target.hpp"

namespace quiver::fuzz {

namespace {

wire::WireLimits fuzz_limits() {
  wire::WireLimits limits;
  limits.max_frame = wire::kMinFrameLimit;
  limits.max_skeleton = 1 << 20;
  limits.max_bulk = 1 << 20;
  return limits;
}

Value decode_value(std::span<const std::byte> body) {
  Value v;
  wire::read_flat_body(body, fuzz_limits(), [&](wire::Reader& r) { decode(r, v); });
  return v;
}

std::string encode_value(const Value& v) {
  wire::Writer w;
  encode(w, v);
  return w.flatten();
}

}  // namespace

bool run_input(const std::uint8_t* data, std::size_t size) {
  Value v;
  try {
    v = decode_value(std::as_bytes(std::span(data, size)));
  } catch (const ProtocolError&) {
    return false;
  }
  std::string again;
  try {
    auto body = encode_value(v);
    again = encode_value(decode_value(std::as_bytes(std::span(body.data(), body.size()))));
    if (again == body) return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "a decoded value does not round-trip: %s\n", e.what());
    std::abort();
  }
  std::fprintf(stderr, "a decoded value encodes differently after a round trip\n");
  std::abort();
}

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  quiver::fuzz::run_input(data, size);
  return 0;
}
