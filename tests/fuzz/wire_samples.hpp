// Sample protocol messages, one of every type, for the wire round-trip tests and the seed
// corpus of the wire fuzzer. Deterministic: the same bytes on every run.
#pragma once

#include <quiver/wire/protocol.hpp>
#include <string>
#include <vector>

#include "testing/testing.hpp"

namespace quiver::testing {

/// Metadata with every field set to a fixed value.
inline Metadata sample_metadata(int seed) {
  Metadata m;
  m.created = from_unix_ns(1'700'000'000'123'456'789LL + seed);
  m.host = "node" + std::to_string(seed) + ".cluster";
  m.user = "alice";
  m.wall_time = 12.5 + seed;
  m.quiver_version = "0.1.0";
  m.format_version = 1;
  m.key_format_version = 1;
  return m;
}

/// An entry whose call has arguments of several kinds and whose result is result.
inline Entry sample_entry(int seed, Value result) {
  Entry e;
  e.call = Call("solve", "v" + std::to_string(seed));
  e.call.arg("n", seed).arg("tol", 1e-9).arg("grid", Array::from(std::vector<double>{1, 2, 3}));
  e.digest = e.call.digest();
  e.result = std::move(result);
  e.meta = sample_metadata(seed);
  return e;
}

inline EntrySummary sample_summary(int seed) {
  auto s = EntrySummary::of(sample_entry(seed, Value(seed)));
  s.bytes = 4096u + static_cast<unsigned>(seed);
  return s;
}

/// One message of every type in QUIVER_WIRE_MESSAGES, each with its fields set.
inline std::vector<wire::Message> sample_messages() {
  using namespace wire;
  auto every = sample_value_of_every_kind();
  auto digest = sample_entry(1, Value()).digest;
  WireLimits limits{1u << 20, 32u << 20, 8ull << 30};

  Query query;
  query.function = "solve";
  query.args["n"] = 3;
  query.created_after = from_unix_ns(1'600'000'000'000'000'000LL);
  query.created_before = from_unix_ns(1'800'000'000'000'000'000LL);
  query.host = "node1.cluster";
  query.limit = 10;

  nlohmann::json info = {{"cache_name", "shared"},
                         {"read_only", false},
                         {"config", {{"type", "hdf5"}, {"path", "/scratch/cache"}}},
                         {"pid", 4242}};

  std::vector<Message> out;
  out.push_back(Greeting{kProtocolVersion, "0.1.0", {"batch", "query-pages"}, limits});
  out.push_back(ErrorReply{ErrorCode::not_found, "no entry for 'abcd'", "quiver::Hdf5Store"});
  out.push_back(Hello{kProtocolVersion, "0.1.0", {"batch"}, limits});
  out.push_back(HelloReply{"shared", true});
  out.push_back(Ping{});
  out.push_back(Pong{});
  out.push_back(SaveRequest{sample_entry(1, every)});
  out.push_back(SaveReply{});
  out.push_back(LoadRequest{digest});
  out.push_back(LoadReply{sample_entry(2, Value::list({1, "two", 3.0}))});
  out.push_back(LoadValueRequest{digest});
  out.push_back(LoadValueReply{every});
  out.push_back(ContainsRequest{digest});
  out.push_back(ContainsReply{true});
  out.push_back(ExpandRequest{"abcd12"});
  out.push_back(ExpandReply{digest});
  out.push_back(ShrinkRequest{digest});
  out.push_back(ShrinkReply{digest.hex().substr(0, 6)});
  out.push_back(QueryRequest{query, 128});
  out.push_back(QueryPage{{sample_summary(1), sample_summary(2)}, true});
  out.push_back(EvictRequest{digest});
  out.push_back(EvictReply{true});
  out.push_back(InfoRequest{});
  out.push_back(InfoReply{info});
  out.push_back(ContainsManyRequest{{digest, sample_entry(3, Value()).digest}});
  out.push_back(ContainsManyReply{{true, false}});
  out.push_back(LoadManyRequest{{digest, sample_entry(3, Value()).digest}});
  out.push_back(LoadManyReply{{sample_entry(4, Value("hit")), std::nullopt}});
  out.push_back(SaveManyRequest{{sample_entry(5, every), sample_entry(6, Value(2.5))}});
  out.push_back(SaveManyReply{});
  return out;
}

}  // namespace quiver::testing
