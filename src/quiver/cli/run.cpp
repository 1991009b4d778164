// quiver run: memoizes a shell command for batch scripts. The key covers the command line,
// the named arguments and the contents of the input files; a hit restores the output files
// and the exit status without running the command.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/parse.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/log.hpp>
#include <quiver/store/index_fs.hpp>
#include <set>

extern char** environ;

namespace quiver::cli {

namespace {

// Argument names the key reserves for itself; --arg may not use the "run." prefix.
constexpr const char* kCommandKey = "run.command";
constexpr const char* kInputsKey = "run.inputs";
constexpr const char* kOutputsKey = "run.outputs";
constexpr std::string_view kReservedPrefix = "run.";
// Exit status of a command that cannot be started, as in POSIX shells.
constexpr int kExitCannotRun = 127;

/// The bytes of a file the command reads or wrote; throws InvalidArgument naming it when
/// it is missing, StoreError when it cannot be read.
Buffer read_file(const std::string& path, std::string_view role) {
  auto text = fs::read_all(path);
  if (!text && role == "output")
    throw InvalidArgument("the command exited 0 but did not write this output; nothing stored",
                          path);
  if (!text) throw InvalidArgument(std::string(role) + " file does not exist", path);
  return Buffer::copy_of(std::string_view(*text));
}

/// The permission bits of path (0644 when they cannot be read).
std::int64_t file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0644;
  return static_cast<std::int64_t>(st.st_mode & 07777);
}

/// Writes data to path through a temporary file in the same directory and a rename, so
/// that a reader never sees a partly restored output.
void write_file_atomically(const std::string& path, const Buffer& data, std::int64_t mode) {
  std::string temp = path + ".quiver-" + this_host() + "-" + std::to_string(::getpid());
  {
    Fd fd = fs::open_file(temp, O_WRONLY | O_CREAT | O_TRUNC, static_cast<mode_t>(mode));
    try {
      fs::write_all(fd.get(), data.view(), temp);
      if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0)
        throw StoreError("cannot set mode: " + fs::error_text(errno), temp);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    throw StoreError("cannot rename into place: " + fs::error_text(err), path);
  }
}

/// Runs argv with this process's stdin, stdout and stderr; returns its exit code, or
/// 128 + signal when a signal ended it, or 127 when it cannot be started.
int run_command_line(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::cout.flush();
  pid_t pid = -1;
  int err = ::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ);
  if (err != 0) {
    print_error("run: cannot run '" + argv[0] + "': " + fs::error_text(err));
    return kExitCannotRun;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw StoreError("waitpid: " + fs::error_text(errno), argv[0]);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return kExitError;
}

/// The call whose digest keys this command: function, version, the named arguments, the
/// command line, the SHA-256 of each input file's contents and the output paths.
Call key_of(const Invocation& inv, const std::vector<std::string>& inputs,
            const std::vector<std::string>& outputs) {
  auto function = inv.get<std::string>("function").value_or("run");
  if (function.empty()) throw UsageError("--function must not be empty");
  Value::Map args = parse_assignments(inv.all("arg"), "--arg");
  for (const auto& [name, value] : args)
    if (name.starts_with(kReservedPrefix))
      throw UsageError("--arg: names starting with '" + std::string(kReservedPrefix) +
                       "' are reserved ('" + name + "')");
  Value::Map input_digests;
  for (const auto& path : inputs) {
    Sha256 sha;
    sha.update(read_file(path, "input").span());
    input_digests.insert_or_assign(path, Value(sha.finish().hex()));
  }
  args.emplace(kCommandKey, Value(inv.operands));
  args.emplace(kInputsKey, Value(std::move(input_digests)));
  args.emplace(kOutputsKey, Value(outputs));
  return Call(std::move(function), inv.get<std::string>("version").value_or(""), std::move(args));
}

/// The stored form: {"exit_status": 0, "outputs": {path: bytes}, "modes": {path: int}}.
Value result_of(const std::vector<std::string>& outputs, int exit_status) {
  Value::Map files, modes;
  for (const auto& path : outputs) {
    files.insert_or_assign(path, Value(Bytes{read_file(path, "output")}));
    modes.insert_or_assign(path, Value(file_mode(path)));
  }
  return Value::map({{"exit_status", Value(std::int64_t{exit_status})},
                     {"outputs", Value(std::move(files))},
                     {"modes", Value(std::move(modes))}});
}

/// Restores the outputs of a stored result; returns its exit status, or nullopt when the
/// entry does not have the form result_of() writes (then it is treated as a miss).
std::optional<int> restore(const Value& result, const std::vector<std::string>& outputs) {
  const Value* status = result.find("exit_status");
  const Value* files = result.find("outputs");
  const Value* modes = result.find("modes");
  if (!status || status->kind() != Kind::integer || !files || files->kind() != Kind::map) {
    return std::nullopt;
  }
  for (const auto& path : outputs) {
    const Value* data = files->find(path);
    if (!data || data->kind() != Kind::bytes) return std::nullopt;
  }
  for (const auto& path : outputs) {
    const Value* mode = modes ? modes->find(path) : nullptr;
    write_file_atomically(path, files->find(path)->as_bytes().data,
                          mode && mode->kind() == Kind::integer ? mode->as_int() : 0644);
  }
  return static_cast<int>(status->as_int());
}

int run(const Invocation& inv) {
  auto log = logger("quiver.run");
  auto inputs = inv.all("input");
  auto outputs = inv.all("output");
  if (outputs.empty()) throw UsageError("give at least one --output FILE");
  if (std::set<std::string>(outputs.begin(), outputs.end()).size() != outputs.size())
    throw UsageError("--output: a file is named twice");
  Call call = key_of(inv, inputs, outputs);
  Digest digest = call.digest();
  auto cache = inv.open_cache();

  std::optional<Value> stored;
  try {
    stored = cache->load_value(digest);
  } catch (const Error& e) {
    log->warn("cannot look up {} in the cache, running the command: {}", digest.hex(), e.what());
  }
  if (stored) {
    if (auto status = restore(*stored, outputs)) {
      log->info("hit {}: restored {} output file(s) without running", digest.hex(), outputs.size());
      return *status;
    }
    log->warn("entry {} is not a 'quiver run' result; running the command", digest.hex());
  }

  auto start = std::chrono::steady_clock::now();
  int status = run_command_line(inv.operands);
  std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
  if (status != 0) {
    log->info("miss {}: the command exited with {}; nothing stored", digest.hex(), status);
    return status;
  }
  Value result = result_of(outputs, status);
  if (cache->read_only()) {
    log->warn("the cache is read-only; the outputs of {} are not stored", digest.hex());
    return status;
  }
  try {
    cache->save(Entry{digest, std::move(call), std::move(result), Metadata::now(wall.count())});
    log->info("miss {}: ran the command and stored {} output file(s)", digest.hex(),
              outputs.size());
  } catch (const Error& e) {
    log->warn("cannot store {} in the cache: {}", digest.hex(), e.what());
  }
  return status;
}

}  // namespace

