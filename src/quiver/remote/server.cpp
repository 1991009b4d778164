#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/core/redact.hpp>
#include <quiver/core/version.hpp>
#include <quiver/remote/server.hpp>
#include <quiver/wire/protocol.hpp>

namespace quiver {

namespace {

Fd dup_private(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0)
    throw RemoteConnectionError(std::string("dup failed: ") + strerror(errno), "quiver serve");
  return Fd(d);
}

std::string executable_path() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

// Dispatches one request to the cache: an explicit list, no reflection.
class Dispatcher {
 public:
  Dispatcher(Cache& cache, const ServeOptions& options, wire::FrameWriter& out)
      : cache_(cache), options_(options), out_(out) {}

  void handle(wire::Incoming& in) {
    const auto id = in.request_id;
    try {
      std::visit([&](auto& m) { on(id, m); }, in.message);
    } catch (const std::exception& e) {
      log_->debug("request {} ({}) failed: {}", id, wire::message_type_name(in.type()), e.what());
      reply(id, wire::ErrorReply::from(e));
    }
  }

 private:
  void reply(std::uint64_t id, const wire::Message& m) { wire::send_message(out_, id, m); }

  void on(std::uint64_t id, wire::Hello& m) {
    if (m.protocol_version != wire::kProtocolVersion)
      throw ProtocolError("client speaks protocol " + std::to_string(m.protocol_version) +
                              ", server speaks " + std::to_string(wire::kProtocolVersion),
                          "quiver serve");
    if (m.quiver_version != kVersion)
      log_->info("client runs quiver {}, server {}", m.quiver_version, kVersion);
    out_.set_limits(m.limits);
    reply(id, wire::HelloReply{options_.cache_name, cache_.read_only()});
  }
  void on(std::uint64_t id, wire::Ping&) { reply(id, wire::Pong{}); }
  void on(std::uint64_t id, wire::SaveRequest& m) {
    cache_.save(m.entry);
    reply(id, wire::SaveReply{});
  }
  void on(std::uint64_t id, wire::LoadRequest& m) {
    reply(id, wire::LoadReply{cache_.load(m.digest)});
  }
  void on(std::uint64_t id, wire::LoadValueRequest& m) {
    reply(id, wire::LoadValueReply{cache_.load_value(m.digest)});
  }
  void on(std::uint64_t id, wire::ContainsRequest& m) {
    reply(id, wire::ContainsReply{cache_.contains(m.digest)});
  }
  void on(std::uint64_t id, wire::ExpandRequest& m) {
    reply(id, wire::ExpandReply{cache_.expand(m.prefix)});
  }
  void on(std::uint64_t id, wire::ShrinkRequest& m) {
    reply(id, wire::ShrinkReply{cache_.shrink(m.digest)});
  }
  void on(std::uint64_t id, wire::QueryRequest& m) {
    wire::QueryPager pager(out_, id, m.page_size);
    cache_.query(m.query, pager.sink());
    pager.finish();
  }
  void on(std::uint64_t id, wire::EvictRequest& m) {
    reply(id, wire::EvictReply{cache_.evict(m.digest)});
  }
  void on(std::uint64_t id, wire::InfoRequest&) {
    reply(id, wire::InfoReply{server_info(cache_, options_)});
  }
  void on(std::uint64_t id, wire::ContainsManyRequest& m) {
    reply(id, wire::ContainsManyReply{cache_.contains_many(m.digests)});
  }
  void on(std::uint64_t id, wire::LoadManyRequest& m) {
    reply(id, wire::LoadManyReply{cache_.load_many(m.digests)});
  }
  void on(std::uint64_t id, wire::SaveManyRequest& m) {
    cache_.save_many(m.entries);
    reply(id, wire::SaveManyReply{});
  }
  // Replies, greetings and errors are never requests.
  template <class M>
  void on(std::uint64_t, M& /*message*/) {
    if constexpr (std::is_same_v<M, std::monostate>) {
      throw ProtocolError("empty message", "quiver serve");
    } else {
      throw ProtocolError(
          std::string(wire::message_type_name(M::type)) + " is not a request a client may send",
          "quiver serve");
    }
  }

  Cache& cache_;
  const ServeOptions& options_;
  wire::FrameWriter& out_;
  std::shared_ptr<spdlog::logger> log_ = logger("quiver.server");
};

// Requests answered from an index lookup, without reading or writing values: their replies
// may wait in the writer's buffer while the next request is handled.
bool answered_at_once(wire::MessageType t) {
  using T = wire::MessageType;
  return t == T::ping || t == T::contains || t == T::contains_many || t == T::expand ||
         t == T::shrink || t == T::hello;
}

}  // namespace

ProtocolStream protect_stdio() {
  ProtocolStream s{dup_private(0), dup_private(1)};
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::close(null);
  }
  ::dup2(2, 1);
  return s;
}

nlohmann::json server_info(Cache& cache, const ServeOptions& options) {
  char cwd[PATH_MAX] = {};
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
  nlohmann::json j;
  j["cache_name"] = options.cache_name;
  j["read_only"] = cache.read_only();
  j["config"] = redact(cache.config());
  j["cache"] = redact(cache.info());
  j["quiver_version"] = kVersion;
  j["protocol_version"] = wire::kProtocolVersion;
  j["cwd"] = cwd;
  j["hostname"] = this_host();
  j["pid"] = static_cast<std::int64_t>(getpid());
  j["executable"] = executable_path();
  return j;
}

int serve(Cache& cache, int in, int out, const ServeOptions& options) {
  auto log = logger("quiver.server");
  wire::SigpipeHold sigpipe;  // for the whole loop, not around each reply
  wire::FrameReader reader(in, options.limits);
  wire::FrameWriter writer(out);
  try {
    wire::Greeting greeting;
    greeting.limits = options.limits;
    wire::send_message(writer, 0, greeting);
    Dispatcher dispatcher(cache, options, writer);
    // Replies are gathered while more requests wait in the read buffer (a pipelining client
    // sent them together), and leave together, in one write, before the server waits for
    // input or starts a request that may take long.
    writer.set_gather(true);
    for (;;) {
      if (!reader.has_buffered()) writer.flush();
      std::optional<wire::Incoming> msg;
      try {
        msg = wire::receive_message(reader);
      } catch (const wire::MalformedMessage& e) {
        log->warn("malformed request {}: {}", e.request_id(), e.what());
        wire::send_message(writer, e.request_id(), wire::ErrorReply::from(e));
        continue;
      }
      if (!msg) break;
      if (!answered_at_once(msg->type())) writer.flush();
      dispatcher.handle(*msg);
    }
    writer.flush();
  } catch (const std::exception& e) {
    log->error("stream broken: {}", e.what());
    return 1;
  }
  log->debug("end of input: exiting");
  return 0;
}

}  // namespace quiver
