// SPDX-License-Identifier: Apache-2.0
// Codec: parity and reconstruction for one codeword (one group of one stripe) through ISA-L.
//
// A codeword has k data chunks and m parity chunks, positions 0..k-1 and k..k+m-1 as in
// Geometry. The math is GF(2^8) with polynomial 0x11d throughout:
//   raid5   m = 1, P = XOR of the data (xor_gen).
//   raid6   m = 2, P = XOR, Q = sum of g^i * D_i with g = {02}, bit-identical to Linux md's
//           RAID-6 Q syndrome (pq_gen).
//   rs      any k + m, a Cauchy generator (gf_gen_cauchy1_matrix), so every square
//           sub-matrix is invertible and every erasure pattern of up to m chunks decodes.
//   raid1 / raid10   copies: every parity chunk equals the single data chunk.
// Every code maps all-zero data to all-zero parity.
//
// Buffers: every pointer is 64-byte aligned and `length` is a positive multiple of 64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "layout/geometry.h"

namespace ecraid {

class Codec {
public:
    // Requires a level with parity (not raid0). k and m as in Geometry: 1 <= k <= 32,
    // 1 <= m <= 8 for rs; m = 1 for raid5; m = 2 for raid6; k = 1 for raid1 and raid10.
    static Result<std::unique_ptr<Codec>> create(Level level, uint32_t k, uint32_t m);
    virtual ~Codec() = default;

    uint32_t data_count() const { return k_; }
    uint32_t parity_count() const { return m_; }

    // Computes parity[0..m-1] from data[0..k-1].
    virtual void encode(const uint8_t* const* data, uint8_t* const* parity,
                        size_t length) const = 0;

    // Rebuilds the chunks at positions `erased` (up to m of them, distinct, each < k + m)
    // in place from the other positions of `chunks` (k + m pointers). Returns kUnavailable
    // when more than m positions are erased, kInvalidArgument for a position >= k + m or one
    // listed twice, and kCorruption if the decode matrix is singular (never expected with the
    // generators used here, but never ignored).
    virtual Status reconstruct(uint8_t* const* chunks, const uint32_t* erased,
                               uint32_t erased_count, size_t length) const = 0;

    // Read-modify-write: the data chunk at `position` changes from old_data to new_data;
    // updates parity[0..m-1] in place.
    virtual void update(uint32_t position, const uint8_t* old_data, const uint8_t* new_data,
                        uint8_t* const* parity, size_t length) const = 0;

    // True when the parity chunks match the data chunks. `scratch` holds m * length bytes.
    virtual bool verify(const uint8_t* const* chunks, size_t length, uint8_t* scratch) const = 0;

protected:
    Codec(uint32_t k, uint32_t m) : k_(k), m_(m) {}
    uint32_t k_;
    uint32_t m_;
};

}  // namespace ecraid
