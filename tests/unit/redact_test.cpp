// Redaction of secrets before anything leaves the process.
#include <gtest/gtest.h>

#include <quiver/core/redact.hpp>

namespace quiver {
namespace {

using nlohmann::json;

TEST(IsSecretKey, RecognisesSecretNames) {
  for (std::string_view key :
       {"password", "PASSWORD", "db_password", "passwd", "secret", "client_secret", "token",
        "access_token", "AuthToken", "credentials", "private_key", "api_key", "apikey", "ApiKey",
        "api-key", "private-key", "s3-secret-access"})
    EXPECT_TRUE(is_secret_key(key)) << key;
}

TEST(IsSecretKey, LeavesOrdinaryNamesAlone) {
  for (std::string_view key : {"host", "user", "path", "root", "key", "keys", "monkey", "author",
                               "pass", "max_size", "workdir", "ssh_options", ""})
    EXPECT_FALSE(is_secret_key(key)) << key;
}

TEST(RedactUrl, ReplacesThePasswordOnly) {
  EXPECT_EQ(redact_url("https://alice:s3cr3t@example.org/path?q=1"),
            "https://alice:***@example.org/path?q=1");
  EXPECT_EQ(redact_url("redis://:hunter2@cache:6379"), "redis://:***@cache:6379");
}

TEST(RedactUrl, LeavesUrlsWithoutPasswordUntouched) {
  for (std::string_view s :
       {"https://example.org/a:b@c", "ssh://alice@login.cluster:22/home", "https://host:8443/x",
        "plain text: no url @ all", "file:///scratch/run", ""})
    EXPECT_EQ(redact_url(s), s);
}

TEST(RedactUrl, HandlesSeveralUrlsInOneString) {
  EXPECT_EQ(redact_url("mirror https://a:pw1@one.org/x and http://b:pw2@two.org, done"),
            "mirror https://a:***@one.org/x and http://b:***@two.org, done");
}

TEST(RedactUrl, PasswordContainingAtSignIsHiddenWhole) {
  EXPECT_EQ(redact_url("https://alice:p@ss@example.org/"), "https://alice:***@example.org/");
}

TEST(RedactUrl, PortAfterTheHostIsNotMistakenForAPassword) {
  EXPECT_EQ(redact_url("https://alice@example.org:8443/x"), "https://alice@example.org:8443/x");
}

TEST(Redact, HidesSecretValuesAtAnyDepth) {
  auto in = json::parse(R"({
    "host": "login1",
    "password": "hunter2",
    "layers": [{"path": "/scratch", "token": "abc"}, {"nested": {"api_key": 42}}]
  })");
  auto out = redact(in);
  EXPECT_EQ(out["host"], "login1");
  EXPECT_EQ(out["password"], kRedacted);
  EXPECT_EQ(out["layers"][0]["path"], "/scratch");
  EXPECT_EQ(out["layers"][0]["token"], kRedacted);
  EXPECT_EQ(out["layers"][1]["nested"]["api_key"], kRedacted);
}

TEST(Redact, HidesUrlPasswordsInStringsAtAnyDepth) {
  auto in = json::parse(R"({"url": "https://u:pw@h/x", "list": ["s3://k:pw@bucket", 1]})");
  auto out = redact(in);
  EXPECT_EQ(out["url"], "https://u:***@h/x");
  EXPECT_EQ(out["list"][0], "s3://k:***@bucket");
  EXPECT_EQ(out["list"][1], 1);
}

TEST(Redact, HidesAWholeSecretSubtree) {
  auto out = redact(json::parse(R"({"credentials": {"user": "u", "pass": "p"}})"));
  EXPECT_EQ(out["credentials"], kRedacted);
}

TEST(Redact, KeepsNullSecretsNull) {
  // An unset secret shows as unset rather than as a value being hidden.
  EXPECT_TRUE(redact(json::parse(R"({"token": null})"))["token"].is_null());
}

TEST(Redact, LeavesTheInputUnchanged) {
  auto in = json::parse(R"({"password": "hunter2"})");
  (void)redact(in);
  EXPECT_EQ(in["password"], "hunter2");
}

TEST(Redact, TopLevelScalarsPassThrough) {
  EXPECT_EQ(redact(json(5)), json(5));
  EXPECT_EQ(redact(json("https://a:b@c")), json("https://a:***@c"));
  EXPECT_TRUE(redact(json()).is_null());
}

}  // namespace
}  // namespace quiver
