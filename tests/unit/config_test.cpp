#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <quiver/config/config.hpp>
#include <quiver/config/open.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

namespace fs = std::filesystem;

/// Sets environment variables for one test and restores them afterwards.
class EnvGuard {
 public:
  EnvGuard() = default;
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  ~EnvGuard() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        ::unsetenv(it->first.c_str());
    }
  }
  void set(const std::string& name, const std::string& value) {
    save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  void unset(const std::string& name) {
    save(name);
    ::unsetenv(name.c_str());
  }

 private:
  void save(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// Changes the working directory for one test and restores it afterwards.
class CwdGuard {
 public:
  CwdGuard() : saved_(fs::current_path()) {}
  CwdGuard(const CwdGuard&) = delete;
  CwdGuard& operator=(const CwdGuard&) = delete;
  ~CwdGuard() {
    std::error_code ec;
    fs::current_path(saved_, ec);
  }
  void enter(const fs::path& dir) {
    fs::create_directories(dir);
    fs::current_path(dir);
  }

 private:
  fs::path saved_;
};

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

/// Every test runs in an empty temporary world: its own working directory, HOME and XDG
/// directories, and no $QUIVER_CONFIG.
class Config : public ::testing::Test {
 protected:
  void SetUp() override {
    env.unset("QUIVER_CONFIG");
    env.set("HOME", (tmp / "home").string());
    env.set("XDG_CONFIG_HOME", (tmp / "xdg-config").string());
    env.set("XDG_CACHE_HOME", (tmp / "xdg-cache").string());
    cwd.enter(tmp / "work");
  }

  /// Writes text as a quiver.toml at path and resolves the cache name (or the default).
  ResolvedConfig resolve_file(const std::string& text, std::optional<std::string> name = {}) {
    write(file(), text);
    return resolve_config(OpenOptions{file(), std::move(name)});
  }
  /// The ConfigError message of resolving text, or a failure.
  std::string error_of(const std::string& text, std::optional<std::string> name = {}) {
    try {
      resolve_file(text, std::move(name));
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError for:\n" << text;
    return {};
  }
  fs::path file() const { return tmp / "conf" / "quiver.toml"; }
  std::string at(int line) const { return file().string() + ":" + std::to_string(line) + ": "; }

  testing::TempDir tmp{"quiver-config-test"};
  EnvGuard env;
  CwdGuard cwd;
};

// --- search order -----------------------------------------------------------------------

TEST_F(Config, QuiverConfigVariableComesFirst) {
  write(tmp / "work" / "quiver.toml", "");
  write(tmp / "xdg-config" / "quiver" / "quiver.toml", "");
  write(tmp / "chosen.toml", "");
  env.set("QUIVER_CONFIG", (tmp / "chosen.toml").string());
  EXPECT_EQ(find_config_file(), tmp / "chosen.toml");
}

TEST_F(Config, WorkingDirectoryIsSearchedUpwardToTheNearestFile) {
  write(tmp / "quiver.toml", "");
  write(tmp / "work" / "a" / "quiver.toml", "");
  cwd.enter(tmp / "work" / "a" / "b" / "c");
  EXPECT_EQ(find_config_file(), tmp / "work" / "a" / "quiver.toml");
}

TEST_F(Config, WorkingDirectoryComesBeforeXdgConfigHome) {
  write(tmp / "work" / "quiver.toml", "");
  write(tmp / "xdg-config" / "quiver" / "quiver.toml", "");
  EXPECT_EQ(find_config_file(), tmp / "work" / "quiver.toml");
}

TEST_F(Config, XdgConfigHomeIsTheLastPlace) {
  write(tmp / "xdg-config" / "quiver" / "quiver.toml", "");
  EXPECT_EQ(find_config_file(), tmp / "xdg-config" / "quiver" / "quiver.toml");
}

TEST_F(Config, XdgConfigHomeDefaultsToDotConfigInHome) {
  env.unset("XDG_CONFIG_HOME");
  write(tmp / "home" / ".config" / "quiver" / "quiver.toml", "");
  EXPECT_EQ(find_config_file(), tmp / "home" / ".config" / "quiver" / "quiver.toml");
}

TEST_F(Config, NoFileAnywhereFindsNothing) {
  EXPECT_EQ(find_config_file(), std::nullopt);
}

TEST_F(Config, ConfigFileOptionOverridesTheSearch) {
  write(tmp / "env.toml", "[default]\ncache = \"a\"\n[a]\ntype = \"memory\"\n");
  write(tmp / "option.toml", "[default]\ncache = \"b\"\n[b]\ntype = \"memory\"\n");
  env.set("QUIVER_CONFIG", (tmp / "env.toml").string());
  auto r = resolve_config(OpenOptions{tmp / "option.toml", std::nullopt});
  EXPECT_EQ(r.file, tmp / "option.toml");
  EXPECT_EQ(r.cache_name, "b");
}

TEST_F(Config, MissingConfigFileIsAnErrorSayingWhyAndWhoNamedIt) {
  env.set("QUIVER_CONFIG", (tmp / "absent.toml").string());
  try {
    resolve_config(OpenOptions{});
    ADD_FAILURE() << "resolved a config file that does not exist";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where(), (tmp / "absent.toml").string());
    EXPECT_EQ(e.message(),
              "cannot read config file: No such file or directory (the file named by "
              "$QUIVER_CONFIG)");
  }
}

// --- choosing the cache -----------------------------------------------------------------

TEST_F(Config, WithoutAnyFileTheEmbeddedDefaultIsAnHdf5StoreInXdgCacheHome) {
  auto r = resolve_config(OpenOptions{});
  EXPECT_TRUE(r.embedded_default);
  EXPECT_EQ(r.cache_name, "default");
  EXPECT_EQ(r.tree,
            nlohmann::json({{"type", "hdf5"}, {"path", (tmp / "xdg-cache" / "quiver").string()}}));
  auto cache = open();
  ASSERT_NE(dynamic_cast<Hdf5Store*>(cache.get()), nullptr);
  EXPECT_TRUE(fs::is_directory(tmp / "xdg-cache" / "quiver"));
}

TEST_F(Config, EmbeddedDefaultFallsBackToDotCacheInHome) {
  env.unset("XDG_CACHE_HOME");
  EXPECT_EQ(default_cache_config()["path"], (tmp / "home" / ".cache" / "quiver").string());
}

TEST_F(Config, DefaultSectionChoosesTheCache) {
  write(tmp / "work" / "quiver.toml",
        "[default]\ncache = \"fast\"\n[fast]\ntype = \"memory\"\n[slow]\ntype = \"hdf5\"\n"
        "path = \"store\"\n");
  auto cache = open();
  EXPECT_NE(dynamic_cast<MemoryCache*>(cache.get()), nullptr);
}

TEST_F(Config, OpenByNameIgnoresTheDefaultSection) {
  write(tmp / "work" / "quiver.toml",
        "[default]\ncache = \"slow\"\n[fast]\ntype = \"memory\"\n[slow]\ntype = \"hdf5\"\n"
        "path = \"store\"\n");
  auto cache = open("fast");
  EXPECT_NE(dynamic_cast<MemoryCache*>(cache.get()), nullptr);
}

TEST_F(Config, FileWithoutDefaultSectionOpensTheEmbeddedDefault) {
  auto r = resolve_file("[fast]\ntype = \"memory\"\n");
  EXPECT_TRUE(r.embedded_default);
  EXPECT_EQ(r.tree, default_cache_config());
}

TEST_F(Config, DefaultSectionNamingDefaultMeansTheEmbeddedDefault) {
  auto r = resolve_file("[default]\ncache = \"default\"\n[a]\ntype = \"memory\"\n");
  EXPECT_TRUE(r.embedded_default);
}

TEST_F(Config, NamedCacheWithoutAnyFileIsAnError) {
  EXPECT_THROW(open("scratch"), ConfigError);
}

TEST_F(Config, StackBuildsLayersOfTheRightTypesInOrder) {
  auto r = resolve_file(
      "[[tiered]]\ntype = \"memory\"\n\n"
      "[[tiered]]\ntype = \"hdf5\"\npath = \"shared\"\n\n"
      "[[tiered]]\ntype = \"memory\"\nread_only = true\n",
      "tiered");
  auto cache = make_cache(r);
  auto* stack = dynamic_cast<CacheStack*>(cache.get());
  ASSERT_NE(stack, nullptr);
  ASSERT_EQ(stack->layers().size(), 3u);
  EXPECT_NE(dynamic_cast<MemoryCache*>(stack->layers()[0].get()), nullptr);
  EXPECT_NE(dynamic_cast<Hdf5Store*>(stack->layers()[1].get()), nullptr);
  auto* ro = dynamic_cast<ReadOnlyCache*>(stack->layers()[2].get());
  ASSERT_NE(ro, nullptr);
  EXPECT_NE(dynamic_cast<MemoryCache*>(&ro->inner()), nullptr);
}

TEST_F(Config, WriteThroughLayersReceiveSaves) {
  auto r = resolve_file(
      "[[job]]\ntype = \"memory\"\n\n"
      "[[job]]\ntype = \"hdf5\"\npath = \"shared\"\nwrite_through = true\n",
      "job");
  auto cache = make_cache(r);
  auto* stack = dynamic_cast<CacheStack*>(cache.get());
  ASSERT_NE(stack, nullptr);
  Entry e = Entry::make(Call("f").arg("x", 1), Value(1));
  cache->save(e);
  EXPECT_TRUE(stack->layers()[0]->contains(e.digest));
  EXPECT_TRUE(stack->layers()[1]->contains(e.digest));
}

TEST_F(Config, WriteThroughOnTheFirstLayerOrATableSaysWhereItBelongs) {
  for (const auto& [text, name] :
       {std::pair{"[[s]]\ntype = \"memory\"\nwrite_through = true\n", "s"},
        std::pair{"[t]\ntype = \"memory\"\nwrite_through = true\n", "t"}}) {
    try {
      resolve_file(text, name);
      ADD_FAILURE() << "accepted write_through in " << text;
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("write_through"), std::string::npos) << what;
      EXPECT_NE(what.find("layers below the first"), std::string::npos) << what;
      EXPECT_NE(what.find(":3:"), std::string::npos) << what;  // the line of the key
    }
  }
}

TEST_F(Config, AReadOnlyHdf5StoreDoesNotCreateAMissingRoot) {
  const auto missing = tmp / "no such store";
  try {
    make_cache(resolve_file(
        "[ro]\ntype = \"hdf5\"\npath = \"" + missing.string() + "\"\nread_only = true\n", "ro"));
    ADD_FAILURE() << "opened a read-only store whose root is missing";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("does not exist"), std::string::npos) << what;
    EXPECT_NE(what.find(missing.string()), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(missing));
  // A writable one creates it, and a read-only one then opens it.
  make_cache(resolve_file("[rw]\ntype = \"hdf5\"\npath = \"" + missing.string() + "\"\n", "rw"));
  EXPECT_TRUE(fs::is_directory(missing));
  auto ro = make_cache(resolve_file(
      "[ro]\ntype = \"hdf5\"\npath = \"" + missing.string() + "\"\nread_only = true\n", "ro"));
  EXPECT_TRUE(ro->read_only());
  EXPECT_FALSE(ro->contains(Call("f").arg("x", 1).digest()));
}

TEST_F(Config, ReadOnlyWrapsTheCache) {
  auto cache = make_cache(resolve_file("[ro]\ntype = \"memory\"\nread_only = true\n", "ro"));
  EXPECT_TRUE(cache->read_only());
  EXPECT_THROW(cache->save(Call("f").arg("x", 1), Value(1)), Rejected);
}

TEST_F(Config, Hdf5KeysReachTheStore) {
  auto cache = make_cache(resolve_file(
      "[s]\ntype = \"hdf5\"\npath = \"st\"\nfsync = false\ngzip = 4\nchecksum = false\n"
      "chunk_bytes = 65536\n",
      "s"));
  auto* store = dynamic_cast<Hdf5Store*>(cache.get());
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->options().fsync);
  EXPECT_EQ(store->options().gzip, 4);
  EXPECT_FALSE(store->options().checksum);
  EXPECT_EQ(store->options().chunk_bytes, 65536u);
}

