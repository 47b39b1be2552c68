// SPDX-License-Identifier: Apache-2.0
#include "array/group_io.h"

#include <cassert>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "integrity/checksum.h"

namespace ecraid {
namespace {

// Ops submitted per batch; runs beyond it go in further rounds.
constexpr uint32_t kOpsPerBatch = 2 * kGroupWidthMax;

}  // namespace

GroupIo::GroupIo(Array& owner, uint64_t stripe_index, uint32_t group_index, uint32_t row,
                 uint32_t end)
    : array(owner),
      geometry(owner.geometry()),
      stripe(stripe_index),
      group(group_index),
      width(owner.geometry().group_width()),
      data_count(owner.geometry().data_per_group()),
      first_row(row),
      end_row(end),
      row_count(end - row),
      first_block(stripe_index * (owner.geometry().chunk_bytes() / kBlockBytes) + row),
      scratch(uint64_t(owner.geometry().group_width()) * (end - row) * kBlockBytes),
      states(uint64_t(owner.geometry().group_width()) * (end - row), BlockState::kNotLoaded) {
    assert(width <= kGroupWidthMax);
    assert(row < end);
    for (uint32_t position = 0; position < width; ++position) {
        members[position] = geometry.member_of(stripe, group, position);
    }
}

Task<void> GroupIo::pin_tables() {
    for (uint32_t position = 0; position < width; ++position) {
        ArrayMember& member = member_at(position);
        if (!member.usable()) continue;
        int result = co_await member.table->acquire(first_block, row_count);
        if (result < 0) {
            member.errors.read.fetch_add(1, std::memory_order_relaxed);
            array.fail_member(members[position],
                              std::string("checksum table read failed: ") + strerror(-result));
            continue;
        }
        pinned[position] = true;
    }
}

void GroupIo::unpin_tables() {
    for (uint32_t position = 0; position < width; ++position) {
        if (!pinned[position]) continue;
        member_at(position).table->release(first_block, row_count);
        pinned[position] = false;
    }
}

void GroupIo::verify(uint32_t position, uint32_t row, uint32_t end) {
    ArrayMember& member = member_at(position);
    for (uint32_t r = row; r < end; ++r) {
        uint64_t block_index = first_block + (r - first_row);
        if (pinned[position] &&
            block_verify(block(position, r), block_index, member.table->get(block_index))) {
            state(position, r) = BlockState::kGood;
            continue;
        }
        state(position, r) = BlockState::kBad;
        if (pinned[position]) {
            member.errors.checksum.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("{}: member {} ({}): checksum mismatch at block {}", array.name(),
                         members[position], member.path, block_index);
        }
    }
}

Task<int> GroupIo::read_blocks_isolating_errors(uint32_t position, uint32_t row, uint32_t end) {
    // A multi-block read failed: read block by block so one bad sector costs one block.
    ArrayMember& member = member_at(position);
    std::vector<IoOp> ops(end - row);
    IoBatch batch(*Ring::current());
    uint64_t chunk_start = member.data_offset + stripe * geometry.chunk_bytes();
    for (uint32_t r = row; r < end; ++r) {
        prepare_rw(&ops[r - row], IoKind::kRead, member.fd, block(position, r), kBlockBytes,
                   chunk_start + uint64_t(r) * kBlockBytes);
        batch.add(&ops[r - row]);
    }
    co_await batch.wait();
    int failures = 0;
    for (uint32_t r = row; r < end; ++r) {
        if (ops[r - row].result < 0) {
            state(position, r) = BlockState::kBad;
            member.errors.read.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("{}: member {} ({}): read error at block {}: {}", array.name(),
                         members[position], member.path, first_block + (r - first_row),
                         strerror(-ops[r - row].result));
            ++failures;
        } else {
            verify(position, r, r + 1);
        }
    }
    co_return failures;
}

Task<void> GroupIo::load(const uint32_t* positions, uint32_t position_count, uint32_t row,
                         uint32_t end) {
    RowRange ranges[kGroupWidthMax];
    for (uint32_t i = 0; i < position_count; ++i) ranges[i] = RowRange{positions[i], row, end};
    co_await load_ranges(ranges, position_count);
}

Task<void> GroupIo::load_ranges(const RowRange* ranges, uint32_t range_count) {
    struct Pending {
        uint32_t position;
        uint32_t row;
        uint32_t end;
    };
    IoOp ops[kOpsPerBatch];
    Pending pending[kOpsPerBatch];
    uint32_t index = 0;
    uint32_t scan_row = range_count > 0 ? ranges[0].row : 0;
    while (index < range_count) {
        uint32_t op_count = 0;
        // Collect runs of rows not loaded yet, one op per run, up to a batch.
        while (index < range_count && op_count < kOpsPerBatch) {
            const RowRange& range = ranges[index];
            auto next_range = [&] {
                ++index;
                if (index < range_count) scan_row = ranges[index].row;
            };
            if (!usable(range.position)) {
                for (uint32_t r = range.row; r < range.end; ++r) {
                    if (state(range.position, r) == BlockState::kNotLoaded) {
                        state(range.position, r) = BlockState::kBad;
                    }
                }
                next_range();
                continue;
            }
            while (scan_row < range.end &&
                   state(range.position, scan_row) != BlockState::kNotLoaded) {
                ++scan_row;
            }
            if (scan_row >= range.end) {
                next_range();
                continue;
            }
            uint32_t run_end = scan_row;
            while (run_end < range.end &&
                   state(range.position, run_end) == BlockState::kNotLoaded) {
                ++run_end;
            }
            ArrayMember& member = member_at(range.position);
            uint64_t offset = member.data_offset + stripe * geometry.chunk_bytes() +
                              uint64_t(scan_row) * kBlockBytes;
            prepare_rw(&ops[op_count], IoKind::kRead, member.fd, block(range.position, scan_row),
                       (run_end - scan_row) * kBlockBytes, offset);
            pending[op_count] = Pending{range.position, scan_row, run_end};
            ++op_count;
            scan_row = run_end;
        }
        if (op_count == 0) break;
        IoBatch batch(*Ring::current());
        for (uint32_t i = 0; i < op_count; ++i) batch.add(&ops[i]);
        co_await batch.wait();
        for (uint32_t i = 0; i < op_count; ++i) {
            const Pending& done = pending[i];
            if (ops[i].result >= 0) {
                verify(done.position, done.row, done.end);
            } else {
                co_await read_blocks_isolating_errors(done.position, done.row, done.end);
            }
        }
    }
}

Task<uint32_t> GroupIo::repair_rows(uint32_t row, uint32_t end, const bool* needed_positions) {
    // Find the rows where a needed position is bad.
    uint32_t low = end;
    uint32_t high = row;
    for (uint32_t r = row; r < end; ++r) {
        for (uint32_t position = 0; position < width; ++position) {
            if (needed_positions[position] && state(position, r) == BlockState::kBad) {
                low = std::min(low, r);
                high = r + 1;
                break;
            }
        }
    }
    if (low >= high) co_return 0;

    uint32_t all_positions[kGroupWidthMax];
    for (uint32_t position = 0; position < width; ++position) all_positions[position] = position;
    co_await load(all_positions, width, low, high);

    const Codec* codec = array.codec();
    uint32_t parity_count = geometry.parity_per_group();
    uint32_t lost_rows = 0;
    uint32_t r = low;
    while (r < high) {
        uint32_t erased[kGroupWidthMax];
        uint32_t erased_count = 0;
        bool needs_repair = false;
        for (uint32_t position = 0; position < width; ++position) {
            if (state(position, r) == BlockState::kBad) {
                erased[erased_count++] = position;
                needs_repair = needs_repair || needed_positions[position];
            }
        }
        if (!needs_repair) {
            ++r;
            continue;
        }
        if (erased_count > parity_count || codec == nullptr) {
            for (uint32_t i = 0; i < erased_count; ++i) state(erased[i], r) = BlockState::kLost;
            ++lost_rows;
            ++r;
            continue;
        }
        // Extend over following rows with the same erasure pattern: one decode call.
        uint32_t run_end = r + 1;
        while (run_end < high) {
            uint32_t count = 0;
            bool same = true;
            for (uint32_t position = 0; position < width && same; ++position) {
                if (state(position, run_end) == BlockState::kBad) {
                    same = count < erased_count && erased[count] == position;
                    ++count;
                }
            }
            if (!same || count != erased_count) break;
            ++run_end;
        }
        uint8_t* chunks[kGroupWidthMax];
        for (uint32_t position = 0; position < width; ++position) {
            chunks[position] = block(position, r);
        }
        Status status = codec->reconstruct(chunks, erased, erased_count,
                                           size_t(run_end - r) * kBlockBytes);
        BlockState outcome = status.ok() ? BlockState::kRepaired : BlockState::kLost;
        if (!status.ok()) {
            spdlog::error("{}: stripe {} group {}: reconstruction failed: {}", array.name(),
                          stripe, group, status.to_string());
            lost_rows += run_end - r;
        }
        for (uint32_t rr = r; rr < run_end; ++rr) {
            for (uint32_t i = 0; i < erased_count; ++i) state(erased[i], rr) = outcome;
        }
        r = run_end;
    }
    co_return lost_rows;
}

Task<int> GroupIo::store(uint32_t position, uint32_t row, uint32_t end) {
    RowRange range{position, row, end};
    co_return co_await store_ranges(&range, 1);
}

Task<int> GroupIo::store_ranges(const RowRange* ranges, uint32_t count) {
    int failed = 0;
    uint32_t index = 0;
    while (index < count) {
        IoOp ops[kOpsPerBatch];
        const RowRange* submitted[kOpsPerBatch];
        uint32_t op_count = 0;
        IoBatch batch(*Ring::current());
        for (; index < count && op_count < kOpsPerBatch; ++index) {
            const RowRange& range = ranges[index];
            if (range.row >= range.end || !usable(range.position)) continue;
            ArrayMember& member = member_at(range.position);
            uint64_t offset = member.data_offset + stripe * geometry.chunk_bytes() +
                              uint64_t(range.row) * kBlockBytes;
            prepare_rw(&ops[op_count], IoKind::kWrite, member.fd, block(range.position, range.row),
                       (range.end - range.row) * kBlockBytes, offset);
            submitted[op_count] = &range;
            batch.add(&ops[op_count]);
            ++op_count;
        }
        co_await batch.wait();
        for (uint32_t i = 0; i < op_count; ++i) {
            const RowRange& range = *submitted[i];
            ArrayMember& member = member_at(range.position);
            if (ops[i].result < 0) {
                ++failed;
                member.errors.write.fetch_add(1, std::memory_order_relaxed);
                array.fail_member(members[range.position],
                                  std::string("write failed: ") + strerror(-ops[i].result));
                continue;
            }
            if (!pinned[range.position]) continue;
            for (uint32_t r = range.row; r < range.end; ++r) {
                uint64_t block_index = first_block + (r - first_row);
                member.table->set(block_index, block_checksum(block(range.position, r), block_index));
            }
        }
    }
    co_return failed;
}

Task<void> GroupIo::write_back_repairs() {
    RowRange ranges[kOpsPerBatch];
    uint32_t count = 0;
    uint64_t repaired_blocks = 0;
    for (uint32_t position = 0; position < width; ++position) {
        if (!usable(position)) continue;
        uint32_t r = first_row;
        while (r < end_row) {
            if (state(position, r) != BlockState::kRepaired) {
                ++r;
                continue;
            }
            uint32_t run_end = r;
            while (run_end < end_row && state(position, run_end) == BlockState::kRepaired) {
                state(position, run_end) = BlockState::kGood;
                ++run_end;
            }
            repaired_blocks += run_end - r;
            spdlog::warn("{}: member {} ({}): rewrote {} repaired block(s) at block {}",
                         array.name(), members[position], member_at(position).path, run_end - r,
                         first_block + (r - first_row));
            member_at(position).errors.repaired.fetch_add(run_end - r,
                                                          std::memory_order_relaxed);
            ranges[count++] = RowRange{position, r, run_end};
            if (count == kOpsPerBatch) {
                co_await store_ranges(ranges, count);
                count = 0;
            }
            r = run_end;
        }
    }
    if (count > 0) co_await store_ranges(ranges, count);
    (void)repaired_blocks;
}

}  // namespace ecraid
