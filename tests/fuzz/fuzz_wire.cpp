// libFuzzer target of the wire layer: the frame reader over a memory buffer and the message
// decoder, with the limits a receiver would configure.
#include <cstdio>
#include <cstdlib>
#include <quiver/wire/protocol.hpp>

#include "fuzz_target.hpp"

namespace quiver::fuzz {

namespace {

constexpr std::size_t kMaxNoise = 4096;

wire::WireLimits fuzz_limits() {
  wire::WireLimits limits;
  limits.max_frame = wire::kMinFrameLimit;
  limits.max_skeleton = 1 << 20;
  limits.max_bulk = 1 << 20;
  return limits;
}

// A message that decoded must encode, and its encoding must decode.
void check_round_trip(const wire::Incoming& in, const wire::WireLimits& limits) {
  try {
    auto body = wire::encode_body(in.message);
    wire::decode_body(in.type(), std::as_bytes(std::span(body.data(), body.size())), limits);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "a decoded %s message does not round-trip: %s\n",
                 std::string(wire::message_type_name(in.type())).c_str(), e.what());
    std::abort();
  }
}

}  // namespace

// Reads data as a stream: a server's (noise, greeting, replies) when it starts with 'G',
// else a sequence of messages. Every decoded message is re-encoded and decoded again.
bool run_input(const std::uint8_t* data, std::size_t size) {
  bool server_stream = size > 0 && data[0] == 'G';
  auto bytes = std::as_bytes(std::span(data, size));
  if (server_stream) bytes = bytes.subspan(1);
  auto limits = fuzz_limits();
  wire::FrameReader reader(bytes, limits);
  bool valid = true;
  try {
    if (server_stream) wire::receive_greeting(reader, kMaxNoise);
    for (;;) {
      try {
        auto in = wire::receive_message(reader);
        if (!in) break;
        check_round_trip(*in, limits);
      } catch (const wire::MalformedMessage&) {
        valid = false;  // skipped; the stream goes on
      }
    }
  } catch (const Error&) {
    valid = false;
  }
  return valid;
}

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  quiver::fuzz::run_input(data, size);
  return 0;
}
