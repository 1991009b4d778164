#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <mutex>
#include <optional>
#include <quiver/core/buffer.hpp>
#include <quiver/store/h5_chunks.hpp>
#include <quiver/store/index_fs.hpp>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace quiver::h5 {

namespace {

constexpr std::size_t kChecksumBytes = 4;

// The layout the direct path handles: chunks of whole rows, fletcher32 as the only filter.
struct RowChunks {
  std::vector<hsize_t> dims;  // chunk dimensions (dims[0] rows, the rest the full extents)
  std::uint64_t chunk_bytes;  // bytes of one (unfiltered, padded) chunk
  std::uint64_t count;        // chunks along the outermost dimension
};

std::optional<RowChunks> row_chunks(hid_t ds, const Shape& shape, std::size_t esize,
                                    const Site& site) {
  if (shape.empty() || shape_elements(shape) == 0) return std::nullopt;
  Handle dcpl = own(H5Dget_create_plist(ds), "H5Dget_create_plist", site);
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED) return std::nullopt;
  RowChunks c{std::vector<hsize_t>(shape.size()), 0, 0};
  if (H5Pget_chunk(dcpl.id(), static_cast<int>(c.dims.size()), c.dims.data()) !=
      static_cast<int>(shape.size()))
    return std::nullopt;
  for (std::size_t i = 1; i < shape.size(); ++i)
    if (c.dims[i] != shape[i]) return std::nullopt;
  if (check(H5Pget_nfilters(dcpl.id()), "H5Pget_nfilters", site) != 1) return std::nullopt;
  unsigned flags = 0;
  std::size_t nvalues = 0;
  unsigned config = 0;
  if (H5Pget_filter2(dcpl.id(), 0, &flags, &nvalues, nullptr, 0, nullptr, &config) !=
      H5Z_FILTER_FLETCHER32)
    return std::nullopt;
  c.chunk_bytes = shape_elements(Shape(c.dims.begin(), c.dims.end())) * esize;
  c.count = (shape[0] + c.dims[0] - 1) / c.dims[0];
  return c;
}

void put_le32(std::byte* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}

std::uint32_t get_le32(const std::byte* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{std::to_integer<std::uint8_t>(p[i])} << (8 * i);
  return v;
}

// HDF5 also accepts the checksum of files written by versions that swapped its byte pairs.
bool checksum_matches(std::uint32_t sum, std::uint32_t stored) {
  std::uint32_t swapped = ((sum & 0x00ff00ffu) << 8) | ((sum >> 8) & 0x00ff00ffu);
  return stored == sum || stored == swapped;
}

// Runs step(0), step(1), ... step(count - 1) on a second thread, in order, each once the
// caller has allowed it, so that preparing one chunk overlaps HDF5's write of another (the
// HDF5 calls stay on the caller's thread, which holds the HDF5 lock). The first failed step
// ends the run; its exception is rethrown to the caller. Destruction stops the thread and
// joins it.
class Pipeline {
 public:
  Pipeline(std::uint64_t count, std::function<void(std::uint64_t)> step)
      : count_(count),
        step_(std::move(step)),
        thread_([this](const std::stop_token& stop) { work(stop); }) {}

  /// Lets the second thread run the steps below n.
  void allow(std::uint64_t n) {
    {
      std::lock_guard lock(mutex_);
      allowed_ = std::max(allowed_, n);
    }
    changed_.notify_all();
  }

  /// Waits until the steps below n are done; rethrows a failure.
  void wait(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return completed_ >= n || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    while (
        changed_.wait(lock, stop, [&] { return next_ < allowed_ || next_ == count_ || error_; }) &&
        next_ < count_ && !error_)
      run_next(lock);
  }

  // Takes the next step and runs it with the mutex released.
  void run_next(std::unique_lock<std::mutex>& lock) {
    const std::uint64_t i = next_++;
    lock.unlock();
    std::exception_ptr error;
    try {
      step_(i);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error) error_ = error;
    ++completed_;
    changed_.notify_all();
  }

