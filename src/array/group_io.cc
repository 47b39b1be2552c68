// SPDX-License-Identifier: Apache-2.0
#include "array/group_io.h"

#include <cassert>
#include <cerrno>
#include <cstring>
#include <new>
#include <type_traits>

#include <spdlog/spdlog.h>

#include "integrity/checksum.h"

namespace ecraid {
namespace {

// Logs the first ten errors of a kind on a device, then only every power of two, so a dying
// member cannot flood the log; the counters in status stay exact.
bool should_log(uint64_t count_after) {
    return count_after <= 10 || (count_after & (count_after - 1)) == 0;
}

// Read errors a device may return before it is failed instead of repaired block by block:
// one bad sector is worth a rewrite, a dying disk is not worth retrying forever.
constexpr uint64_t kReadErrorsBeforeFailing = 1024;

// Ops submitted per batch; runs beyond it go in further rounds.
constexpr uint32_t kOpsPerBatch = 2 * kGroupWidthMax;

// Room for a batch of ops, each constructed only when used, so a batch of one op does not
// zero kOpsPerBatch of them.
struct OpSlots {
    static_assert(std::is_trivially_destructible_v<IoOp>);
    alignas(IoOp) unsigned char bytes[kOpsPerBatch * sizeof(IoOp)];

    IoOp* construct(uint32_t index) { return new (bytes + index * sizeof(IoOp)) IoOp(); }
    // The first `count` ops, all constructed.
    IoOp* data() { return std::launder(reinterpret_cast<IoOp*>(bytes)); }
};

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
      states(inline_states) {
    assert(width <= kGroupWidthMax);
    assert(row < end);
    uint64_t state_count = uint64_t(width) * row_count;
    if (state_count > kInlineBlockStates) {
        heap_states = std::make_unique_for_overwrite<BlockState[]>(state_count);
        states = heap_states.get();
    }
    std::fill(states, states + state_count, BlockState::kNotLoaded);
    for (uint32_t position = 0; position < width; ++position) {
        members[position] = geometry.member_of(stripe, group, position);
        ArrayMember& member = array.member(members[position]);
        readers[position] = member.reader(stripe);
        direct[position] = nullptr;
        writers[position][0] = nullptr;
        writers[position][1] = nullptr;
        uint32_t writer_count = 0;
        if (member.active()) {
            MemberDevice* device = member.device.load(std::memory_order_acquire);
            if (!device->failed.load(std::memory_order_acquire)) writers[position][writer_count++] = device;
        }
        MemberDevice* incoming = member.incoming.load(std::memory_order_acquire);
        if (incoming != nullptr && !incoming->failed.load(std::memory_order_acquire)) {
            writers[position][writer_count++] = incoming;
        }
    }
}

bool GroupIo::writable(uint32_t position) const {
    for (MemberDevice* device : writers[position]) {
        if (device != nullptr && !device->failed.load(std::memory_order_acquire)) return true;
    }
    return false;
}

uint32_t GroupIo::unwritable_positions() const {
    uint32_t count = 0;
    for (uint32_t position = 0; position < width; ++position) count += writable(position) ? 0 : 1;
    return count;
}

bool GroupIo::is_pinned(const MemberDevice* device) const {
    for (uint32_t i = 0; i < pinned_count; ++i) {
        if (pinned_devices[i] == device) return true;
    }
    return false;
}

bool GroupIo::try_pin(MemberDevice* device) {
    if (is_pinned(device)) return true;
    if (!device->table->try_acquire(first_block, row_count)) return false;
    pinned_devices[pinned_count++] = device;
    return true;
}

Task<bool> GroupIo::pin(MemberDevice* device, uint32_t position) {
    if (device == nullptr) co_return false;
    if (try_pin(device)) co_return true;
    int result = co_await device->table->acquire(first_block, row_count);
    if (result < 0) {
        device->errors.read.fetch_add(1, std::memory_order_relaxed);
        array.fail_device(members[position], device,
                          std::string("checksum table read failed: ") + strerror(-result));
        co_return false;
    }
    pinned_devices[pinned_count++] = device;
    co_return true;
}

bool GroupIo::try_pin_position(uint32_t position) {
    if (position_pinned(position)) return true;
    bool pinned = readers[position] == nullptr || try_pin(readers[position]);
    for (MemberDevice* device : writers[position]) {
        pinned = pinned && (device == nullptr || try_pin(device));
    }
    if (pinned) pinned_positions |= uint64_t(1) << position;
    return pinned;
}

Task<void> GroupIo::pin_position(uint32_t position) {
    if (try_pin_position(position)) co_return;
    // Devices pinned by the attempt above count as pinned here (pin() skips them).
    if (readers[position] != nullptr && !co_await pin(readers[position], position)) {
        readers[position] = nullptr;
    }
    for (MemberDevice*& device : writers[position]) {
        if (device != nullptr && !co_await pin(device, position)) device = nullptr;
    }
    pinned_positions |= uint64_t(1) << position;
}

Task<void> GroupIo::pin_ranges(const RowRange* ranges, uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
        if (!try_pin_position(ranges[i].position)) co_await pin_position(ranges[i].position);
    }
}

Task<void> GroupIo::pin_tables() {
    for (uint32_t position = 0; position < width; ++position) {
        if (!try_pin_position(position)) co_await pin_position(position);
    }
}

void GroupIo::unpin_tables() {
    for (uint32_t i = 0; i < pinned_count; ++i) {
        pinned_devices[i]->table->release(first_block, row_count);
    }
    pinned_count = 0;
    pinned_positions = 0;
}

void GroupIo::verify(uint32_t position, uint32_t row, uint32_t end) {
    MemberDevice* device = readers[position];
    for (uint32_t r = row; r < end; ++r) {
        uint64_t block_index = first_block + (r - first_row);
        if (block_verify(block(position, r), block_index, device->table->get(block_index))) {
            state(position, r) = BlockState::kGood;
            continue;
        }
        state(position, r) = BlockState::kBad;
        if (!count_mismatches) continue;
        uint64_t count = device->errors.checksum.fetch_add(1, std::memory_order_relaxed) + 1;
        if (should_log(count)) {
            spdlog::warn("{}: member {} ({}): checksum mismatch at block {} ({} so far)",
                         array.name(), members[position], device->path, block_index, count);
        }
    }
}

Task<int> GroupIo::read_blocks_isolating_errors(uint32_t position, uint32_t row, uint32_t end) {
    // A multi-block read failed: read block by block so one bad sector costs one block.
    MemberDevice* device = readers[position];
    std::vector<IoOp> ops(end - row);
    IoBatch batch(*Ring::current());
    uint64_t chunk_start = device->data_offset + stripe * geometry.chunk_bytes();
    for (uint32_t r = row; r < end; ++r) {
        prepare_rw(&ops[r - row], IoKind::kRead, device->fd, block(position, r), kBlockBytes,
                   chunk_start + uint64_t(r) * kBlockBytes);
        ops[r - row].device = &device->io;
        ops[r - row].may_copy_inline = copy_inline;
        batch.add(&ops[r - row]);
    }
    co_await batch.wait();
    hand_over_scratch(ops.data(), uint32_t(ops.size()));
    int failures = 0;
    for (uint32_t r = row; r < end; ++r) {
        if (ops[r - row].result < 0) {
            state(position, r) = BlockState::kBad;
            uint64_t count = device->errors.read.fetch_add(1, std::memory_order_relaxed) + 1;
            if (count == kReadErrorsBeforeFailing) {
                array.fail_device(members[position], device,
                                  "too many read errors (" + std::to_string(count) + ")");
            }
            if (should_log(count)) {
                spdlog::warn("{}: member {} ({}): read error at block {}: {} ({} so far)",
                             array.name(), members[position], device->path,
                             first_block + (r - first_row), strerror(-ops[r - row].result), count);
            }
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
    // Verification reads the tables of the loaded positions. Pin them before any op is
    // prepared, because pinning may wait for a table page.
    co_await pin_ranges(ranges, range_count);
    OpSlots slots;
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
            MemberDevice* device = readers[range.position];
            uint64_t offset = device->data_offset + stripe * geometry.chunk_bytes() +
                              uint64_t(scan_row) * kBlockBytes;
            IoOp* op = slots.construct(op_count);
            prepare_rw(op, IoKind::kRead, device->fd, block(range.position, scan_row),
                       (run_end - scan_row) * kBlockBytes, offset);
            op->device = &device->io;
            op->may_copy_inline = copy_inline;
            pending[op_count] = Pending{range.position, scan_row, run_end};
            ++op_count;
            scan_row = run_end;
        }
        if (op_count == 0) break;
        IoOp* ops = slots.data();
        IoBatch batch(*Ring::current());
        for (uint32_t i = 0; i < op_count; ++i) batch.add(&ops[i]);
        co_await batch.wait();
        hand_over_scratch(ops, op_count);
        for (uint32_t i = 0; i < op_count; ++i) {
            const Pending& done = pending[i];
            MemberDevice* reader = readers[done.position];
            if (ops[i].result >= 0) {
                verify(done.position, done.row, done.end);
            } else if (ops[i].result == -ETIMEDOUT || reader == nullptr ||
                       reader->failed.load(std::memory_order_acquire)) {
                // A member that did not complete the read in time, or failed meanwhile, is
                // failed, not retried block by block.
                // member_io_timed_out has counted the read error already.
                if (reader != nullptr) {
                    array.fail_device(members[done.position], reader,
                                      "a read did not complete within the I/O timeout");
                    readers[done.position] = nullptr;
                }
                for (uint32_t r = done.row; r < done.end; ++r) state(done.position, r) = BlockState::kBad;
            } else {
                co_await read_blocks_isolating_errors(done.position, done.row, done.end);
            }
        }
    }
}

void GroupIo::hand_over_scratch(const IoOp* ops, uint32_t count) {
    // The kernel may still write into (or read from) the memory of an abandoned op, so the
    // ring keeps it until the op returns. In scratch, this run goes on with a copy; the
    // abandoned ops' blocks are erasures, so what the copy holds for them does not matter.
    // A read's direct memory is taken from the caller, who reads again. A write's direct
    // memory is only read by the kernel, for a member that has failed, so it needs nothing.
    size_t bytes = size_t(width) * row_count * kBlockBytes;
    std::shared_ptr<Buffer> old_scratch;
    for (uint32_t i = 0; i < count; ++i) {
        if (!ops[i].abandoned) continue;
        const uint8_t* base = old_scratch ? old_scratch->data() : scratch.data();
        bool in_scratch = ops[i].buffer >= base && ops[i].buffer < base + bytes;
        if (!in_scratch) {
            if (direct_memory != nullptr) {
                Ring::current()->retain_until_returned(ops[i], direct_memory->take());
            }
            continue;
        }
        if (!old_scratch) {
            old_scratch = std::make_shared<Buffer>(std::move(scratch));
            scratch = Buffer(bytes);
            std::memcpy(scratch.data(), old_scratch->data(), bytes);
        }
        Ring::current()->retain_until_returned(ops[i], old_scratch);
    }
}

Task<void> GroupIo::load_decode_sources(uint32_t low, uint32_t high,
                                        const bool* needed_positions) {
    // The codec decodes a row from its first data_count positions that are not bad, so load
    // exactly those. A block that fails verification moves the choice past it: repeat until
    // every row to repair has its sources loaded or has run out of positions.
    for (;;) {
        uint32_t first[kGroupWidthMax];
        uint32_t last[kGroupWidthMax];
        std::fill(first, first + width, UINT32_MAX);
        for (uint32_t r = low; r < high; ++r) {
            bool repair = false;
            for (uint32_t position = 0; position < width && !repair; ++position) {
                repair = needed_positions[position] && state(position, r) == BlockState::kBad;
            }
            if (!repair) continue;
            uint32_t sources = 0;
            for (uint32_t position = 0; position < width && sources < data_count; ++position) {
                BlockState block_state = state(position, r);
                if (block_state == BlockState::kBad) continue;
                ++sources;
                if (block_state != BlockState::kNotLoaded) continue;
                if (first[position] == UINT32_MAX) first[position] = r;
                last[position] = r;
            }
        }
        RowRange loads[kGroupWidthMax];
        uint32_t load_count = 0;
        for (uint32_t position = 0; position < width; ++position) {
            if (first[position] == UINT32_MAX) continue;
            loads[load_count++] = RowRange{position, first[position], last[position] + 1};
        }
        if (load_count == 0) co_return;
        co_await load_ranges(loads, load_count);
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

    const Codec* codec = array.codec();
    uint32_t parity_count = geometry.parity_per_group();
    if (codec != nullptr) co_await load_decode_sources(low, high, needed_positions);

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
    co_return co_await write_ranges(&range, 1, false);
}

Task<int> GroupIo::store_ranges(const RowRange* ranges, uint32_t count) {
    co_return co_await write_ranges(ranges, count, false);
}

Task<int> GroupIo::store_incoming(uint32_t position, uint32_t row, uint32_t end) {
    RowRange range{position, row, end};
    co_return co_await write_ranges(&range, 1, true);
}

Task<int> GroupIo::write_ranges(const RowRange* ranges, uint32_t count, bool incoming_only) {
    struct Submitted {
        const RowRange* range;
        MemberDevice* device;
    };
    // Checksums go into the tables of the written devices. Pin them before the first op is
    // submitted, because pinning may wait for a table page.
    co_await pin_ranges(ranges, count);
    int failed = 0;
    uint32_t index = 0;
    uint32_t writer = 0;
    OpSlots slots;
    while (index < count) {
        Submitted submitted[kOpsPerBatch];
        uint32_t op_count = 0;
        IoBatch batch(*Ring::current());
        while (index < count && op_count < kOpsPerBatch) {
            const RowRange& range = ranges[index];
            MemberDevice* device = writer < 2 ? writers[range.position][writer] : nullptr;
            bool skip = device == nullptr || range.row >= range.end ||
                        (incoming_only &&
                         device != member_at(range.position).incoming.load(std::memory_order_acquire));
            if (!skip) {
                uint64_t offset = device->data_offset + stripe * geometry.chunk_bytes() +
                                  uint64_t(range.row) * kBlockBytes;
                IoOp* op = slots.construct(op_count);
                prepare_rw(op, IoKind::kWrite, device->fd, block(range.position, range.row),
                           (range.end - range.row) * kBlockBytes, offset);
                op->device = &device->io;
                op->may_copy_inline = copy_inline;
                submitted[op_count] = Submitted{&range, device};
                batch.add(op);
                ++op_count;
            }
            if (++writer >= 2) {
                writer = 0;
                ++index;
            }
        }
        co_await batch.wait();
        IoOp* ops = slots.data();
        hand_over_scratch(ops, op_count);
        for (uint32_t i = 0; i < op_count; ++i) {
            const RowRange& range = *submitted[i].range;
            MemberDevice* device = submitted[i].device;
            if (ops[i].result < 0) {
                ++failed;
                device->errors.write.fetch_add(1, std::memory_order_relaxed);
                array.fail_device(members[range.position], device,
                                  std::string("write failed: ") + strerror(-ops[i].result));
                continue;
            }
            if (!is_pinned(device)) continue;
            for (uint32_t r = range.row; r < range.end; ++r) {
                uint64_t block_index = first_block + (r - first_row);
                device->table->set(block_index, block_checksum(block(range.position, r), block_index));
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
            uint64_t total =
                readers[position]->errors.repaired.fetch_add(run_end - r, std::memory_order_relaxed) +
                (run_end - r);
            if (should_log(total)) {
                spdlog::warn("{}: member {} ({}): rewrote {} repaired block(s) at block {} ({} so "
                             "far)",
                             array.name(), members[position], readers[position]->path,
                             run_end - r, first_block + (r - first_row), total);
            }
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
