// SPDX-License-Identifier: Apache-2.0
#include "integrity/checksum.h"

#include <cassert>
#include <cstring>

#include "common/vector_state.h"
#include "layout/geometry.h"

// libxxhash 0.8.1 picks XXH3's SSE2, AVX2 or AVX-512 kernel at run time through the
// _dispatch entry points. Plain XXH3_64bits_withSeed is the SSE2 build only.
#if defined(__x86_64__)
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#define ECRAID_XXH3_64_WITH_SEED XXH3_64bits_withSeed_dispatch
#else
#include <xxhash.h>
#define ECRAID_XXH3_64_WITH_SEED XXH3_64bits_withSeed
#endif

namespace ecraid {
namespace {

uint64_t hash_block(const void* block, uint64_t block_address) {
    return ECRAID_XXH3_64_WITH_SEED(block, kBlockBytes, block_address);
}

}  // namespace

uint64_t block_checksum(const void* block, uint64_t block_address) {
    uint64_t checksum = hash_block(block, block_address);
    clear_upper_vector_state();
    return checksum;
}

void block_checksums(const void* blocks, size_t count, uint64_t first_block_address,
                     uint64_t* checksums) {
    const auto* bytes = static_cast<const uint8_t*>(blocks);
    for (size_t i = 0; i < count; ++i) {
        checksums[i] = hash_block(bytes + i * kBlockBytes, first_block_address + i);
    }
    clear_upper_vector_state();
}

bool block_verify(const void* block, uint64_t block_address, uint64_t stored_checksum) {
    if (stored_checksum == kZeroBlockChecksum) return block_is_zero(block);
    return block_checksum(block, block_address) == stored_checksum;
}

bool block_is_zero(const void* block) {
    // glibc's vectorized memcmp returns within the first differing 32 or 64 bytes, so data
    // blocks usually return after one cache line. On a zero block it was about 1.5 times as
    // fast as an OR over 8-byte words (ZeroCheck in bench/codec_bench.cc, docs/benchmarks.md).
    alignas(64) static constexpr uint8_t kZeroBlock[kBlockBytes] = {};
    return std::memcmp(block, kZeroBlock, kBlockBytes) == 0;
}

}  // namespace ecraid