TEST_F(Config, RelativeHdf5PathIsRelativeToTheConfigFile) {
  auto r = resolve_file("[s]\ntype = \"hdf5\"\npath = \"data/store\"\n", "s");
  EXPECT_EQ(r.tree["path"], (tmp / "conf" / "data" / "store").string());
}

TEST_F(Config, TildeInAPathIsHome) {
  auto r = resolve_file("[s]\ntype = \"hdf5\"\npath = \"~/store\"\n", "s");
  EXPECT_EQ(r.tree["path"], (tmp / "home" / "store").string());
}

TEST_F(Config, TildeOfAnotherUserIsAnErrorNamingTheKey) {
  const auto what = error_of("[s]\ntype = \"hdf5\"\npath = \"~bob/store\"\n", "s");
  EXPECT_NE(what.find(":3: [s] path: only ~ and ~/ are expanded"), std::string::npos) << what;
}

TEST_F(Config, ASubprocessServersConfigIsRelativeToTheConfigFileAnSshOneIsAsWritten) {
  auto local = resolve_file("[n]\ntype = \"subprocess\"\nconfig = \"srv.toml\"\n", "n");
  EXPECT_EQ(local.tree["config"], (tmp / "conf" / "srv.toml").string());
  auto remote = resolve_file("[r]\ntype = \"ssh\"\nhost = \"login\"\nconfig = \"srv.toml\"\n", "r");
  EXPECT_EQ(remote.tree["config"], "srv.toml");
}

