// The wire fuzz target's entry points, shared by libFuzzer and the corpus driver.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quiver::fuzz {

/// Reads data as a stream: a server's (noise, greeting, replies) when it starts with 'G',
/// else a sequence of messages. Every decoded message is re-encoded and decoded again.
/// True when the stream was valid to its end; aborts when the codec contradicts itself.
bool read_wire_stream(const std::uint8_t* data, std::size_t size);

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
