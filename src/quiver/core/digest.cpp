#include <openssl/evp.h>

#include <algorithm>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>

namespace quiver {

namespace {
constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}
}  // namespace

std::optional<Digest> Digest::parse(std::string_view hex) noexcept {
  if (hex.size() != kDigestHexLength) return std::nullopt;
  std::array<std::uint8_t, 32> bytes{};
  for (std::size_t i = 0; i < 32; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return Digest(bytes);
}

Digest Digest::from_hex(std::string_view hex) {
  if (auto d = parse(hex)) return *d;
  throw InvalidArgument("'" + printable(hex) + "' is not a digest (64 lowercase hex characters)",
                        "quiver::Digest");
}

std::string Digest::hex() const {
  std::string s(kDigestHexLength, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    s[2 * i] = kHex[bytes_[i] >> 4];
    s[2 * i + 1] = kHex[bytes_[i] & 15];
  }
  return s;
}

bool is_hex_prefix(std::string_view s) noexcept {
  if (s.empty() || s.size() > kDigestHexLength) return false;
  for (char c : s)
    if (hex_value(c) < 0) return false;
  return true;
}

void check_prefix(std::string_view s, std::string_view where, std::size_t min_length) {
  if (!is_hex_prefix(s))
    throw InvalidArgument("'" + printable(s) + "' is not a digest prefix (" +
                              std::to_string(std::max<std::size_t>(min_length, 1)) +
                              " to 64 lowercase hex characters)",
                          std::string(where));
  if (s.size() < min_length)
    throw InvalidArgument("prefix '" + std::string(s) + "' is too short: at least " +
                              std::to_string(min_length) + " hex characters are needed",
                          std::string(where));
}

std::size_t common_prefix_length(const Digest& a, const Digest& b) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    auto x = a.bytes()[i] ^ b.bytes()[i];
    if (x == 0) {
      n += 2;
      continue;
    }
    return n + ((x & 0xf0) ? 0 : 1);
  }
  return n;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw StoreError("cannot initialise SHA-256", "quiver::Sha256");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, std::size_t n) {
  if (n && EVP_DigestUpdate(impl_->ctx, data, n) != 1)
    throw StoreError("SHA-256 update failed", "quiver::Sha256");
}

Digest Sha256::finish() {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) != 1 || len != 32)
    throw StoreError("SHA-256 final failed", "quiver::Sha256");
  return Digest(out);
}

}  // namespace quiver
