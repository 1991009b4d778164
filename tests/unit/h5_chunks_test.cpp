// Direct chunk I/O: the checksum equals HDF5's, and chunks written either way read either way.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <quiver/core/errors.hpp>
#include <quiver/store/h5_chunks.hpp>
#include <random>
#include <sstream>
#include <vector>

#include "testing/testing.hpp"

namespace quiver::h5 {
namespace {

using ::testing::HasSubstr;

// HDF5's H5_checksum_fletcher32, word by word, as its sources write it.
std::uint32_t reference_fletcher32(const std::vector<std::byte>& bytes) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t len = bytes.size() / 2;
  std::uint32_t sum1 = 0, sum2 = 0;
  while (len) {
    std::size_t tlen = len > 360 ? 360 : len;
    len -= tlen;
    do {
      sum1 += static_cast<std::uint32_t>((data[0] << 8) | data[1]);
      data += 2;
      sum2 += sum1;
    } while (--tlen);
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (bytes.size() % 2) {
    sum1 += static_cast<std::uint32_t>(data[0] << 8);
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

std::vector<std::byte> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(gen());
  return v;
}

// Every kernel this machine runs; the baseline one runs on every little-endian machine.
std::vector<Isa> kernels() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::baseline, Isa::avx2, Isa::avx512})
    if (fletcher32_supports(isa)) isas.push_back(isa);
  return isas;
}

TEST(Fletcher32, EveryKernelMatchesHdf5OnRandomDataOfManyLengths) {
  // Lengths around the vector blocks (4 KiB for AVX2, 8 KiB for the others): whole blocks, a
  // block and a word or a byte more.
  const std::size_t block = 8192, half = block / 2;
  for (std::size_t n :
       {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{511}, std::size_t{720},
        std::size_t{721}, half - 1, half, half + 1, half + 2, block - 1, block, block + 1,
        block + 2, 3 * half + 5, 3 * block + 5, std::size_t{100001}, std::size_t{1} << 20}) {
    auto data = random_bytes(n, static_cast<std::uint32_t>(n));
    const auto expected = reference_fletcher32(data);
    EXPECT_EQ(fletcher32(data), expected) << n << " bytes";
    for (Isa isa : kernels())
      EXPECT_EQ(fletcher32(data, isa), expected) << n << " bytes, kernel " << int(isa);
  }
}

TEST(Fletcher32, EveryKernelMatchesHdf5WhereTheSumsAreMultiplesOf65535) {
  // All zero (sums 0), all 0xff (every word 65535 = 0 mod 65535, and the largest lane sums)
  // and one word of 0xffff: the edge cases of the end-around-carry representation.
  for (std::size_t n : {2u, 512u, 1000u, 1u << 16, (1u << 16) + 6}) {
    std::vector<std::byte> zeros(n, std::byte{0}), ones(n, std::byte{0xff});
    auto one_word = zeros;
    one_word[n / 2] = one_word[n / 2 + 1 < n ? n / 2 + 1 : n / 2] = std::byte{0xff};
    for (const auto* data : {&zeros, &ones, &one_word}) {
      EXPECT_EQ(fletcher32(*data), reference_fletcher32(*data)) << n;
      for (Isa isa : kernels())
        EXPECT_EQ(fletcher32(*data, isa), reference_fletcher32(*data)) << n << " " << int(isa);
    }
  }
  EXPECT_EQ(fletcher32(std::vector<std::byte>(1000, std::byte{0})), 0u);
}