  const std::uint64_t count_;
  const std::function<void(std::uint64_t)> step_;
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::uint64_t allowed_ = 0;    // steps below this may run
  std::uint64_t next_ = 0;       // steps below this have been taken
  std::uint64_t completed_ = 0;  // how many taken steps have ended
  std::exception_ptr error_;     // of the failed step, if any
  std::jthread thread_;          // last: stopped and joined before the members above go
};

}  // namespace

namespace {

// Sums s1, s2 of fletcher32 so far, and whether any word was non-zero.
struct FletcherSums {
  std::uint64_t s1 = 0, s2 = 0, any = 0;
};

// Adds to sums a block of n words w_j whose sum is sum_w and whose weighted sum
// sum (n - j) * w_j is weighted (both taken modulo 65535): s1 += sum_w, s2 += n * s1 + weighted.
void add_block(FletcherSums& sums, std::uint64_t n, std::uint64_t sum_w, std::uint64_t weighted) {
  sums.s2 = (sums.s2 + n % 65535 * sums.s1 + weighted % 65535) % 65535;
  sums.s1 = (sums.s1 + sum_w % 65535) % 65535;
}

constexpr std::size_t kFletcherSteps = 256, kFletcherBlockBytes = kFletcherSteps * 32;

// The portable kernel: adds the whole blocks of kFletcherBlockBytes among the nbytes at p to
// sums; returns the end of the last block. The block is taken as kFletcherSteps steps of 16
// words, loaded as 8 little-endian 32-bit lanes of two big-endian words each (an even and an
// odd one). Each lane l keeps A = the sum of its words and B = the sum over steps of A, so that
// sum (n-j)*w_j = sum over the 16 words i of (16*B_i - i*A_i). The lanes only add, in explicit
// vectors whatever the optimisation level; B fits in 32 bits for 256 steps.
const unsigned char* fletcher_blocks_baseline(const unsigned char* p, std::size_t nbytes,
                                              FletcherSums& sums) {
  using u32x8 = std::uint32_t __attribute__((vector_size(32)));
  for (std::size_t nblocks = nbytes / kFletcherBlockBytes; nblocks > 0; --nblocks) {
    u32x8 a_even = {}, a_odd = {}, b_even = {}, b_odd = {};
    for (std::size_t k = 0; k < kFletcherSteps; ++k, p += sizeof(u32x8)) {
      u32x8 x;
      std::memcpy(&x, p, sizeof x);
      a_even += ((x & 0xff) << 8) | ((x >> 8) & 0xff);
      a_odd += ((x >> 8) & 0xff00) | (x >> 24);
      b_even += a_even;
      b_odd += a_odd;
    }
    std::uint64_t sum_a = 0, sum_b = 0;
    for (std::size_t l = 0; l < 8; ++l) {
      sum_a += std::uint64_t{a_even[l]} + a_odd[l];
      sum_b += 16 * (std::uint64_t{b_even[l]} + b_odd[l]) - 2 * l * std::uint64_t{a_even[l]} -
               (2 * l + 1) * std::uint64_t{a_odd[l]};
    }
    add_block(sums, kFletcherBlockBytes / 2, sum_a, sum_b);
    sums.any |= sum_a;
  }
  return p;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QUIVER_FLETCHER_X86 1

// The multiply-add kernels (x86) take the words as they load, little-endian: v = swap(w), and
// swap(w) = 256 * w modulo 65535 (as 65536 = 1), so sums over v times 256 are those over w.
// Flipping the top bit turns v into the signed u = v - 32768, which vpmaddwd multiplies and
// adds in pairs into 32-bit lanes: A += u * 1 per step, B += A (the running sum, taken each
// step), C += u * i (i the word's place within its step). Over a block of s steps of m words,
// with j = m * k + i: sum u_j = sum A-lanes, sum (n - j) u_j = m * sum B - sum C. Steps of 128
// keep B below 2^31 (65536 * 128 * 129 / 2 < 2^30).
constexpr std::size_t kMaddSteps = 128;

// Adds the block whose lane sums are a, b, c (m words a step, kMaddSteps steps) to sums.
void add_madd_block(FletcherSums& sums, std::size_t m, std::int64_t a, std::int64_t b,
                    std::int64_t c) {
  const auto n = static_cast<std::int64_t>(m * kMaddSteps);
  const auto sum_v = static_cast<std::uint64_t>(a + 32768 * n);
  const auto weighted_v =
      static_cast<std::uint64_t>(static_cast<std::int64_t>(m) * b - c + 32768 * (n * (n + 1) / 2));
  add_block(sums, static_cast<std::uint64_t>(n), 256 * (sum_v % 65535), 256 * (weighted_v % 65535));
}

// The sum of the 32-bit lanes of a vector of bytes V.
template <class V>
std::int64_t lane_sum(const V& v) {
  std::int32_t lanes[sizeof(V) / 4];
  std::memcpy(lanes, &v, sizeof lanes);
  std::int64_t sum = 0;
  for (std::int32_t x : lanes) sum += x;
  return sum;
}

// Whether a vector has a non-zero bit.
template <class V>
std::uint64_t any_bit(const V& v) {
  std::uint64_t words[sizeof(V) / 8];
  std::memcpy(words, &v, sizeof words);
  std::uint64_t any = 0;
  for (std::uint64_t x : words) any |= x;
  return any;
}

// Each word's place within a step, for the C lanes.
alignas(64) constexpr std::int16_t kPlaces[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                                  11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                                  22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

// The multiply-add kernel, written once for vectors V of W bytes: PFX names the intrinsics
// (_mm256, _mm512) and SI their integer-vector suffix (si256, si512). NAME adds the whole
// blocks among the nbytes at p to sums and returns the end of the last block.
#define QUIVER_FLETCHER_MADD_KERNEL(NAME, TARGET, V, W, PFX, SI)                                \
  [[gnu::target(TARGET)]] const unsigned char* NAME(const unsigned char* p, std::size_t nbytes, \
                                                    FletcherSums& sums) {                       \
    const V flip = PFX##_set1_epi16(std::int16_t{-32768}), ones = PFX##_set1_epi16(1);          \
    const V place = PFX##_loadu_##SI(reinterpret_cast<const V*>(kPlaces));                      \
    V any = PFX##_setzero_##SI();                                                               \
    for (std::size_t nblocks = nbytes / (kMaddSteps * (W)); nblocks > 0; --nblocks) {           \
      V a = PFX##_setzero_##SI(), b = a, c = a;                                                 \
      for (std::size_t k = 0; k < kMaddSteps; ++k, p += (W)) {                                  \
        const V x = PFX##_loadu_##SI(reinterpret_cast<const V*>(p));                            \
        any = PFX##_or_##SI(any, x);                                                            \
        const V u = PFX##_xor_##SI(x, flip);                                                    \
        a = PFX##_add_epi32(a, PFX##_madd_epi16(u, ones));                                      \
        b = PFX##_add_epi32(b, a);                                                              \
        c = PFX##_add_epi32(c, PFX##_madd_epi16(u, place));                                     \
      }                                                                                         \
      add_madd_block(sums, (W) / 2, lane_sum(a), lane_sum(b), lane_sum(c));                     \
    }                                                                                           \
    sums.any |= any_bit(any);                                                                   \
    return p;                                                                                   \
  }

QUIVER_FLETCHER_MADD_KERNEL(fletcher_blocks_avx2, "avx2", __m256i, 32, _mm256, si256)
QUIVER_FLETCHER_MADD_KERNEL(fletcher_blocks_avx512, "avx512bw", __m512i, 64, _mm512, si512)
#undef QUIVER_FLETCHER_MADD_KERNEL
#endif

}  // namespace

bool fletcher32_supports(Isa isa) noexcept {
  switch (isa) {
    case Isa::baseline:
      return std::endian::native == std::endian::little;
#ifdef QUIVER_FLETCHER_X86
    case Isa::avx2:
      return __builtin_cpu_supports("avx2");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512bw");
#endif
    default:
      return false;
  }
}

namespace {

// Adds data to sums, continuing the words so far: whole blocks with the kernel for isa, the
// rest word by word. Every piece but the last must have an even length.
void fletcher_add(FletcherSums& sums, std::span<const std::byte> data, Isa isa) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const auto* end = p + data.size();
  if constexpr (std::endian::native == std::endian::little) {  // the kernels load little-endian
    switch (isa) {
#ifdef QUIVER_FLETCHER_X86
      case Isa::avx2:
        p = fletcher_blocks_avx2(p, data.size(), sums);
        break;
      case Isa::avx512:
        p = fletcher_blocks_avx512(p, data.size(), sums);
        break;
#endif
      default:
        p = fletcher_blocks_baseline(p, data.size(), sums);
    }
  }
  auto add_word = [&](std::uint32_t w) {
    sums.s1 = (sums.s1 + w) % 65535;
    sums.s2 = (sums.s2 + sums.s1) % 65535;
    sums.any |= w;
  };
  for (; end - p >= 2; p += 2) add_word((std::uint32_t{p[0]} << 8) | p[1]);
  if (p != end) add_word(std::uint32_t{p[0]} << 8);  // an odd last byte: a word's high byte
}

// The checksum of the words summed: HDF5 reduces modulo 65535 with end-around carries, which
// never turns a non-zero sum into 0: its result is the sum mod 65535, written 0xffff rather
// than 0 unless every word is zero.
std::uint32_t fletcher_value(const FletcherSums& sums) noexcept {
  if (sums.any == 0) return 0;
  const std::uint64_t s1 = sums.s1 == 0 ? 65535 : sums.s1, s2 = sums.s2 == 0 ? 65535 : sums.s2;
  return static_cast<std::uint32_t>((s2 << 16) | s1);
}

// The fastest kernel this machine runs.
Isa fletcher32_best() noexcept {
  static const Isa best = fletcher32_supports(Isa::avx512) ? Isa::avx512
                          : fletcher32_supports(Isa::avx2) ? Isa::avx2
                                                           : Isa::baseline;
  return best;
}

}  // namespace

std::uint32_t fletcher32(std::span<const std::byte> data, Isa isa) noexcept {
  FletcherSums sums;
  fletcher_add(sums, data, isa);
  return fletcher_value(sums);
}

std::uint32_t fletcher32(std::span<const std::byte> data) noexcept {
  return fletcher32(data, fletcher32_best());
}

#if H5_VERSION_GE(1, 12, 0) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 5)
#define QUIVER_H5_HAVE_CHUNK_INFO 1
#endif

namespace {

// The descriptor of a file opened with HDF5's default (sec2) driver, which quiver uses; -1 for
// any other driver.
int sec2_descriptor(hid_t obj, const Site& site) {
  Handle file = own(H5Iget_file_id(obj), "H5Iget_file_id", site);
  Handle fapl = own(H5Fget_access_plist(file.id()), "H5Fget_access_plist", site);
  if (H5Pget_driver(fapl.id()) != H5FD_SEC2) return -1;
  void* handle = nullptr;
  check(H5Fget_vfd_handle(file.id(), fapl.id(), &handle), "H5Fget_vfd_handle", site);
  return handle ? *static_cast<int*>(handle) : -1;
}

}  // namespace

bool write_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize,
                              const std::byte* data, bool durable, const Site& site) {
  auto layout = row_chunks(ds, shape, esize, site);
  if (!layout) return false;
  // A durable file is fsynced once written: each chunk goes on to the disk as soon as it is
  // written (its address known to HDF5 1.10.5 and later), not all at once in the fsync.
  std::optional<fs::Writeback> writeback;
#ifdef QUIVER_H5_HAVE_CHUNK_INFO
  if (durable) writeback.emplace(sec2_descriptor(ds, site));
#else
  (void)durable;
#endif
  const std::uint64_t total = shape_elements(shape) * esize;
  const std::uint64_t chunk_bytes = layout->chunk_bytes;
  // Two reused chunk buffers: the second thread copies and checksums chunk k + 1 into one
  // while this thread writes chunk k from the other.
  Buffer buffers[2];
  const std::uint64_t nbuffers = layout->count > 1 ? 2 : 1;
  for (std::uint64_t b = 0; b < nbuffers; ++b)
    buffers[b] = Buffer::allocate(chunk_bytes + kChecksumBytes);
  auto prepare = [&](std::uint64_t k) {
    std::byte* chunk = buffers[k % 2].mutable_data();
    const std::uint64_t start = k * chunk_bytes;
    const std::uint64_t n = std::min(chunk_bytes, total - start);
    std::memcpy(chunk, data + start, n);
    // The last chunk is stored whole; HDF5 pads it with the fill value (zero).
    std::memset(chunk + n, 0, chunk_bytes - n);
    put_le32(chunk + chunk_bytes, fletcher32(std::span(chunk, chunk_bytes)));
  };
  auto write = [&](std::uint64_t k) {
    std::vector<hsize_t> offset(shape.size(), 0);
    offset[0] = k * layout->dims[0];
    check(H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset.data(), chunk_bytes + kChecksumBytes,
                         buffers[k % 2].data()),
          "H5Dwrite_chunk", site);
#ifdef QUIVER_H5_HAVE_CHUNK_INFO
    unsigned filters = 0;
    haddr_t address = HADDR_UNDEF;
    hsize_t size = 0;
    if (writeback &&
        H5Dget_chunk_info_by_coord(ds, offset.data(), &filters, &address, &size) >= 0 &&
        address != HADDR_UNDEF)
      writeback->written(address, size);
#endif
  };
  if (nbuffers == 1) {
    prepare(0);
    write(0);
    return true;
  }
  Pipeline prepared(layout->count, prepare);
  prepared.allow(2);
  for (std::uint64_t k = 0; k < layout->count; ++k) {
    prepared.wait(k + 1);
    write(k);
    prepared.allow(k + 3);  // chunk k's buffer is free for chunk k + 2
  }
  return true;
}

