// SPDX-License-Identifier: Apache-2.0
#include "codec/gf_codec.h"

#include <isa-l/erasure_code.h>
#include <isa-l/raid.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "codec/codec_checks.h"
#include "common/vector_state.h"

namespace ecraid {
namespace {

// ec_init_tables expands every coefficient into 32 bytes of lookup tables.
constexpr size_t kTableBytesPerCoefficient = 32;

// update() XORs old and new data into a stack buffer of this size, piece by piece, so the
// delta stays in L1 while ISA-L folds it into the parity.
constexpr size_t kUpdatePieceBytes = 16 * 1024;

// Data pointers plus P and Q, the most any xor_gen or pq_gen call here takes.
constexpr uint32_t kVectorsMax = kDecodeSourcesMax + 2;

std::vector<uint8_t> make_generator(Level level, uint32_t k, uint32_t m) {
    std::vector<uint8_t> generator(size_t{k + m} * k, 0);
    if (level == Level::kRs) {
        gf_gen_cauchy1_matrix(generator.data(), static_cast<int>(k + m), static_cast<int>(k));
        return generator;
    }

    for (uint32_t i = 0; i < k; ++i) generator[i * k + i] = 1;
    for (uint32_t j = 0; j < k; ++j) generator[k * k + j] = 1;  // P
    if (level == Level::kRaid6) {
        // Q gives data position j the coefficient {02}^j, as md's RAID-6 syndrome does.
        uint8_t power = 1;
        for (uint32_t j = 0; j < k; ++j) {
            generator[(k + 1) * k + j] = power;
            power = gf_mul(power, 2);
        }
    }
    return generator;
}

std::string list_positions(uint64_t mask) {
    std::string text;
    for (uint32_t p = 0; p < 64; ++p) {
        if ((mask >> p & 1) == 0) continue;
        if (!text.empty()) text += ", ";
        text += std::to_string(p);
    }
    return text;
}

}  // namespace

GfCodec::GfCodec(Level level, uint32_t k, uint32_t m)
    : Codec(k, m),
      level_(level),
      id_(next_codec_id()),
      generator_(make_generator(level, k, m)),
      encode_tables_(kTableBytesPerCoefficient * k * m) {
    assert(k >= 1);
    assert(k <= kDecodeSourcesMax);
    assert(m >= 1);
    assert(m <= kDecodeOutputsMax);
    ec_init_tables(static_cast<int>(k), static_cast<int>(m), &generator_[size_t{k} * k],
                   encode_tables_.data());
}

void GfCodec::encode(const uint8_t* const* data, uint8_t* const* parity, size_t length) const {
    for (uint32_t i = 0; i < k_; ++i) assert_codec_buffer(data[i], length);
    for (uint32_t i = 0; i < m_; ++i) assert_codec_buffer(parity[i], length);

    // ISA-L takes non-const pointers but only reads the data.
    int len = static_cast<int>(length);
    void* vectors[kVectorsMax];
    for (uint32_t i = 0; i < k_; ++i) vectors[i] = const_cast<uint8_t*>(data[i]);
    [[maybe_unused]] int result = 0;
    switch (level_) {
        case Level::kRaid5:
            vectors[k_] = parity[0];
            result = xor_gen(static_cast<int>(k_ + 1), len, vectors);
            break;
        case Level::kRaid6:
            vectors[k_] = parity[0];
            vectors[k_ + 1] = parity[1];
            result = pq_gen(static_cast<int>(k_ + 2), len, vectors);
            break;
        default:
            ec_encode_data(len, static_cast<int>(k_), static_cast<int>(m_),
                           const_cast<uint8_t*>(encode_tables_.data()),
                           const_cast<uint8_t**>(data), const_cast<uint8_t**>(parity));
            break;
    }
    assert(result == 0);
    clear_upper_vector_state();
}

Status GfCodec::reconstruct(uint8_t* const* chunks, const uint32_t* erased,
                            uint32_t erased_count, size_t length) const {
    Result<uint64_t> erased_mask = erasure_mask(k_, m_, erased, erased_count);
    if (!erased_mask.ok()) return erased_mask.status();
    if (*erased_mask == 0) return Status::ok_status();
    for (uint32_t p = 0; p < k_ + m_; ++p) assert_codec_buffer(chunks[p], length);

    DecodeCache& cache = DecodeCache::for_this_thread();
    const DecodePlan* plan = cache.find(id_, *erased_mask);
    if (plan == nullptr) {
        Result<const DecodePlan*> built = build_plan(&cache, *erased_mask);
        if (!built.ok()) return built.status();
        plan = *built;
    }

    run_plan(*plan, chunks, length);
    clear_upper_vector_state();
    return Status::ok_status();
}

// Chooses the first k surviving positions as sources, inverts their rows of G and multiplies
// each erased position's row of G by the inverse, giving its coefficients over the sources.
Result<const DecodePlan*> GfCodec::build_plan(DecodeCache* cache, uint64_t erased_mask) const {
    uint8_t sources[kDecodeSourcesMax];
    uint8_t outputs[kDecodeOutputsMax];
    uint32_t source_count = 0;
    uint32_t output_count = 0;
    for (uint32_t p = 0; p < k_ + m_; ++p) {
        if ((erased_mask >> p & 1) != 0) {
            outputs[output_count++] = static_cast<uint8_t>(p);
        } else if (source_count < k_) {
            sources[source_count++] = static_cast<uint8_t>(p);
        }
    }
    assert(source_count == k_);
    assert(output_count >= 1);
    assert(output_count <= m_);

    // With every data chunk present the sources are the data itself and the inverse is I.
    bool data_erased = outputs[0] < k_;
    uint8_t inverse[kDecodeSourcesMax * kDecodeSourcesMax] = {};
    if (data_erased) {
        uint8_t source_rows[kDecodeSourcesMax * kDecodeSourcesMax];
        for (uint32_t i = 0; i < k_; ++i) {
            std::memcpy(&source_rows[i * k_], &generator_[sources[i] * k_], k_);
        }
        if (gf_invert_matrix(source_rows, inverse, static_cast<int>(k_)) != 0) {
            return Status::error(Code::kCorruption,
                                 fmt::format("{} {}+{} decode matrix for erased positions {} "
                                             "is singular, which means the generator matrix "
                                             "is wrong",
                                             level_name(level_), k_, m_,
                                             list_positions(erased_mask)));
        }
    } else {
        for (uint32_t i = 0; i < k_; ++i) inverse[i * k_ + i] = 1;
    }

    uint8_t decode_rows[kDecodeOutputsMax * kDecodeSourcesMax];
    for (uint32_t o = 0; o < output_count; ++o) {
        for (uint32_t j = 0; j < k_; ++j) {
            uint8_t sum = 0;
            for (uint32_t t = 0; t < k_; ++t) {
                sum ^= gf_mul(generator(outputs[o], t), inverse[t * k_ + j]);
            }
            decode_rows[o * k_ + j] = sum;
        }
    }

    DecodeMethod method = DecodeMethod::kMatrix;
    bool all_ones = std::all_of(decode_rows, decode_rows + k_, [](uint8_t c) { return c == 1; });
    if (output_count == 1 && all_ones && k_ >= 2) {
        method = DecodeMethod::kXor;  // xor_gen needs at least two sources.
    } else if (level_ == Level::kRaid6 && !data_erased && output_count == 2) {
        method = DecodeMethod::kPq;
    }

    size_t table_bytes = 0;
    if (method == DecodeMethod::kMatrix) {
        table_bytes = kTableBytesPerCoefficient * k_ * output_count;
    }
    DecodePlan* plan = cache->claim(id_, erased_mask, table_bytes);
    plan->method = method;
    plan->source_count = source_count;
    plan->output_count = output_count;
    std::copy(sources, sources + source_count, plan->sources);
    std::copy(outputs, outputs + output_count, plan->outputs);
    if (method == DecodeMethod::kMatrix) {
        ec_init_tables(static_cast<int>(k_), static_cast<int>(output_count), decode_rows,
                       plan->tables.get());
    }
    plan->codec_id = id_;
    plan->erased_mask = erased_mask;
    return plan;
}

void GfCodec::run_plan(const DecodePlan& plan, uint8_t* const* chunks, size_t length) const {
    int len = static_cast<int>(length);
    [[maybe_unused]] int result = 0;
    switch (plan.method) {
        case DecodeMethod::kXor: {
            void* vectors[kVectorsMax];
            for (uint32_t i = 0; i < k_; ++i) vectors[i] = chunks[plan.sources[i]];
            vectors[k_] = chunks[plan.outputs[0]];
            result = xor_gen(static_cast<int>(k_ + 1), len, vectors);
            break;
        }
        case DecodeMethod::kPq: {
            void* vectors[kVectorsMax];
            std::copy(chunks, chunks + k_ + 2, vectors);
            result = pq_gen(static_cast<int>(k_ + 2), len, vectors);
            break;
        }
        case DecodeMethod::kMatrix: {
            uint8_t* sources[kDecodeSourcesMax];
            uint8_t* outputs[kDecodeOutputsMax];
            for (uint32_t i = 0; i < k_; ++i) sources[i] = chunks[plan.sources[i]];
            for (uint32_t o = 0; o < plan.output_count; ++o) outputs[o] = chunks[plan.outputs[o]];
            ec_encode_data(len, static_cast<int>(k_), static_cast<int>(plan.output_count),
                           plan.tables.get(), sources, outputs);
            break;
        }
    }
    assert(result == 0);
}

void GfCodec::update(uint32_t position, const uint8_t* old_data, const uint8_t* new_data,
                     uint8_t* const* parity, size_t length) const {
    assert(position < k_);
    assert_codec_buffer(old_data, length);
    assert_codec_buffer(new_data, length);
    for (uint32_t i = 0; i < m_; ++i) assert_codec_buffer(parity[i], length);

    // parity_i += G[k + i][position] * (old + new), because addition in GF(2^8) is XOR and
    // ec_encode_data_update adds its product into the parity.
    alignas(kCodecAlignmentBytes) uint8_t delta[kUpdatePieceBytes];
    uint8_t* parity_pieces[kDecodeOutputsMax];
    for (size_t offset = 0; offset < length; offset += kUpdatePieceBytes) {
        int piece = static_cast<int>(std::min(kUpdatePieceBytes, length - offset));
        void* xor_vectors[3] = {const_cast<uint8_t*>(old_data + offset),
                                const_cast<uint8_t*>(new_data + offset), delta};
        [[maybe_unused]] int result = xor_gen(3, piece, xor_vectors);
        assert(result == 0);

        for (uint32_t i = 0; i < m_; ++i) parity_pieces[i] = parity[i] + offset;
        ec_encode_data_update(piece, static_cast<int>(k_), static_cast<int>(m_),
                              static_cast<int>(position),
                              const_cast<uint8_t*>(encode_tables_.data()), delta,
                              parity_pieces);
    }
    clear_upper_vector_state();
}

bool GfCodec::verify(const uint8_t* const* chunks, size_t length, uint8_t* scratch) const {
    uint8_t* recomputed[kDecodeOutputsMax];
    for (uint32_t i = 0; i < m_; ++i) recomputed[i] = scratch + i * length;
    encode(chunks, recomputed, length);

    for (uint32_t i = 0; i < m_; ++i) {
        if (std::memcmp(recomputed[i], chunks[k_ + i], length) != 0) return false;
    }
    return true;
}

}  // namespace ecraid
