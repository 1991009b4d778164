#include <quiver/core/buffer.hpp>

namespace quiver {

Buffer Buffer::allocate(std::size_t n) {
  Buffer b;
  if (n == 0) return b;
  std::shared_ptr<std::byte[]> mem(new std::byte[n]);  // default-init: no zeroing pass
  b.data_ = mem.get();
  b.size_ = n;
  b.owner_ = std::move(mem);
  return b;
}

Buffer Buffer::copy_of(std::span<const std::byte> bytes) {
  Buffer b = allocate(bytes.size());
  if (!bytes.empty()) std::memcpy(b.mutable_data(), bytes.data(), bytes.size());
  return b;
}

Buffer Buffer::copy_of(std::string_view bytes) {
  return copy_of(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

Buffer Buffer::borrow(const void* data, std::size_t n) {
  Buffer b;
  b.data_ = static_cast<const std::byte*>(data);
  b.size_ = n;
  return b;
}

Buffer Buffer::adopt(std::shared_ptr<const void> owner, const void* data, std::size_t n) {
  Buffer b = borrow(data, n);
  b.owner_ = std::move(owner);
  return b;
}

}  // namespace quiver