// --- ${VAR} -----------------------------------------------------------------------------

TEST_F(Config, VariablesInStringsExpandFromTheEnvironment) {
  env.set("QUIVER_TEST_SCRATCH", (tmp / "scratch").string());
  env.set("QUIVER_TEST_JOB", "4242");
  auto r = resolve_file(
      "[s]\ntype = \"hdf5\"\npath = \"${QUIVER_TEST_SCRATCH}/job-${QUIVER_TEST_JOB}\"\n", "s");
  EXPECT_EQ(r.tree["path"], (tmp / "scratch" / "job-4242").string());
}

TEST_F(Config, UnsetVariableWithFallbackTakesTheFallback) {
  env.unset("QUIVER_TEST_UNSET");
  auto r = resolve_file("[s]\ntype = \"hdf5\"\npath = \"/x/${QUIVER_TEST_UNSET:-local}\"\n", "s");
  EXPECT_EQ(r.tree["path"], "/x/local");
}

TEST_F(Config, DefaultCacheNameMayComeFromAVariable) {
  env.set("QUIVER_TEST_CACHE", "b");
  auto r = resolve_file(
      "[default]\ncache = \"${QUIVER_TEST_CACHE:-a}\"\n[a]\ntype = \"memory\"\n[b]\ntype = "
      "\"memory\"\nread_only = true\n");
  EXPECT_EQ(r.cache_name, "b");
}