namespace {

// Bytes read per pread: small enough to stay in a core's L2 cache until they are checksummed
// (right after), and a multiple of every kernel's block, so that only a chunk's last piece
// leaves words to the word-by-word loop.
constexpr std::size_t kReadPieceBytes = std::size_t{256} << 10;
static_assert(kReadPieceBytes % kFletcherBlockBytes == 0);

// Reads n bytes at offset of fd into out, then n_more into more (both whole, or the chunk is
// cut short: the Site's error).
void read_exactly(int fd, std::uint64_t offset, std::byte* out, std::size_t n, std::byte* more,
                  std::size_t n_more, std::uint64_t chunk, const Site& site) {
  iovec iov[2] = {{out, n}, {more, n_more}};
  iovec* at = iov;
  int count = n_more > 0 ? 2 : 1;
  while (count > 0) {
    ssize_t got = ::preadv(fd, at, count, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      reject("array chunk " + std::to_string(chunk) + " cannot be read: " + std::strerror(errno),
             site);
    if (got == 0) reject("array chunk " + std::to_string(chunk) + " is cut short", site);
    offset += static_cast<std::uint64_t>(got);
    auto left = static_cast<std::size_t>(got);
    for (; count > 0 && left >= at->iov_len; --count, ++at) left -= at->iov_len;
    if (count > 0) {
      at->iov_base = static_cast<std::byte*>(at->iov_base) + left;
      at->iov_len -= left;
    }
  }
}

// Below this many bytes an array is read on the caller's thread alone.
constexpr std::uint64_t kParallelReadBytes = std::uint64_t{16} << 20;

// Runs step(0) ... step(count - 1), each once, on `threads` threads (the caller's and
// threads - 1 more) that take the next step in turn. When steps fail, no step after the
// lowest failed one is started, and that one's exception is rethrown.
void each_lowest_error_first(std::uint64_t count, unsigned threads,
                             const std::function<void(std::uint64_t)>& step) {
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> lowest_failed{count};
  std::mutex mutex;
  std::exception_ptr error;
  auto work = [&] {
    for (std::uint64_t k = next++; k < lowest_failed.load(); k = next++) {
      try {
        step(k);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (k < lowest_failed.load()) {
          lowest_failed = k;
          error = std::current_exception();
        }
      }
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (unsigned t = 1; t < threads && t < count; ++t) helpers.emplace_back(work);
    work();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

bool read_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize, std::byte* data,
                             const Site& site) {
#ifndef QUIVER_H5_HAVE_CHUNK_INFO
  (void)ds, (void)shape, (void)esize, (void)data, (void)site;
  return false;
#else
  auto layout = row_chunks(ds, shape, esize, site);
  if (!layout) return false;
  const int fd = sec2_descriptor(ds, site);
  if (fd < 0) return false;
  const std::uint64_t total = shape_elements(shape) * esize;
  const std::uint64_t chunk_bytes = layout->chunk_bytes;
  // Every chunk must be stored whole and filtered, or HDF5's own path has to read it.
  std::vector<haddr_t> address(layout->count);
  std::vector<hsize_t> offset(shape.size(), 0);
  for (std::uint64_t k = 0; k < layout->count; ++k) {
    offset[0] = k * layout->dims[0];
    unsigned filters = 0;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(ds, offset.data(), &filters, &address[k], &size) < 0 ||
        filters != 0 || size != chunk_bytes + kChecksumBytes || address[k] == HADDR_UNDEF)
      return false;
  }
  // Each chunk is read piece after piece, straight into the array, and each piece is
  // checksummed while it is still in the cache. The last chunk, which is stored whole but may
  // hold fewer rows than the array has left, goes through a spare buffer.
  const Isa isa = fletcher32_best();
  auto read_chunk = [&](std::uint64_t k) {
    const std::uint64_t start = k * chunk_bytes;
    const bool whole = total - start >= chunk_bytes;
    std::vector<std::byte> spare(whole ? 0 : chunk_bytes);
    std::byte* dst = whole ? data + start : spare.data();
    FletcherSums sums;
    std::byte stored[kChecksumBytes];
    for (std::uint64_t at = 0; at < chunk_bytes; at += kReadPieceBytes) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(kReadPieceBytes, chunk_bytes - at));
      const bool last = at + n == chunk_bytes;
      read_exactly(fd, address[k] + at, dst + at, n, stored, last ? kChecksumBytes : 0, k, site);
      fletcher_add(sums, std::span(dst + at, n), isa);
    }
    if (!checksum_matches(fletcher_value(sums), get_le32(stored)))
      reject("array chunk " + std::to_string(k) + " (rows from " +
                 std::to_string(k * layout->dims[0]) + ") fails its fletcher32 checksum",
             site);
    if (!whole) std::memcpy(data + start, dst, total - start);
  };
  // Two threads take chunks in turn (without HDF5: the addresses are known), so that a free
  // core shares the copying and the checksums; on a busy machine the second one merely
  // waits its turn. An array of a few chunks is read on this thread alone.
  each_lowest_error_first(layout->count, total >= kParallelReadBytes ? 2 : 1, read_chunk);
  return true;
#endif
}

}  // namespace quiver::h5
