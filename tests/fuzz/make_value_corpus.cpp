// Writes the seed corpus of the Value codec fuzzer: bodies of sample values.
//   make_value_corpus DIR
// Files are named seed-*; the corpus driver requires each to decode and round-trip.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <quiver/wire/codec.hpp>
#include <string>
#include <utility>
#include <vector>

#include "testing/testing.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  using namespace quiver;
  std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  const std::vector<std::pair<std::string, Value>> samples{
      {"every-kind", quiver::testing::sample_value_of_every_kind()},
      {"null", Value()},
      {"int", Value(std::int64_t{-42})},
      {"string", Value("hello")},
      {"ramp", Value(quiver::testing::ramp(16, 0.5))},
      {"list", Value::list({1, "two", Value::list({3.0, Value()})})},
      {"map", Value::map({{"a", 1}, {"b", Value::map({{"c", true}})}})},
  };
  for (const auto& [name, value] : samples) {
    wire::Writer w;
    encode(w, value);
    std::ofstream(dir / ("seed-" + name + ".bin"), std::ios::binary) << w.flatten();
  }
  std::printf("wrote %zu seeds to %s\n", samples.size(), dir.c_str());
  return 0;
}