TEST_F(Config, UnsetVariableIsAnErrorNamingVariableFileLineAndKey) {
  env.unset("QUIVER_TEST_UNSET");
  auto what = error_of("[s]\ntype = \"hdf5\"\npath = \"/x/${QUIVER_TEST_UNSET}\"\n", "s");
  EXPECT_TRUE(what.starts_with(at(3) + "[s] path: ")) << what;
  EXPECT_NE(what.find("QUIVER_TEST_UNSET"), std::string::npos) << what;
}

TEST_F(Config, UnsetVariableInAnotherCacheDoesNotMatter) {
  env.unset("QUIVER_TEST_UNSET");
  auto r = resolve_file(
      "[other]\ntype = \"hdf5\"\npath = \"${QUIVER_TEST_UNSET}\"\n[m]\ntype = \"memory\"\n", "m");
  EXPECT_EQ(r.tree, nlohmann::json({{"type", "memory"}}));
}

TEST(ExpandVariables, DoubleDollarIsALiteralDollar) {
  EXPECT_EQ(expand_variables("a$$b$${HOME}"), "a$b${HOME}");
}

TEST(ExpandVariables, FallbackAppliesToAnEmptyVariable) {
  EnvGuard env;
  env.set("QUIVER_TEST_EMPTY", "");
  EXPECT_EQ(expand_variables("${QUIVER_TEST_EMPTY:-x}"), "x");
  EXPECT_EQ(expand_variables("[${QUIVER_TEST_EMPTY}]"), "[]");
}

TEST(ExpandVariables, SetVariableWinsOverTheFallback) {
  EnvGuard env;
  env.set("QUIVER_TEST_SET", "value");
  EXPECT_EQ(expand_variables("${QUIVER_TEST_SET:-x}"), "value");
}

TEST(ExpandVariables, BareDollarNameIsAnErrorSuggestingBraces) {
  try {
    expand_variables("$HOME/cache");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("${HOME}"), std::string::npos) << e.what();
  }
}

