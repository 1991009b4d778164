#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <quiver/core/errors.hpp>
#include <quiver/remote/process.hpp>
#include <thread>

extern char** environ;

namespace quiver {

namespace {

ExitStatus decode(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

struct PipePair {
  Fd read, write;
};

PipePair make_pipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw RemoteConnectionError(std::string("cannot create pipe: ") + strerror(errno),
                                "quiver::Process");
  return {Fd(fds[0]), Fd(fds[1])};
}

// A one-way channel as a connected pair of stream sockets: the child gets one end, we keep
// the other. The child's end is shut down in the direction it does not use, so that it
// behaves like a pipe end (a write on a read end fails).
PipePair make_socket_pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw RemoteConnectionError(std::string("cannot create socket pair: ") + strerror(errno),
                                "quiver::Process");
  ::shutdown(fds[0], SHUT_WR);  // fds[0] is the read end
  ::shutdown(fds[1], SHUT_RD);
  return {Fd(fds[0]), Fd(fds[1])};
}

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
};

}  // namespace

std::string ExitStatus::describe() const {
  if (signal) return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  if (code >= 0) return "exit status " + std::to_string(code);
  return "unknown status";
}

Process Process::spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       bool own_group, Stdio stdio) {
  if (argv.empty()) throw InvalidArgument("empty command", "quiver::Process");
  const bool sockets = stdio == Stdio::sockets;
  auto in = sockets ? make_socket_pair() : make_pipe();
  auto out = sockets ? make_socket_pair() : make_pipe();
  auto err = make_pipe();
  FileActions fa;
  posix_spawn_file_actions_adddup2(&fa.fa, in.read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa.fa, out.write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa.fa, err.write.get(), 2);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.emplace_back(*e);
  for (const auto& e : env) {
    auto key = e.substr(0, e.find('=') + 1);
    std::erase_if(envs, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
    envs.push_back(e);
  }
  std::vector<char*> envp;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);

  // Children must not inherit SIGPIPE/SIGINT dispositions we may have changed.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &def);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  if (own_group) {
    posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attr, flags);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa.fa, &attr, args.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    throw RemoteConnectionError("cannot start '" + argv[0] + "': " + strerror(rc),
                                "quiver::Process");
  Process p;
  p.pid_ = pid;
  p.in_ = std::move(in.write);
  p.out_ = std::move(out.read);
  p.err_ = std::move(err.read);
  p.own_group_ = own_group;
  return p;
}

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      in_(std::move(o.in_)),
      out_(std::move(o.out_)),
      err_(std::move(o.err_)),
      status_(std::move(o.status_)),
      own_group_(o.own_group_) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    close();
    pid_ = std::exchange(o.pid_, -1);
    in_ = std::move(o.in_);
    out_ = std::move(o.out_);
    err_ = std::move(o.err_);
    status_ = std::move(o.status_);
    own_group_ = o.own_group_;
  }
  return *this;
}

Process::~Process() {
  close();
}

std::optional<ExitStatus> Process::poll() {
  if (status_ || pid_ <= 0) return status_;
  siginfo_t info{};
  int r;
  do {
    r = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    status_ = ExitStatus{};  // not our child any more (reaped elsewhere)
    return status_;
  }
  if (info.si_pid != pid_) return std::nullopt;  // still running
  // Ended. While it is an unreaped zombie its id cannot be reused, so killing its group
  // reaches only what it left behind (background children holding our pipes).
  if (own_group_) ::kill(-pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = decode(status);
  return status_;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto step = std::chrono::microseconds(200);
  while (!poll()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(step);
    step = std::min<std::chrono::microseconds>(step * 2, std::chrono::milliseconds(20));
  }
  return status_;
}

void Process::kill(int sig) noexcept {
  if (pid_ > 0 && !poll()) ::kill(pid_, sig);
}

ExitStatus Process::close(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_.value_or(ExitStatus{});
  in_.reset();
  kill(SIGCONT);  // a stopped process cannot see the end of its input
  if (!wait_for(grace)) {
    ::kill(pid_, SIGTERM);
    if (!wait_for(grace)) {
      ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      status_ = decode(status);
    }
  }
  out_.reset();
  err_.reset();
  return *status_;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() &&
      s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "@%+=:,./_-") == std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += shell_quote(a);
  }
  return out;
}

}  // namespace quiver
