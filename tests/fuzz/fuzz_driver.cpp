// Runs every file of the given corpus directories through a fuzz target, for builds
// without libFuzzer. Files named seed-* must be valid input (they are what the seed
// generators write); others (regress-*, fuzzer finds) must merely not crash.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_target.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
    return 2;
  }
  int files = 0;
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::filesystem::path> paths;
    for (const auto& e : std::filesystem::directory_iterator(argv[i]))
      if (e.is_regular_file()) paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    for (const auto& path : paths) {
      std::ifstream in(path, std::ios::binary);
      std::vector<char> bytes(std::istreambuf_iterator<char>(in), {});
      const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
      LLVMFuzzerTestOneInput(data, bytes.size());
      ++files;
      bool seed = path.filename().string().rfind("seed-", 0) == 0;
      if (seed && !quiver::fuzz::run_input(data, bytes.size())) {
        std::fprintf(stderr, "seed %s is not valid input\n", path.c_str());
        ++failures;
      }
    }
  }
  std::printf("%d corpus files run, %d invalid seeds\n", files, failures);
  if (files == 0) {
    std::fprintf(stderr, "no corpus files found\n");
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