TEST(ExpandVariables, MalformedReferencesAreErrors) {
  EXPECT_THROW(expand_variables("${HOME"), ConfigError);
  EXPECT_THROW(expand_variables("${}"), ConfigError);
  EXPECT_THROW(expand_variables("${1X}"), ConfigError);
}

TEST(ExpandVariables, DollarNotStartingANameIsKept) {
  EXPECT_EQ(expand_variables("cost: 5$ or $1"), "cost: 5$ or $1");
}

// --- errors name file, line and key ------------------------------------------------------

TEST_F(Config, SyntaxErrorNamesFileAndLine) {
  auto what = error_of("[s]\ntype = \"memory\"\npath = \n");
  EXPECT_TRUE(what.starts_with(at(3))) << what;
}

TEST_F(Config, UnknownTypeNamesFileLineAndTheKnownTypes) {
  auto what = error_of("[s]\n\ntype = \"floppy\"\n", "s");
  EXPECT_TRUE(what.starts_with(at(3) + "[s] type: unknown type 'floppy'")) << what;
  EXPECT_NE(what.find("hdf5, memory"), std::string::npos) << what;
}

TEST_F(Config, MissingRequiredKeyNamesTheTable) {
  auto what = error_of("[a]\ntype = \"memory\"\n\n[s]\ntype = \"hdf5\"\n", "s");
  EXPECT_EQ(what, at(4) + "[s] path: missing (required)");
}

TEST_F(Config, MissingTypeIsAnError) {
  auto what = error_of("[s]\npath = \"x\"\n", "s");
  EXPECT_EQ(what, at(1) + "[s] type: missing (required)");
}

TEST_F(Config, WrongValueTypeNamesExpectedAndActual) {
  auto what = error_of("[default]\ncache = \"scratch\"\n[scratch]\ntype = \"hdf5\"\npath = 3\n");
  EXPECT_EQ(what, at(5) + "[scratch] path: expected a string, got integer");
}

TEST_F(Config, IntegerOutOfRangeIsAnError) {
  auto what = error_of("[s]\ntype = \"hdf5\"\npath = \"p\"\ngzip = 12\n", "s");
  EXPECT_EQ(what, at(4) + "[s] gzip: expected an integer 0..9, got 12");
}

TEST_F(Config, UnknownKeyIsAnErrorListingTheAllowedKeys) {
  auto what = error_of("[s]\ntype = \"hdf5\"\npath = \"p\"\nfsyncc = false\n", "s");
  EXPECT_TRUE(what.starts_with(at(4) + "[s] fsyncc: unknown key")) << what;
  EXPECT_NE(what.find("fsync"), std::string::npos);
  EXPECT_NE(what.find("read_only"), std::string::npos);
}

TEST_F(Config, ErrorInAStackLayerNamesTheLayer) {
  auto what = error_of("[[st]]\ntype = \"memory\"\n[[st]]\ntype = \"hdf5\"\npath = true\n", "st");
  EXPECT_EQ(what, at(5) + "[[st]] layer 2 path: expected a string, got boolean");
}

TEST_F(Config, UndefinedCacheInDefaultSectionListsTheDefinedOnes) {
  auto what =
      error_of("[default]\ncache = \"nope\"\n[b]\ntype = \"memory\"\n[a]\ntype = \"memory\"\n");
  EXPECT_EQ(what, at(2) + "[default] cache: cache 'nope' is not defined (defined: a, b)");
}

TEST_F(Config, UndefinedCacheByNameListsTheDefinedOnes) {
  auto what = error_of("[a]\ntype = \"memory\"\n", "nope");
  EXPECT_NE(what.find(file().string()), std::string::npos) << what;
  EXPECT_NE(what.find("cache 'nope' is not defined (defined: a)"), std::string::npos) << what;
}

TEST_F(Config, TopLevelValueThatIsNoCacheIsAnError) {
  auto what = error_of("verbose = true\n[a]\ntype = \"memory\"\n", "a");
  EXPECT_TRUE(what.starts_with(at(1) + "verbose: expected a cache table")) << what;
}

