// SPDX-License-Identifier: Apache-2.0
#include "array/scrub.h"

#include <spdlog/spdlog.h>

#include "array/group_io.h"

namespace ecraid {

Task<void> scrub_stripe(Array& array, uint64_t stripe, bool repair, ScrubCounts* counts) {
    const Geometry& geometry = array.geometry();
    StripeLocks::Guard guard = co_await array.stripe_locks().lock(stripe, stripe + 1, true);
    uint32_t k = geometry.data_per_group();
    uint32_t m = geometry.parity_per_group();
    uint32_t width = k + m;
    uint32_t rows = uint32_t(geometry.chunk_bytes() / kBlockBytes);
    counts->checked_bytes += geometry.stripe_data_bytes();
    for (uint32_t group = 0; group < geometry.group_count(); ++group) {
        GroupIo io(array, stripe, group, 0, rows);
        co_await io.pin_tables();
        uint32_t positions[kGroupWidthMax];
        bool needed[kGroupWidthMax];
        for (uint32_t position = 0; position < width; ++position) {
            positions[position] = position;
            needed[position] = io.usable(position);
        }
        co_await io.load(positions, width, 0, rows);
        for (uint32_t position = 0; position < width; ++position) {
            if (!io.usable(position)) continue;
            for (uint32_t row = 0; row < rows; ++row) {
                counts->bad_blocks += io.state(position, row) == BlockState::kBad ? 1 : 0;
            }
        }
        co_await io.repair_rows(0, rows, needed);
        bool rows_complete = true;
        for (uint32_t position = 0; position < width; ++position) {
            for (uint32_t row = 0; row < rows; ++row) {
                BlockState state = io.state(position, row);
                if (state == BlockState::kLost) {
                    if (io.usable(position)) ++counts->unrecoverable_blocks;
                    rows_complete = false;
                } else if (state == BlockState::kRepaired && io.usable(position)) {
                    ++counts->repaired_blocks;
                } else if (state == BlockState::kBad) {
                    rows_complete = false;  // A missing member's block: nothing to compare.
                }
            }
        }
        if (repair) co_await io.write_back_repairs();

        // Parity consistency, where every position is present and verified.
        const Codec* codec = array.codec();
        if (codec != nullptr && rows_complete) {
            Buffer scratch(size_t(m) * kBlockBytes);
            uint32_t first_stale = rows;
            uint32_t end_stale = 0;
            for (uint32_t row = 0; row < rows; ++row) {
                const uint8_t* chunks[kGroupWidthMax];
                for (uint32_t position = 0; position < width; ++position) {
                    chunks[position] = io.block(position, row);
                }
                if (codec->verify(chunks, kBlockBytes, scratch.data())) continue;
                ++counts->parity_mismatches;
                first_stale = std::min(first_stale, row);
                end_stale = row + 1;
            }
            if (first_stale < end_stale) {
                spdlog::warn("{}: stripe {} group {}: parity does not match data in {} row(s){}",
                             array.name(), stripe, group, end_stale - first_stale,
                             repair ? "; rewriting parity" : "");
            }
            if (first_stale < end_stale && repair) {
                const uint8_t* data[kGroupWidthMax];
                uint8_t* parity[kGroupWidthMax];
                for (uint32_t position = 0; position < k; ++position) {
                    data[position] = io.block(position, first_stale);
                }
                for (uint32_t j = 0; j < m; ++j) parity[j] = io.block(k + j, first_stale);
                codec->encode(data, parity, size_t(end_stale - first_stale) * kBlockBytes);
                RowRange ranges[kGroupWidthMax];
                for (uint32_t j = 0; j < m; ++j) ranges[j] = RowRange{k + j, first_stale, end_stale};
                co_await io.store_ranges(ranges, m);
                counts->parity_rewritten += uint64_t(end_stale - first_stale) * m;
            }
        }
        io.unpin_tables();
    }
}

}  // namespace ecraid
