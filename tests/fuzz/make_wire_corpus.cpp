// Writes the seed corpus of the wire fuzzer: valid streams built from sample messages.
//   make_wire_corpus DIR
// Files are named seed-*; the corpus driver requires each to decode without error.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <quiver/core/fd.hpp>
#include <quiver/wire/protocol.hpp>
#include <string>

#include "fuzz/wire_samples.hpp"

namespace {

using namespace quiver;
using namespace quiver::wire;

// Writes path: prefix, then what write() sends through a FrameWriter with peer limits.
void write_seed(const std::filesystem::path& path, std::string_view prefix, WireLimits peer,
                const std::function<void(FrameWriter&)>& write) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) throw std::runtime_error("cannot create " + path.string());
  if (::write(fd.get(), prefix.data(), prefix.size()) != static_cast<ssize_t>(prefix.size()))
    throw std::runtime_error("cannot write " + path.string());
  FrameWriter w(fd.get(), peer);
  write(w);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  WireLimits peer;  // what the fuzz target accepts
  peer.max_frame = kMinFrameLimit;
  peer.max_skeleton = 1 << 20;
  peer.max_bulk = 1 << 20;

  auto samples = quiver::testing::sample_messages();
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto name = "seed-" + std::string(message_type_name(type_of(samples[i]))) + ".bin";
    write_seed(dir / name, {}, peer, [&](FrameWriter& w) { send_message(w, i + 1, samples[i]); });
  }

  write_seed(dir / "seed-server-stream.bin", "GWelcome!\nmodule: loading hdf5\n", peer,
             [&](FrameWriter& w) {
               send_message(w, 0, Greeting{});
               send_message(w, 1, HelloReply{"shared", false});
               send_message(w, 2, LoadValueReply{quiver::testing::sample_value_of_every_kind()});
               send_message(w, 3, ErrorReply::from(NotFound("no entry", "quiver::MemoryCache")));
               send_message(w, 4, QueryPage{{quiver::testing::sample_summary(1)}, false});
               send_message(w, 4, QueryPage{{}, true});
             });

  write_seed(dir / "seed-client-stream.bin", {}, peer, [&](FrameWriter& w) {
    send_message(w, 1, Hello{});
    send_message(w, 2, Ping{});
    send_message(w, 3, ContainsManyRequest{{quiver::testing::sample_entry(1, Value()).digest}});
    send_message(w, 4,
                 SaveRequest{quiver::testing::sample_entry(2, quiver::testing::ramp(64, 1.0))});
  });

  auto small_frames = peer;
  small_frames.max_frame = 128;
  write_seed(dir / "seed-chunked.bin", {}, small_frames, [&](FrameWriter& w) {
    send_message(
        w, 7,
        LoadValueReply{Value::map({{"a", quiver::testing::ramp(300)},
                                   {"b", Bytes{Buffer::copy_of(std::string(500, 'z'))}}})});
    send_message(w, 8, Pong{});
  });

  std::printf("wrote %zu seeds to %s\n", samples.size() + 3, dir.c_str());
  return 0;
}
