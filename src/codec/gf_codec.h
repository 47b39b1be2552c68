// SPDX-License-Identifier: Apache-2.0
// GF(2^8) codecs through ISA-L: raid5 (P), raid6 (P + Q as in Linux md) and Cauchy
// Reed-Solomon.
//
// Every code here is systematic with a (k + m) x k generator matrix G whose first k rows are
// the identity: chunk p = row p of G times the data. raid5 appends an all-ones row, raid6
// all-ones and {02}^i, rs the Cauchy rows of gf_gen_cauchy1_matrix. Encoding uses ISA-L's
// fastest kernel for the level (xor_gen, pq_gen, ec_encode_data). Decoding inverts the rows
// of k surviving positions and applies the result through ec_encode_data, or xor_gen when
// the decode row is all ones (raid5, and raid6 with one data chunk lost and P intact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "codec/codec.h"
#include "codec/decode_cache.h"

namespace ecraid {

class GfCodec final : public Codec {
public:
    // Requires k and m already checked against the level by Codec::create.
    GfCodec(Level level, uint32_t k, uint32_t m);

    void encode(const uint8_t* const* data, uint8_t* const* parity,
                size_t length) const override;
    Status reconstruct(uint8_t* const* chunks, const uint32_t* erased, uint32_t erased_count,
                       size_t length) const override;
    void update(uint32_t position, const uint8_t* old_data, const uint8_t* new_data,
                uint8_t* const* parity, size_t length) const override;
    bool verify(const uint8_t* const* chunks, size_t length, uint8_t* scratch) const override;

private:
    // Coefficient of data chunk `column` in codeword position `row`.
    uint8_t generator(uint32_t row, uint32_t column) const { return generator_[row * k_ + column]; }

    Result<const DecodePlan*> build_plan(DecodeCache* cache, uint64_t erased_mask) const;
    void run_plan(const DecodePlan& plan, uint8_t* const* chunks, size_t length) const;

    Level level_;
    uint64_t id_;                         // Key of this codec's plans in the decode caches.
    std::vector<uint8_t> generator_;      // G, (k + m) rows of k coefficients.
    std::vector<uint8_t> encode_tables_;  // ec_init_tables of G's m parity rows.
};

}  // namespace ecraid
