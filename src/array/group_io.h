// SPDX-License-Identifier: Apache-2.0
// GroupIo: the working set of one run of block rows of one group of one stripe.
//
// Rows are 4 KiB block offsets within a chunk; row r of every position of a group forms one
// codeword, so rows are independent and a request is handled as runs of consecutive rows.
// GroupIo keeps a scratch copy of every position over the run, a state per (position, row),
// and the operations both request paths share: load and verify blocks, rebuild bad ones
// from the rest of their row, and write blocks back with new checksums.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "array/array.h"
#include "io/buffer_pool.h"
#include "io/ring.h"

namespace ecraid {

inline constexpr uint32_t kGroupWidthMax = 64;

enum class BlockState : uint8_t {
    kNotLoaded = 0,
    kGood,       // Loaded and verified, or computed.
    kBad,        // Missing member, read error or checksum mismatch: an erasure.
    kRepaired,   // Rebuilt from the rest of its row; its member should get it back.
    kLost,       // Could not be rebuilt: more erasures in its row than tolerated.
};

// Rows [row, end) of one position. Without default member initializers, so the arrays of
// ranges on the request path are not zeroed on every call.
struct RowRange {
    uint32_t position;
    uint32_t row;
    uint32_t end;
};

// The caller's memory that a read's direct positions point into (see GroupIo::use_direct),
// and its owner once a member read into it was abandoned. The groups of one read may run on
// different workers, so take() is thread-safe.
struct DirectReadMemory {
    ReadTarget* target = nullptr;
    std::shared_ptr<void> held_memory;  // Set by take() under mutex.
    std::mutex mutex;

    // Takes the memory from its owner on the first call; it must not be reused after that.
    std::shared_ptr<void> take() {
        std::lock_guard lock(mutex);
        if (!held_memory) held_memory = target->hand_over();
        return held_memory;
    }
    // Returns true once take() has been called. Call it only after every group of the read
    // has finished: waiting for them orders it after each take(), so it needs no lock.
    bool taken() const { return held_memory != nullptr; }
};

// Block states kept inside GroupIo. A run with more blocks (width times rows) allocates them.
inline constexpr uint32_t kInlineBlockStates = 256;

struct GroupIo {
    GroupIo(Array& array, uint64_t stripe, uint32_t group, uint32_t first_row, uint32_t end_row);
    // Not copyable, because `states` may point into the object itself.
    GroupIo(const GroupIo&) = delete;
    GroupIo& operator=(const GroupIo&) = delete;

    Array& array;
    const Geometry& geometry;
    uint64_t stripe;
    uint32_t group;
    uint32_t width;
    uint32_t data_count;
    uint32_t first_row;
    uint32_t end_row;
    uint32_t row_count;
    uint64_t first_block;  // Member block index of first_row.
    // The constructor sets entries [0, width) of the per-position arrays below and leaves
    // the rest uninitialized.
    uint32_t members[kGroupWidthMax];
    // The device each position is read from (null: the position is an erasure), and the
    // devices its writes go to: the active device and a rebuild's incoming device.
    MemberDevice* readers[kGroupWidthMax];
    MemberDevice* writers[kGroupWidthMax][2];
    // Devices whose table pages are pinned, to unpin each once.
    MemberDevice* pinned_devices[kGroupWidthMax * 2];
    uint32_t pinned_count = 0;
    // Bit p is set once position p's devices have been through pin_position().
    uint64_t pinned_positions = 0;
    Buffer scratch;
    // Positions whose rows live in the caller's memory instead of scratch (see use_direct).
    uint8_t* direct[kGroupWidthMax];
    // The owner of the direct memory of a read; null for writes, whose direct memory is only
    // read by the kernel.
    DirectReadMemory* direct_memory = nullptr;
    // width * row_count entries, position-major: inline_states, or heap_states for long runs.
    BlockState* states;
    BlockState inline_states[kInlineBlockStates];
    std::unique_ptr<BlockState[]> heap_states;
    // Count and log checksum mismatches (off while resyncing, where they are expected).
    bool count_mismatches = true;
    // Let members in memory copy this run's transfers on the worker (IoOp::may_copy_inline).
    bool copy_inline = true;

