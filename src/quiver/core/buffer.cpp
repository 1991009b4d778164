#include <new>
#include <quiver/core/buffer.hpp>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace quiver {

namespace {

constexpr std::align_val_t kHugeAlign{Buffer::kHugePageBytes};

// Frees memory from ::operator new(n, kHugeAlign).
struct HugeDelete {
  void operator()(void* p) const noexcept { ::operator delete(p, kHugeAlign); }
};

// Asks for transparent huge pages on the whole huge pages of [p, p + n) (p is aligned). Only
// a hint: without THP, or with THP switched off, the buffer simply stays in small pages.
void advise_huge_pages([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const std::size_t whole = n / Buffer::kHugePageBytes * Buffer::kHugePageBytes;
  (void)::madvise(p, whole, MADV_HUGEPAGE);
#endif
}

}  // namespace

Buffer Buffer::allocate(std::size_t n) {
  Buffer b;
  if (n == 0) return b;
  if (n >= kHugePageBytes) {
    std::shared_ptr<void> mem(::operator new(n, kHugeAlign), HugeDelete{});
    advise_huge_pages(mem.get(), n);
    b.data_ = static_cast<const std::byte*>(mem.get());
    b.size_ = n;
    b.owner_ = std::move(mem);
    return b;
  }
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
