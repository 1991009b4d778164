// Counts large heap allocations, to prove that the wire layer allocates a declared size only
// after checking it, and a received payload exactly once. Replaces the global operator new,
// so include it from exactly one source file of a test program.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace quiver::testing {

/// Records every allocation of at least threshold bytes made while it lives (any thread).
class LargeAllocations {
 public:
  explicit LargeAllocations(std::size_t threshold) {
    count_ = 0;
    last_size_ = 0;
    last_ptr_ = nullptr;
    threshold_ = threshold;
  }
  ~LargeAllocations() { threshold_ = static_cast<std::size_t>(-1); }
  LargeAllocations(const LargeAllocations&) = delete;
  LargeAllocations& operator=(const LargeAllocations&) = delete;

  int count() const noexcept { return count_; }
  std::size_t last_size() const noexcept { return last_size_; }
  const void* last_ptr() const noexcept { return last_ptr_; }

  static void note(void* p, std::size_t n) noexcept {
    if (n < threshold_.load(std::memory_order_relaxed)) return;
    ++count_;
    last_size_ = n;
    last_ptr_ = p;
  }

 private:
  static inline std::atomic<std::size_t> threshold_{static_cast<std::size_t>(-1)};
  static inline std::atomic<int> count_{0};
  static inline std::atomic<std::size_t> last_size_{0};
  static inline std::atomic<void*> last_ptr_{nullptr};
};

}  // namespace quiver::testing

[[gnu::noinline]] void* operator new(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  quiver::testing::LargeAllocations::note(p, n);
  return p;
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  return ::operator new(n);
}
// Over-aligned allocations (Buffer::allocate of large buffers) are counted alike.
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t align) {
  const auto a = static_cast<std::size_t>(align);
  void* p = std::aligned_alloc(a, (n + a - 1) / a * a);
  if (!p) throw std::bad_alloc();
  quiver::testing::LargeAllocations::note(p, n);
  return p;
}
[[gnu::noinline]] void* operator new[](std::size_t n, std::align_val_t align) {
  return ::operator new(n, align);
}
// None is inlined, so that the compiler does not pair operator new with free() and warn.
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
