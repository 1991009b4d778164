// Direct chunk I/O for checksummed arrays (internal header). HDF5's fletcher32 filter copies
// every chunk through two freshly allocated buffers and checksums it byte by byte; for the
// common layout (chunks that split only the outermost dimension, fletcher32 the only filter)
// quiver writes the filtered chunks itself with H5Dwrite_chunk, and reads them with pread at the
// addresses HDF5 gives, checksumming each piece as it arrives. The bytes on disk are exactly
// what the filter would have written, so h5dump and h5py read them and verify the checksum as
// usual.
#pragma once

#include <cstddef>
#include <cstdint>
#include <quiver/core/value.hpp>
#include <quiver/store/h5.hpp>
#include <span>

namespace quiver::h5 {

/// Instruction sets fletcher32 has a kernel for (avx512: AVX-512BW).
enum class Isa { baseline, avx2, avx512 };

/// Whether this machine (and build) runs the given fletcher32 kernel; baseline needs a
/// little-endian machine, without which fletcher32 goes word by word.
bool fletcher32_supports(Isa isa) noexcept;

/// HDF5's fletcher32 checksum of data (H5_checksum_fletcher32: big-endian 16-bit words, sums
/// starting at 0, an odd last byte as the high byte of a word), computed in vector blocks with
/// the best kernel this machine supports.
std::uint32_t fletcher32(std::span<const std::byte> data) noexcept;

/// The same checksum with the given kernel, which must be supported (see fletcher32_supports).
std::uint32_t fletcher32(std::span<const std::byte> data, Isa isa) noexcept;

/// Writes the nbytes of data (C order, shape of dataset ds) as whole filtered chunks when ds
/// is chunked along its outermost dimension only with fletcher32 as its only filter; returns
/// false, having written nothing, when ds has another layout. durable: the file will be
/// fsynced, so each chunk starts for the disk as soon as it is written (fs::Writeback). Use
/// with a Lock held.
bool write_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize,
                              const std::byte* data, bool durable, const Site& site);

/// Reads dataset ds (file type equal to the memory type, shape as given) into data the way
/// write_checksummed_chunks stores it, verifying every chunk's checksum (a mismatch throws
/// the Site's error naming the lowest failing chunk; data may then hold part of the array);
/// returns false, having read nothing, when ds has another layout or filters, a chunk stored
/// without its filter, or a file driver other than HDF5's default. Arrays of 16 MiB or more
/// are read by two threads. Use with a Lock held.
bool read_checksummed_chunks(hid_t ds, const Shape& shape, std::size_t esize, std::byte* data,
                             const Site& site);

}  // namespace quiver::h5