    uint8_t* block(uint32_t position, uint32_t row) const {
        if (direct[position] != nullptr) {
            return direct[position] + uint64_t(row - first_row) * kBlockBytes;
        }
        return scratch.data() +
               (uint64_t(position) * row_count + (row - first_row)) * kBlockBytes;
    }
    // Places every row of the run of `position` at `memory` (row_count blocks, 4 KiB-aligned)
    // instead of scratch, so loads land in, and stores go from, the caller's buffer without a
    // copy. Call before the position is loaded or written. A read passes the memory's owner,
    // which takes it when a member read into it is abandoned.
    void use_direct(uint32_t position, uint8_t* memory, DirectReadMemory* owner = nullptr) {
        direct[position] = memory;
        if (owner != nullptr) direct_memory = owner;
    }
    BlockState& state(uint32_t position, uint32_t row) {
        return states[uint64_t(position) * row_count + (row - first_row)];
    }
    ArrayMember& member_at(uint32_t position) { return array.member(members[position]); }
    // True when the position can be read in this stripe.
    bool usable(uint32_t position) const { return readers[position] != nullptr; }
    // True when a write of the position reaches at least one device that has not failed.
    bool writable(uint32_t position) const;
    // Positions whose writes reach no device.
    uint32_t unwritable_positions() const;

    // Pins the checksum table pages of every position over the run, for callers that use the
    // tables directly. Load, store and the steps built on them pin only the positions they
    // touch (pin_position). A member whose table cannot be read is failed.
    Task<void> pin_tables();
    // Pins the table pages of the position's reader and writers over the run, once per run.
    // A device whose table cannot be read is failed and dropped from readers or writers.
    Task<void> pin_position(uint32_t position);
    bool position_pinned(uint32_t position) const {
        return (pinned_positions >> position & 1) != 0;
    }
    // Unpins every page pinned by pin_tables() and pin_position().
    void unpin_tables();

    // Loads rows [row, end) of each listed position that are not loaded yet, then verifies
    // every loaded block. Blocks of unusable members become kBad without I/O.
    Task<void> load(const uint32_t* positions, uint32_t position_count, uint32_t row,
                    uint32_t end);
    // The same for one row range per entry, all submitted together.
    Task<void> load_ranges(const RowRange* ranges, uint32_t range_count);

    // Rebuilds every kBad block of the listed rows that a caller needs: loads the rest of
    // each such row, then decodes. Rows with more than m erasures get kLost. Returns the
    // number of lost rows.
    Task<uint32_t> repair_rows(uint32_t row, uint32_t end, const bool* needed_positions);

    // Writes rows [row, end) of `position` from scratch and stores their checksums. Skips
    // unusable members. Returns the number of failed writes; each failure fails its member.
    Task<int> store(uint32_t position, uint32_t row, uint32_t end);
    Task<int> store_ranges(const RowRange* ranges, uint32_t count);
    // Writes rows [row, end) of `position` to its incoming device only (a rebuild).
    Task<int> store_incoming(uint32_t position, uint32_t row, uint32_t end);

    // Writes back every kRepaired block whose member is usable, as self-heal.
    Task<void> write_back_repairs();

private:
    // Loads, for each row of [low, high) where a needed position is bad, the positions the
    // codec will decode it from.
    Task<void> load_decode_sources(uint32_t low, uint32_t high, const bool* needed_positions);
    bool is_pinned(const MemberDevice* device) const;
    // Pins the position's devices when their pages are cached. Returns false when
    // pin_position() has to wait for a load.
    bool try_pin_position(uint32_t position);
    Task<void> pin_ranges(const RowRange* ranges, uint32_t count);
    // Pins the device's pages without waiting when all of them are cached.
    bool try_pin(MemberDevice* device);
    Task<bool> pin(MemberDevice* device, uint32_t position);
    Task<int> write_ranges(const RowRange* ranges, uint32_t count, bool incoming_only);
    Task<int> read_blocks_isolating_errors(uint32_t position, uint32_t row, uint32_t end);
    // After a batch: hands the memory of every op the ring abandoned (see "Watched ops" in
    // io/ring.h) to the ring until the kernel returns it. Scratch is replaced with a copy, so
    // pointers from block() taken before the batch are then stale. A read's direct memory is
    // taken from its owner (DirectReadMemory).
    void hand_over_scratch(const IoOp* ops, uint32_t count);
    void verify(uint32_t position, uint32_t row, uint32_t end);
};

}  // namespace ecraid
