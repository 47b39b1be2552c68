// SPDX-License-Identifier: Apache-2.0
// Decode plans, cached per thread and per erasure pattern.
//
// Building a plan inverts a k x k matrix (work grows as k^3) and expands ISA-L tables. For
// rs 10+4 with four erasures of 4 KiB chunks, a decode that builds its plan took about three
// times as long as one that finds it cached (Decode/rs_10+4_4KiB in bench/codec_bench.cc,
// figures in docs/benchmarks.md). Each thread keeps its own bounded cache, so a lookup takes
// no lock. Slots keep their table buffers when reused, so once a thread has seen its patterns
// a decode allocates nothing. A slot's buffer is allocated or grown only while a plan is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace ecraid {

// Largest k a GF(2^8) codec takes (raid5 on kMemberCountMax members) and largest m.
inline constexpr uint32_t kDecodeSourcesMax = 63;
inline constexpr uint32_t kDecodeOutputsMax = 8;

enum class DecodeMethod : uint8_t {
    kXor,     // One output, the XOR of the sources (xor_gen).
    kPq,      // raid6 with both parity chunks lost and all data present (pq_gen).
    kMatrix,  // GF(2^8) dot products through ISA-L tables (ec_encode_data).
};

struct DecodePlan {
    uint64_t codec_id = 0;  // 0 marks an empty slot.
    uint64_t erased_mask = 0;  // Bit p set when position p is rebuilt.
    DecodeMethod method = DecodeMethod::kMatrix;
    uint32_t source_count = 0;  // Always k.
    uint32_t output_count = 0;
    uint8_t sources[kDecodeSourcesMax] = {};  // Positions read, ascending.
    uint8_t outputs[kDecodeOutputsMax] = {};  // Positions written, ascending.
    std::unique_ptr<uint8_t[]> tables;  // ISA-L tables: 32 * k * output_count bytes.
    size_t tables_capacity_bytes = 0;
};

class DecodeCache {
public:
    static constexpr uint32_t kSetCount = 32;
    static constexpr uint32_t kWayCount = 4;

    // The calling thread's cache, created on first use.
    static DecodeCache& for_this_thread();

    // Returns the plan for the pattern, or nullptr when this thread has none cached.
    const DecodePlan* find(uint64_t codec_id, uint64_t erased_mask) const;

    // Returns an empty slot in the pattern's set, evicting the oldest plan there, with room
    // for `table_bytes` of tables. The caller fills it and sets codec_id and erased_mask last,
    // so a plan that fails to build leaves the slot empty.
    DecodePlan* claim(uint64_t codec_id, uint64_t erased_mask, size_t table_bytes);

    // Slots claimed on this thread, one per plan built. Tests use it to check that repeated
    // decodes of one pattern hit the cache.
    uint64_t plans_built() const { return plans_built_; }

private:
    static uint32_t set_of(uint64_t codec_id, uint64_t erased_mask);

    DecodePlan slots_[kSetCount][kWayCount];
    uint8_t next_victim_[kSetCount] = {};
    uint64_t plans_built_ = 0;
};

// Returns a fresh codec id. Ids are never reused, so a plan cached for a destroyed codec can
// never be found by a later codec at the same address.
uint64_t next_codec_id();

}  // namespace ecraid
