// Redaction of secrets in anything that leaves the process (info, logs, config dumps).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace quiver {

/// The text put in place of a secret.
inline constexpr std::string_view kRedacted = "***";

/// True for keys that name secrets: containing secret, password, passwd, token,
/// credential, private_key or api_key (case-insensitive; '-' counts as '_').
bool is_secret_key(std::string_view key) noexcept;
/// s with any URL password (scheme://user:PASSWORD@host) replaced.
std::string redact_url(std::string_view s);
/// A copy of j with secret keys' values and URL passwords replaced, recursively.
nlohmann::json redact(const nlohmann::json& j);

}  // namespace quiver
