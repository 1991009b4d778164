// A program outside the quiver tree: it memoizes a computation in an HDF5 store whose
// root is argv[1], using only the installed headers and library. Run twice on the same
// root, it prints "miss" then "hit", each with the same digest and result.
#include <cstdio>
#include <quiver/quiver.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer STORE_DIR\n");
    return 2;
  }
  quiver::Hdf5StoreOptions options;
  options.root = argv[1];
  quiver::Hdf5Store store(options);
  quiver::Call call("consumer.square", "1");
  call.arg("x", 12);
  auto memo = store.memoize(call, [] { return quiver::Value(std::int64_t{144}); });
  std::printf("quiver %s %s %s %lld\n", quiver::kVersion, memo.hit ? "hit" : "miss",
              memo.digest.hex().c_str(), static_cast<long long>(memo.value.as_int()));
  return 0;
}