TEST_F(Config, UnknownKeyInDefaultSectionIsAnError) {
  auto what = error_of("[default]\ncache = \"a\"\ntype = \"memory\"\n[a]\ntype = \"memory\"\n");
  EXPECT_TRUE(what.starts_with(at(3) + "[default] type: unknown key")) << what;
}

TEST(MakeCache, ErrorsWithoutAFileNameTheTableOnly) {
  try {
    make_cache(nlohmann::json{{"type", "tape"}}, "archive");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("[archive] type: unknown type 'tape'"))
        << e.what();
  }
}

TEST(MakeCache, EmptyStackIsAnError) {
  EXPECT_THROW(make_cache(nlohmann::json::array(), "s"), ConfigError);
}

// --- redaction --------------------------------------------------------------------------

TEST(ToToml, RedactsSecretKeysAndUrlPasswords) {
  nlohmann::json config{{"type", "ssh"},
                        {"token", "tok-123"},
                        {"db_password", "hunter2"},
                        {"url", "https://alice:s3cret@example.org/x"}};
  auto text = to_toml("remote", config);
  EXPECT_EQ(text.find("tok-123"), std::string::npos) << text;
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_NE(text.find("token = \"***\""), std::string::npos) << text;
  EXPECT_NE(text.find("https://alice:***@example.org/x"), std::string::npos) << text;
}

TEST(ToToml, KeepsSecretsOnlyWhenAsked) {
  nlohmann::json config{{"type", "ssh"}, {"password", "hunter2"}};
  EXPECT_NE(to_toml("r", config, Secrets::keep).find("hunter2"), std::string::npos);
}

TEST(ToToml, TableAndStackLayout) {
  EXPECT_EQ(to_toml("m", nlohmann::json{{"type", "memory"}, {"read_only", true}}),
            "[m]\ntype = \"memory\"\nread_only = true\n");
  EXPECT_EQ(
      to_toml("two words", nlohmann::json::array({{{"type", "memory"}}, {{"type", "memory"}}})),
      "[[\"two words\"]]\ntype = \"memory\"\n\n[[\"two words\"]]\ntype = \"memory\"\n");
}

// --- cache -> config -> cache ------------------------------------------------------------

class RoundTrip : public Config {
 protected:
  /// cache's config written as quiver.toml, read back and built again.
  std::unique_ptr<Cache> round_trip(Cache& cache) {
    auto text = to_toml("again", cache.config(), Secrets::keep);
    write(file(), text);
    return make_cache(resolve_config(OpenOptions{file(), "again"}));
  }
};

TEST_F(RoundTrip, MemoryCache) {
  MemoryCache cache;
  EXPECT_EQ(round_trip(cache)->config(), cache.config());
}

TEST_F(RoundTrip, ReadOnlyMemoryCache) {
  ReadOnlyCache cache(std::make_unique<MemoryCache>());
  auto again = round_trip(cache);
  EXPECT_TRUE(again->read_only());
  EXPECT_EQ(again->config(), cache.config());
}

TEST_F(RoundTrip, Hdf5StoreWithOptionsAndADollarInItsPath) {
  Hdf5StoreOptions o;
  o.root = tmp / "odd $path" / "store";
  o.fsync = false;
  o.gzip = 6;
  o.checksum = false;
  o.chunk_bytes = 1000;
  Hdf5Store cache(o);
  auto again = round_trip(cache);
  EXPECT_EQ(again->config(), cache.config());
  const auto& got = dynamic_cast<Hdf5Store&>(*again).options();
  EXPECT_EQ(got.root, o.root);
  EXPECT_EQ(got.fsync, o.fsync);
  EXPECT_EQ(got.gzip, o.gzip);
  EXPECT_EQ(got.checksum, o.checksum);
  EXPECT_EQ(got.chunk_bytes, o.chunk_bytes);
}

TEST_F(RoundTrip, StackOfEveryKind) {
  auto tree =
      nlohmann::json::array({{{"type", "memory"}},
                             {{"type", "hdf5"}, {"path", (tmp / "shared").string()}, {"gzip", 2}},
                             {{"type", "memory"}, {"read_only", true}, {"write_through", true}}});
  auto cache = make_cache(tree, "tiers");
  auto again = round_trip(*cache);
  EXPECT_EQ(again->config(), cache->config());
  EXPECT_EQ(dynamic_cast<CacheStack&>(*again).layers().size(), 3u);
}

}  // namespace
}  // namespace quiver
