// The interface every fuzz target implements, shared by libFuzzer and the corpus driver
// (fuzz_driver.cpp), which replays a corpus in builds without libFuzzer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quiver::fuzz {

/// Runs one input through the target; true when the input was valid to its end (seed-*
/// corpus files must be). Aborts when the code under test contradicts itself.
bool run_input(const std::uint8_t* data, std::size_t size);

}  // namespace quiver::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
