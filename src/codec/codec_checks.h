// SPDX-License-Identifier: Apache-2.0
// Checks shared by every codec: the buffer contract of codec.h and the erasure list.
#pragma once

#include <cassert>
#include <climits>
#include <cstddef>
#include <cstdint>

#include "common/status.h"

namespace ecraid {

inline constexpr size_t kCodecAlignmentBytes = 64;

// Asserts the buffer contract: 64-byte aligned, length a positive multiple of 64 that fits
// the int length of the ISA-L calls.
inline void assert_codec_buffer([[maybe_unused]] const void* buffer,
                                [[maybe_unused]] size_t length) {
    assert(reinterpret_cast<uintptr_t>(buffer) % kCodecAlignmentBytes == 0);
    assert(length > 0);
    assert(length % kCodecAlignmentBytes == 0);
    assert(length <= INT_MAX);
}

// Returns the erased positions as a bit mask (bit p for position p). Returns kUnavailable
// when more than m positions are erased and kInvalidArgument for a position >= k + m or one
// listed twice.
Result<uint64_t> erasure_mask(uint32_t k, uint32_t m, const uint32_t* erased,
                              uint32_t erased_count);

}  // namespace ecraid
