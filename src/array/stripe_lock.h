// SPDX-License-Identifier: Apache-2.0
// StripeLocks: shared/exclusive locks on stripes, awaited by coroutines on any worker.
//
// Writes hold a stripe exclusively for the whole read-compute-write sequence; reads, scrub
// and repair hold it shared, so a read never sees new data with an old checksum. Stripe s
// maps to lock slot s % slot_count, so the stripes of a range shorter than slot_count get
// distinct slots, and stripes slot_count apart only wait for each other needlessly. Nothing
// is allocated per lock: waiters are nodes in the awaiting coroutine's frame. A range is
// locked slot by slot in ascending slot order, so two ranges never deadlock. Waiters are
// granted in arrival order (a waiting writer blocks later readers) and resumed on their own
// ring with Ring::post.
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>

#include "io/task.h"

namespace ecraid {

class Ring;

class StripeLocks {
public:
    explicit StripeLocks(uint32_t slot_count = 4096);
    ~StripeLocks();
    StripeLocks(const StripeLocks&) = delete;
    StripeLocks& operator=(const StripeLocks&) = delete;

    // A held lock on the stripes [first, end); released by release() or the destructor.
    // A Guard may be released on any thread.
    class Guard {
    public:
        Guard() = default;
        Guard(Guard&& other) noexcept;
        Guard& operator=(Guard&& other) noexcept;
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;
        ~Guard() { release(); }
        void release();
        bool held() const { return locks_ != nullptr; }

    private:
        friend class StripeLocks;
        StripeLocks* locks_ = nullptr;
        // The held slots are first_slot_, first_slot_ + 1, ... (modulo the slot count).
        uint32_t first_slot_ = 0;
        uint32_t slot_count_ = 0;
        bool exclusive_ = false;
    };

    // Locks every stripe in [first, end). Requires first < end and a current Ring.
    Task<Guard> lock(uint64_t first, uint64_t end, bool exclusive);

    uint32_t slot_of(uint64_t stripe) const;
    uint32_t slot_count() const { return slot_count_; }

private:
    struct Waiter;
    struct Slot;
    class SlotAwaiter;
    SlotAwaiter lock_slot(uint32_t slot, bool exclusive);
    void unlock_slot(uint32_t slot, bool exclusive);

    std::unique_ptr<Slot[]> slots_;
    uint32_t slot_count_;
};

}  // namespace ecraid
