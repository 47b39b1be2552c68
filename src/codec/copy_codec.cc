// SPDX-License-Identifier: Apache-2.0
#include "codec/copy_codec.h"

#include <cassert>
#include <cstring>

#include "codec/codec_checks.h"

namespace ecraid {

void CopyCodec::encode(const uint8_t* const* data, uint8_t* const* parity,
                       size_t length) const {
    assert_codec_buffer(data[0], length);
    for (uint32_t i = 0; i < m_; ++i) {
        assert_codec_buffer(parity[i], length);
        std::memcpy(parity[i], data[0], length);
    }
}

Status CopyCodec::reconstruct(uint8_t* const* chunks, const uint32_t* erased,
                              uint32_t erased_count, size_t length) const {
    Result<uint64_t> erased_mask = erasure_mask(k_, m_, erased, erased_count);
    if (!erased_mask.ok()) return erased_mask.status();
    if (*erased_mask == 0) return Status::ok_status();

    // erasure_mask allows at most m of the m + 1 positions, so one survives.
    uint32_t source = 0;
    while ((*erased_mask >> source & 1) != 0) ++source;
    assert(source <= m_);
    assert_codec_buffer(chunks[source], length);

    for (uint32_t p = 0; p <= m_; ++p) {
        if ((*erased_mask >> p & 1) == 0) continue;
        assert_codec_buffer(chunks[p], length);
        std::memcpy(chunks[p], chunks[source], length);
    }
    return Status::ok_status();
}

void CopyCodec::update([[maybe_unused]] uint32_t position,
                       [[maybe_unused]] const uint8_t* old_data, const uint8_t* new_data,
                       uint8_t* const* parity, size_t length) const {
    assert(position == 0);
    encode(&new_data, parity, length);
}

bool CopyCodec::verify(const uint8_t* const* chunks, size_t length,
                       [[maybe_unused]] uint8_t* scratch) const {
    assert_codec_buffer(chunks[0], length);
    for (uint32_t p = 1; p <= m_; ++p) {
        assert_codec_buffer(chunks[p], length);
        if (std::memcmp(chunks[p], chunks[0], length) != 0) return false;
    }
    return true;
}

}  // namespace ecraid