Command run_command() {
  Command c;
  c.name = "run";
  c.operands = "-- COMMAND [ARG...]";
  c.min_operands = 1;
  c.max_operands = kAnyNumber;
  c.summary = "run a command unless its outputs are cached; restore them on a hit";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("function", po::value<std::string>()->value_name("F"),
       "function name of the call (default: run)")
      ("version", po::value<std::string>()->value_name("V"),
       "version string of the call (default: empty); change it to invalidate old results")
      ("arg", po::value<std::vector<std::string>>()->value_name("KEY=VALUE")->composing(),
       "a named argument of the call, as for 'quiver put'; repeat for more")
      ("input", po::value<std::vector<std::string>>()->value_name("FILE")->composing(),
       "a file the command reads: its contents are part of the key; repeat for more")
      ("output", po::value<std::vector<std::string>>()->value_name("FILE")->composing(),
       "a file the command writes: stored on success, restored on a hit; repeat for more");
    // clang-format on
  };
  c.details =
      "The key is the digest of the function, the version, the --arg values, the command\n"
      "line, the SHA-256 of each --input file's contents and the --output paths.\n"
      "Hit: the --output files are rewritten byte for byte and quiver exits with the\n"
      "stored exit status (0) without running COMMAND.\n"
      "Miss: COMMAND runs with quiver's stdin, stdout and stderr and quiver exits with\n"
      "its exit status (128+N when signal N ended it, 127 when it cannot be started).\n"
      "Only a command that exits 0 is stored. Put '--' before COMMAND.\n"
      "A cache that cannot be read or written is reported on stderr and the command\n"
      "runs as if there were no cache.\n";
  c.run = run;
  return c;
}

}  // namespace quiver::cli
