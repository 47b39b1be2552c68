// SPDX-License-Identifier: Apache-2.0
// Copy codec for raid1 and raid10: k = 1 and every parity chunk is a copy of the data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "codec/codec.h"

namespace ecraid {

class CopyCodec final : public Codec {
public:
    explicit CopyCodec(uint32_t m) : Codec(1, m) {}

    void encode(const uint8_t* const* data, uint8_t* const* parity,
                size_t length) const override;
    // Copies the lowest surviving position into every erased one.
    Status reconstruct(uint8_t* const* chunks, const uint32_t* erased, uint32_t erased_count,
                       size_t length) const override;
    // Copies new_data into every parity chunk. old_data is not used.
    void update(uint32_t position, const uint8_t* old_data, const uint8_t* new_data,
                uint8_t* const* parity, size_t length) const override;
    // Compares every copy with the data chunk. `scratch` is not used.
    bool verify(const uint8_t* const* chunks, size_t length, uint8_t* scratch) const override;
};

}  // namespace ecraid
