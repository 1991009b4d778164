#include <algorithm>
#include <bit>
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
bool checksum_matches(std::span<const std::byte> chunk, std::uint32_t stored) {
  std::uint32_t sum = fletcher32(chunk);
  std::uint32_t swapped = ((sum & 0x00ff00ffu) << 8) | ((sum >> 8) & 0x00ff00ffu);
  return stored == sum || stored == swapped;
}

// Runs step(0), step(1), ... step(count - 1) on a second thread, in order, each once the
// caller has allowed it, so that checksumming one chunk overlaps HDF5's I/O of another (the
// HDF5 calls stay on the caller's thread, which holds the HDF5 lock); finish() lets the caller
// take a share of the steps left. The exception of the lowest failed step is kept and rethrown
// to the caller; destruction stops the thread and joins it.
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

  /// Waits until the steps below n are done (before finish() only); rethrows a failure.
  void wait(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return completed_ >= n || error_; });
    if (error_) std::rethrow_exception(error_);
  }

  /// Rethrows the exception of a failed step, if any, without waiting.
  void rethrow_if_failed() {
    std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
  }

  /// Allows every step, runs steps not yet taken on this thread too, and waits until all are
  /// done; rethrows the exception of the lowest failed step.
  void finish() {
    std::unique_lock lock(mutex_);
    allowed_ = count_;
    changed_.notify_all();
    while (next_ < count_ && !error_) run_next(lock);
    changed_.wait(lock, [&] { return completed_ == next_; });
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
    if (error && (!error_ || i < error_step_)) {
      error_ = error;
      error_step_ = i;
    }
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
  std::exception_ptr error_;     // of the lowest failed step so far
  std::uint64_t error_step_ = 0;
  std::jthread thread_;  // last: stopped and joined before the members above go
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

[[gnu::target("avx2")]] const unsigned char* fletcher_blocks_avx2(const unsigned char* p,
                                                                  std::size_t nbytes,
                                                                  FletcherSums& sums) {
  constexpr std::size_t kBytes = 32;
  const __m256i flip = _mm256_set1_epi16(std::int16_t{-32768}), ones = _mm256_set1_epi16(1);
  const __m256i place = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m256i any = _mm256_setzero_si256();
  for (std::size_t nblocks = nbytes / (kMaddSteps * kBytes); nblocks > 0; --nblocks) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a;
    for (std::size_t k = 0; k < kMaddSteps; ++k, p += kBytes) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      any = _mm256_or_si256(any, x);
      const __m256i u = _mm256_xor_si256(x, flip);
      a = _mm256_add_epi32(a, _mm256_madd_epi16(u, ones));
      b = _mm256_add_epi32(b, a);
      c = _mm256_add_epi32(c, _mm256_madd_epi16(u, place));
    }
    add_madd_block(sums, kBytes / 2, lane_sum(a), lane_sum(b), lane_sum(c));
  }
  sums.any |= any_bit(any);
  return p;
}

[[gnu::target("avx512bw")]] const unsigned char* fletcher_blocks_avx512(const unsigned char* p,
                                                                        std::size_t nbytes,
                                                                        FletcherSums& sums) {
  constexpr std::size_t kBytes = 64;
  const __m512i flip = _mm512_set1_epi16(std::int16_t{-32768}), ones = _mm512_set1_epi16(1);
  const __m512i place = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                         16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512i any = _mm512_setzero_si512();
  for (std::size_t nblocks = nbytes / (kMaddSteps * kBytes); nblocks > 0; --nblocks) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a;
    for (std::size_t k = 0; k < kMaddSteps; ++k, p += kBytes) {
      const __m512i x = _mm512_loadu_si512(p);
      any = _mm512_or_si512(any, x);
      const __m512i u = _mm512_xor_si512(x, flip);
      a = _mm512_add_epi32(a, _mm512_madd_epi16(u, ones));
      b = _mm512_add_epi32(b, a);
      c = _mm512_add_epi32(c, _mm512_madd_epi16(u, place));
    }
    add_madd_block(sums, kBytes / 2, lane_sum(a), lane_sum(b), lane_sum(c));
  }
  sums.any |= any_bit(any);
  return p;
}
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

