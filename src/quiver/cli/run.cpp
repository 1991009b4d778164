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
#include <filesystem>
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
/// it is missing (an output the command did not write is caught before, by
/// check_outputs_written), StoreError when it cannot be read.
Buffer read_file(const std::string& path, std::string_view role) {
  auto text = fs::read_all(path);
  if (!text) throw InvalidArgument(std::string(role) + " file does not exist", path);
  return Buffer::copy_of(std::string_view(*text));
}

/// The permission bits of path (0644 when they cannot be read).
std::int64_t file_mode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0644;
  return static_cast<std::int64_t>(st.st_mode & 07777);
}

/// What tells whether a file changed: whether it exists and, if so, its device, inode
/// number, size, and modification and status-change times to the nanosecond.
struct FileState {
  bool exists = false;
  std::uint64_t device = 0, inode = 0;
  std::int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileState&) const = default;
};

/// The state of path now (following symbolic links); a file that cannot be examined counts
/// as missing.
FileState file_state(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  auto ns = [](const timespec& t) { return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return {true,
          static_cast<std::uint64_t>(st.st_dev),
          static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::int64_t>(st.st_size),
          ns(st.st_mtim),
          ns(st.st_ctim)};
}

/// Throws InvalidArgument naming the first output the command did not write: one missing
/// now, or one that existed before it ran (state `before`) and is unchanged in every field
/// of FileState.
void check_outputs_written(const std::vector<std::string>& outputs,
                           const std::vector<FileState>& before) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    FileState now = file_state(outputs[i]);
    if (!now.exists)
      throw InvalidArgument("the command exited 0 but did not write this output; nothing stored",
                            outputs[i]);
    if (before[i].exists && now == before[i])
      throw InvalidArgument(
          "the command exited 0 but this output existed before it ran and was not rewritten "
          "(same inode, size, modification and change times); nothing stored",
          outputs[i]);
  }
}

/// Restores a set of outputs all or nothing as far as the filesystem allows: stage() writes
/// each to a temporary file next to it (creating missing parent directories), commit()
/// renames them all into place. Until commit() succeeds, destruction removes the temporary
/// files not yet renamed and the directories stage() created, when they are empty.
class OutputRestore {
 public:
  OutputRestore() = default;
  OutputRestore(const OutputRestore&) = delete;
  OutputRestore& operator=(const OutputRestore&) = delete;
  ~OutputRestore() {
    for (std::size_t i = renamed_; i < staged_.size(); ++i) ::unlink(staged_[i].temp.c_str());
    if (!committed_)
      for (auto it = created_dirs_.rbegin(); it != created_dirs_.rend(); ++it) ::rmdir(it->c_str());
  }

  /// Writes data with mode to a temporary file beside path; throws StoreError naming path.
  void stage(const std::string& path, const Buffer& data, std::int64_t mode) {
    make_parents(path);
    std::string temp = path + ".quiver-" + this_host() + "-" + std::to_string(::getpid());
    try {
      Fd fd = fs::open_file(temp, O_WRONLY | O_CREAT | O_TRUNC, static_cast<mode_t>(mode));
      staged_.push_back({path, temp});
      fs::write_all(fd.get(), data.view(), temp);
      if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0)
        throw StoreError("cannot set mode: " + fs::error_text(errno), temp);
    } catch (const Error& e) {
      throw StoreError("cannot restore this output: " + e.message(), path);
    }
  }

  /// Renames every staged file into place, in the order staged; throws StoreError naming
  /// the output whose rename failed (the ones before it stay restored).
  void commit() {
    for (; renamed_ < staged_.size(); ++renamed_) {
      const auto& [path, temp] = staged_[renamed_];
      if (::rename(temp.c_str(), path.c_str()) != 0)
        throw StoreError("cannot rename into place: " + fs::error_text(errno), path);
    }
    committed_ = true;
  }

 private:
  struct Staged {
    std::string path, temp;
  };

  /// Creates the missing parent directories of path, as `mkdir -p` would, remembering
  /// them; throws StoreError naming path.
  void make_parents(const std::string& path) {
    std::vector<std::filesystem::path> missing;
    for (auto dir = std::filesystem::path(path).parent_path(); !dir.empty();
         dir = dir.parent_path()) {
      std::error_code ec;
      if (std::filesystem::exists(dir, ec) || dir == dir.parent_path()) break;
      missing.push_back(dir);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (::mkdir(it->c_str(), 0777) == 0) {
        created_dirs_.push_back(it->string());
      } else if (errno != EEXIST) {
        throw StoreError("cannot create directory '" + it->string() + "': " + fs::error_text(errno),
                         path);
      }
    }
  }

  std::vector<Staged> staged_;
  std::vector<std::string> created_dirs_;
  std::size_t renamed_ = 0;
  bool committed_ = false;
};

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
/// Throws InvalidArgument when the command did not write an output (see
/// check_outputs_written; `before` is the state of each output before it ran).
Value result_of(const std::vector<std::string>& outputs, const std::vector<FileState>& before,
                int exit_status) {
  check_outputs_written(outputs, before);
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
  OutputRestore restoring;
  for (const auto& path : outputs) {
    const Value* mode = modes ? modes->find(path) : nullptr;
    restoring.stage(path, files->find(path)->as_bytes().data,
                    mode && mode->kind() == Kind::integer ? mode->as_int() : 0644);
  }
  restoring.commit();
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

  std::vector<FileState> before;
  for (const auto& path : outputs) before.push_back(file_state(path));
  auto start = std::chrono::steady_clock::now();
  int status = run_command_line(inv.operands);
  std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
  if (status != 0) {
    log->info("miss {}: the command exited with {}; nothing stored", digest.hex(), status);
    return status;
  }
  Value result = result_of(outputs, before, status);
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
      "Hit: the --output files are rewritten byte for byte (missing parent directories\n"
      "are created) and quiver exits with the stored exit status (0) without running\n"
      "COMMAND. Every output is written to a temporary file before any is renamed into\n"
      "place, so a failure while writing restores none of them.\n"
      "Miss: COMMAND runs with quiver's stdin, stdout and stderr and quiver exits with\n"
      "its exit status (128+N when signal N ended it, 127 when it cannot be started).\n"
      "Only a command that exits 0 is stored, and only when it wrote every --output: one\n"
      "that existed before and has the same inode, size, modification and change times\n"
      "afterwards was not written, and quiver exits 1 storing nothing.\n"
      "Outputs are held in memory while they are stored or restored.\n"
      "Give the options before '--': everything after it is COMMAND and its arguments.\n"
      "A cache that cannot be read or written is reported on stderr and the command\n"
      "runs as if there were no cache.\n";
  c.run = run;
  return c;
}

}  // namespace quiver::cli