class ChunkFile : public ::testing::Test {
 protected:
  // A dataset of shape, chunked by rows of chunk_rows, with fletcher32 when checksum.
  Handle create(const Shape& shape, hsize_t chunk_rows, bool checksum = true,
                const char* name = "a") {
    std::vector<hsize_t> dims(shape.begin(), shape.end()), chunk = dims;
    chunk[0] = chunk_rows;
    auto space = own(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                     "H5Screate_simple", site);
    auto dcpl = own(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", site);
    check(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk",
          site);
    if (checksum) check(H5Pset_fletcher32(dcpl.id()), "H5Pset_fletcher32", site);
    return own(
        H5Dcreate2(file.id(), name, H5T_STD_U16LE, space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
        "H5Dcreate2", site);
  }

  testing::TempDir dir;
  Site site{(dir.path() / "chunks.h5").string(), Fault::corrupt_entry};
  Lock lock;
  Handle file = create_file(site.path, site);
};

TEST_F(ChunkFile, DirectWritesReadBackThroughHdf5sOwnFilter) {
  const Shape shape{1001, 3};  // 10 chunks of 100 rows and a partial one
  auto data = random_bytes(1001 * 3 * 2, 7);
  // durable: written chunks also start for the disk early (fs::Writeback).
  for (const bool durable : {false, true}) {
    auto ds = create(shape, 100, true, durable ? "durable" : "data");
    ASSERT_TRUE(write_checksummed_chunks(ds.id(), shape, 2, data.data(), durable, site));
    std::vector<std::byte> back(data.size());
    check(H5Dread(ds.id(), H5T_STD_U16LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), "H5Dread",
          site);
    EXPECT_EQ(back, data) << "durable " << durable;
  }
}

TEST_F(ChunkFile, DurableWritesOfManySpansReadBack) {
  // 40 chunks of 1 MiB, the last one partial: five 8 MiB spans handed to the disk early.
  const hsize_t rows = 512 * 1024;  // 1 MiB of uint16
  const Shape shape{40 * rows - 3};
  auto data = random_bytes(shape[0] * 2, 12);
  auto ds = create(shape, rows);
  ASSERT_TRUE(write_checksummed_chunks(ds.id(), shape, 2, data.data(), true, site));
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(read_checksummed_chunks(ds.id(), shape, 2, back.data(), site));
  EXPECT_EQ(back, data);
}

TEST_F(ChunkFile, Hdf5sFilteredWritesReadDirectly) {
  const Shape shape{999, 2};
  auto data = random_bytes(999 * 2 * 2, 8);
  auto ds = create(shape, 64);
  check(H5Dwrite(ds.id(), H5T_STD_U16LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), "H5Dwrite",
        site);
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(read_checksummed_chunks(ds.id(), shape, 2, back.data(), site));
  EXPECT_EQ(back, data);
}

TEST_F(ChunkFile, ManyChunksRoundTripWhileASecondThreadChecksums) {
  // 1000 chunks: saving checksums on a second thread while this one writes. The last chunk
  // holds one element, 2 bytes, of its 100 rows: it is read through a spare buffer.
  const Shape shape{99'901};
  auto data = random_bytes(99'901 * 2, 10);
  auto ds = create(shape, 100);
  ASSERT_TRUE(write_checksummed_chunks(ds.id(), shape, 2, data.data(), false, site));
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(read_checksummed_chunks(ds.id(), shape, 2, back.data(), site));
  EXPECT_EQ(back, data);
  check(H5Dread(ds.id(), H5T_STD_U16LE, H5S_ALL, H5S_ALL, H5P_DEFAULT, back.data()), "H5Dread",
        site);
  EXPECT_EQ(back, data);
}

TEST_F(ChunkFile, ChunksOfAMebibyteOrMoreStartOnAPageOfTheFile) {
  // Four chunks of 1 MiB (each stored with its 4-byte checksum, so that without alignment
  // every chunk after the first would start 4 bytes further into a page), and a small
  // dataset before them so that the first does not start on a page by chance either.
  auto small = create({10}, 10, true, "small");
  const hsize_t rows = kAlignThreshold / 2;
  const Shape shape{3 * rows + 7};
  auto data = random_bytes(shape[0] * 2, 11);
  auto ds = create(shape, rows);
  ASSERT_TRUE(write_checksummed_chunks(ds.id(), shape, 2, data.data(), false, site));
  for (hsize_t k = 0; k < 4; ++k) {
    hsize_t offset[1] = {k * rows}, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    check(H5Dget_chunk_info_by_coord(ds.id(), offset, &mask, &addr, &size),
          "H5Dget_chunk_info_by_coord", site);
    EXPECT_EQ(size, kAlignThreshold + 4) << "chunk " << k;
    EXPECT_EQ(addr % kAlignment, 0u) << "chunk " << k << " at " << addr;
  }
  std::vector<std::byte> back(data.size());
  ASSERT_TRUE(read_checksummed_chunks(ds.id(), shape, 2, back.data(), site));
  EXPECT_EQ(back, data);
}

TEST_F(ChunkFile, OtherLayoutsAreLeftToHdf5) {
  const Shape shape{100, 4};
  auto data = random_bytes(100 * 4 * 2, 9);
  auto plain = create(shape, 10, /*checksum=*/false);
  EXPECT_FALSE(write_checksummed_chunks(plain.id(), shape, 2, data.data(), false, site));
  EXPECT_FALSE(read_checksummed_chunks(plain.id(), shape, 2, data.data(), site));
}

// Writes `chunks` chunks of 100 rows of 0x11 bytes, then changes one byte inside each chunk
// listed in `corrupt` (found as the runs of 0x11 bytes in the file, in order); returns the
// error reading the dataset back reports, or "" when it reports none.
class CorruptChunkFile : public ChunkFile {
 protected:
  std::string read_with_corrupt_chunks(std::uint64_t chunks, std::vector<std::uint64_t> corrupt,
                                       std::uint64_t rows = 100, std::size_t byte = 10) {
    const Shape shape{chunks * rows};
    const std::size_t chunk_bytes = rows * 2;
    std::vector<std::byte> data(chunks * chunk_bytes, std::byte{0x11});
    {
      auto ds = create(shape, rows);
      EXPECT_TRUE(write_checksummed_chunks(ds.id(), shape, 2, data.data(), false, site));
    }
    close(file, site);
    {
      std::ostringstream read;
      read << std::ifstream(site.path, std::ios::binary).rdbuf();
      const std::string content = read.str();
      std::fstream f(site.path, std::ios::in | std::ios::out | std::ios::binary);
      std::size_t at = 0;
      for (std::uint64_t k = 0; k < chunks; ++k, at += chunk_bytes) {
        at = content.find(std::string(chunk_bytes, '\x11'), at);
        EXPECT_NE(at, std::string::npos) << "chunk " << k << " not found";
        if (at == std::string::npos) return "";
        if (std::find(corrupt.begin(), corrupt.end(), k) == corrupt.end()) continue;
        f.seekp(static_cast<std::streamoff>(at + byte));
        f.put('\x13');
      }
    }
    auto reopened = open_file(site.path, site);
    auto ds = own(H5Dopen2(reopened.id(), "a", H5P_DEFAULT), "H5Dopen2", site);
    std::vector<std::byte> back(data.size());
    try {
      read_checksummed_chunks(ds.id(), shape, 2, back.data(), site);
    } catch (const CorruptEntry& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(CorruptChunkFile, ACorruptChunkIsReportedWithItsPosition) {
  EXPECT_THAT(read_with_corrupt_chunks(3, {1}), HasSubstr("chunk 1 (rows from 100)"));
}

TEST_F(CorruptChunkFile, TheFirstOfSeveralCorruptChunksIsReported) {
  EXPECT_THAT(read_with_corrupt_chunks(40, {7, 38, 39}), HasSubstr("chunk 7 (rows from 700)"));
}

TEST_F(CorruptChunkFile, TheFirstOfSeveralCorruptChunksIsReportedWhenTwoThreadsRead) {
  // 20 MiB in chunks of 1 MiB: two threads take the chunks in turn.
  EXPECT_THAT(read_with_corrupt_chunks(20, {7, 15, 19}, 512 * 1024, 100),
              HasSubstr("chunk 7 (rows from 3670016)"));
}

TEST_F(CorruptChunkFile, ACorruptLastChunkIsReported) {
  EXPECT_THAT(read_with_corrupt_chunks(5, {4}), HasSubstr("chunk 4 (rows from 400)"));
}

TEST_F(CorruptChunkFile, AByteCorruptInTheLastPieceOfALargeChunkIsFound) {
  // Chunks of 600,000 bytes are read and summed in pieces of 256 KiB; the byte changed lies in
  // the third piece of the second chunk.
  EXPECT_THAT(read_with_corrupt_chunks(3, {1}, 300'000, 590'000),
              HasSubstr("chunk 1 (rows from 300000)"));
}

}  // namespace
}  // namespace quiver::h5
