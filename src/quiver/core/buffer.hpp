// Buffer: a byte region shared between copies. Large results (GiB arrays) move through
// quiver without copies: copying a Buffer shares its bytes, and borrow() wraps memory
// the caller owns.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace quiver {

class Buffer {
 public:
  Buffer() = default;

  /// Buffers of at least this size start on a huge-page boundary and ask the kernel for
  /// transparent huge pages (Linux, madvise(MADV_HUGEPAGE)): filling fresh memory in 4 KiB
  /// pages costs a page fault and a TLB miss every 4 KiB, which dominates copying into it.
  static constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

  /// A new buffer of n bytes, left uninitialised (callers fill it); from kHugePageBytes on,
  /// aligned to kHugePageBytes and backed by transparent huge pages where the system allows.
  static Buffer allocate(std::size_t n);
  /// A new buffer holding a copy of bytes.
  static Buffer copy_of(std::span<const std::byte> bytes);
  static Buffer copy_of(std::string_view bytes);
  /// Wraps memory the caller keeps alive and unchanged for the life of every copy.
  static Buffer borrow(const void* data, std::size_t n);
  /// Wraps memory kept alive by owner.
  static Buffer adopt(std::shared_ptr<const void> owner, const void* data, std::size_t n);

  const std::byte* data() const noexcept { return data_; }
  /// Writable access, for filling a freshly allocated buffer before it is shared.
  std::byte* mutable_data() noexcept { return const_cast<std::byte*>(data_); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// True when the bytes are memory the caller keeps alive (borrow()), not the buffer's own.
  bool borrowed() const noexcept { return size_ > 0 && !owner_; }
  std::span<const std::byte> span() const noexcept { return {data_, size_}; }
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data_), size_}; }

  /// The first n bytes (n <= size()), sharing storage.
  Buffer first(std::size_t n) const noexcept {
    Buffer b = *this;
    b.size_ = n < size_ ? n : size_;
    return b;
  }

  /// Byte-wise equality.
  friend bool operator==(const Buffer& a, const Buffer& b) noexcept {
    return a.size_ == b.size_ &&
           (a.data_ == b.data_ || a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }

 private:
  std::shared_ptr<const void> owner_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace quiver