std::uint32_t fletcher32(std::span<const std::byte> data, Isa isa) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const auto* end = p + data.size();
  FletcherSums sums;
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
  const auto tail = static_cast<std::size_t>(end - p);
  std::uint64_t s1 = sums.s1, s2 = sums.s2, any = sums.any;
  for (std::size_t words = tail / 2; words > 0; --words, p += 2) {
    std::uint32_t w = (std::uint32_t{p[0]} << 8) | p[1];
    s1 = (s1 + w) % 65535;
    s2 = (s2 + s1) % 65535;
    any |= w;
  }
  if (tail % 2) {
    std::uint32_t w = std::uint32_t{p[0]} << 8;
    s1 = (s1 + w) % 65535;
    s2 = (s2 + s1) % 65535;
    any |= w;
  }
  // HDF5 reduces modulo 65535 with end-around carries, which never turns a non-zero sum into
  // 0: its result is the sum mod 65535, written 0xffff rather than 0 unless every word is zero.
  if (any == 0) return 0;
  if (s1 == 0) s1 = 65535;
  if (s2 == 0) s2 = 65535;
  return static_cast<std::uint32_t>((s2 << 16) | s1);
}

std::uint32_t fletcher32(std::span<const std::byte> data) noexcept {
  static const Isa best = fletcher32_supports(Isa::avx512) ? Isa::avx512
                          : fletcher32_supports(Isa::avx2) ? Isa::avx2
                                                           : Isa::baseline;
  return fletcher32(data, best);
}

bool write_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize,
                              const std::byte* data, const Site& site) {
  auto layout = row_chunks(ds, shape, esize, site);
  if (!layout) return false;
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

bool read_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize, std::byte* data,
                             const Site& site) {
  auto layout = row_chunks(ds, shape, esize, site);
  if (!layout) return false;
  const std::uint64_t total = shape_elements(shape) * esize;
  const std::uint64_t stored_bytes = layout->chunk_bytes + kChecksumBytes;
  std::vector<hsize_t> offset(shape.size(), 0);
  // Every chunk must be stored whole and filtered, or HDF5's own path has to read it.
  for (std::uint64_t k = 0; k < layout->count; ++k) {
    offset[0] = k * layout->dims[0];
    hsize_t size = 0;
    if (H5Dget_chunk_storage_size(ds, offset.data(), &size) < 0 || size != stored_bytes)
      return false;
  }
  // This thread reads chunk after chunk; a second one verifies each chunk read so far. The
  // stored checksums are kept aside, as a chunk read in place has its checksum overwritten by
  // the next chunk.
  std::vector<std::uint32_t> stored(layout->count);
  // A chunk lands straight in the array when the array has room for its checksum too: the 4
  // bytes spill into the next chunk's place, which the next read overwrites. The last chunks
  // (any within 4 bytes of the end) go through a spare buffer and are verified here.
  auto in_place = [&](std::uint64_t k) { return total - k * layout->chunk_bytes >= stored_bytes; };
  auto verify = [&](std::uint64_t k, const std::byte* chunk) {
    if (!checksum_matches(std::span(chunk, layout->chunk_bytes), stored[k]))
      reject("array chunk " + std::to_string(k) + " (rows from " +
                 std::to_string(k * layout->dims[0]) + ") fails its fletcher32 checksum",
             site);
  };
  std::vector<std::byte> spare;
  std::optional<Pipeline> verifier;
  if (layout->count > 1)
    verifier.emplace(layout->count, [&](std::uint64_t k) {
      if (in_place(k)) verify(k, data + k * layout->chunk_bytes);
    });
  for (std::uint64_t k = 0; k < layout->count; ++k) {
    if (verifier) verifier->rethrow_if_failed();  // stop at the first corrupt chunk
    const std::uint64_t start = k * layout->chunk_bytes;
    if (!in_place(k) && spare.empty()) spare.resize(stored_bytes);
    std::byte* dst = in_place(k) ? data + start : spare.data();
    offset[0] = k * layout->dims[0];
    std::uint32_t filters = 0;
    check(H5Dread_chunk(ds, H5P_DEFAULT, offset.data(), &filters, dst), "H5Dread_chunk", site);
    // Chunks before k are reported first: they are verified (and fail) before chunk k.
    if (verifier && (filters != 0 || !in_place(k))) verifier->wait(k);
    if (filters != 0)
      reject("array chunk " + std::to_string(k) + " is stored with its filters skipped", site);
    stored[k] = get_le32(dst + layout->chunk_bytes);
    if (!in_place(k)) {
      verify(k, dst);
      std::memcpy(data + start, dst, std::min(layout->chunk_bytes, total - start));
    } else if (!verifier) {
      verify(k, dst);
    }
    if (verifier) verifier->allow(k + 1);
  }
  if (verifier) verifier->finish();  // this thread verifies its share of what is left
  return true;
}

}  // namespace quiver::h5
