// SPDX-License-Identifier: Apache-2.0
#include "array/stripe_lock.h"

#include <cassert>
#include <utility>

#include "io/ring.h"

namespace ecraid {

// A coroutine waiting for a slot. It lives in the awaiting coroutine's frame and is linked
// into the slot's queue until it is granted.
struct StripeLocks::Waiter {
    Waiter* next = nullptr;
    Ring* ring = nullptr;
    std::coroutine_handle<> handle;
    bool exclusive = false;
};

// Aligned to a cache line so that workers locking neighbouring slots do not contend.
struct alignas(64) StripeLocks::Slot {
    std::mutex mutex;
    uint32_t readers = 0;  // Holders in shared mode.
    bool writer = false;   // True while held exclusively.
    Waiter* head = nullptr;
    Waiter* tail = nullptr;

    bool grantable(bool exclusive) const {
        return exclusive ? (readers == 0 && !writer) : !writer;
    }
    void grant(bool exclusive) {
        if (exclusive) {
            writer = true;
        } else {
            ++readers;
        }
    }
};

// Takes the slot at once when it is free and no waiter is queued. Otherwise queues this
// awaiter's Waiter and suspends until unlock_slot() grants it.
class StripeLocks::SlotAwaiter {
public:
    SlotAwaiter(Slot& slot, bool exclusive) : slot_(slot) { waiter_.exclusive = exclusive; }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> handle) {
        std::lock_guard lock(slot_.mutex);
        if (slot_.head == nullptr && slot_.grantable(waiter_.exclusive)) {
            slot_.grant(waiter_.exclusive);
            return false;
        }
        waiter_.ring = Ring::current();
        assert(waiter_.ring != nullptr);
        waiter_.handle = handle;
        if (slot_.tail != nullptr) {
            slot_.tail->next = &waiter_;
        } else {
            slot_.head = &waiter_;
        }
        slot_.tail = &waiter_;
        // The grant resumes this coroutine through its own ring's post(), so it cannot run
        // before this thread has returned to the event loop.
        return true;
    }
    void await_resume() const noexcept {}

private:
    Slot& slot_;
    Waiter waiter_;
};

StripeLocks::StripeLocks(uint32_t slot_count)
    : slots_(std::make_unique<Slot[]>(slot_count)), slot_count_(slot_count) {
    assert(slot_count > 0);
}

StripeLocks::~StripeLocks() {
    for (uint32_t i = 0; i < slot_count_; ++i) {
        assert(slots_[i].readers == 0);
        assert(!slots_[i].writer);
        assert(slots_[i].head == nullptr);
    }
}

uint32_t StripeLocks::slot_of(uint64_t stripe) const {
    return static_cast<uint32_t>(stripe % slot_count_);
}

StripeLocks::SlotAwaiter StripeLocks::lock_slot(uint32_t slot, bool exclusive) {
    assert(slot < slot_count_);
    return SlotAwaiter(slots_[slot], exclusive);
}

void StripeLocks::unlock_slot(uint32_t slot_index, bool exclusive) {
    assert(slot_index < slot_count_);
    Slot& slot = slots_[slot_index];
    Waiter* granted_head = nullptr;
    Waiter* granted_tail = nullptr;
    {
        std::lock_guard lock(slot.mutex);
        if (exclusive) {
            assert(slot.writer);
            slot.writer = false;
        } else {
            assert(slot.readers > 0);
            --slot.readers;
        }

        // Grant waiters from the front of the queue while they are compatible. A writer at
        // the front stops the walk, so readers behind it keep waiting (arrival order).
        while (slot.head != nullptr && slot.grantable(slot.head->exclusive)) {
            Waiter* waiter = slot.head;
            slot.head = waiter->next;
            if (slot.head == nullptr) slot.tail = nullptr;
            slot.grant(waiter->exclusive);
            waiter->next = nullptr;
            if (granted_tail != nullptr) {
                granted_tail->next = waiter;
            } else {
                granted_head = waiter;
            }
            granted_tail = waiter;
            if (waiter->exclusive) break;
        }
    }

    // A resumed waiter may free its frame, and with it the Waiter, at once: read each node
    // before posting its handle.
    while (granted_head != nullptr) {
        Waiter* next = granted_head->next;
        Ring* ring = granted_head->ring;
        std::coroutine_handle<> handle = granted_head->handle;
        ring->post(handle);
        granted_head = next;
    }
}

Task<StripeLocks::Guard> StripeLocks::lock(uint64_t first, uint64_t end, bool exclusive) {
    assert(first < end);
    assert(Ring::current() != nullptr);
    uint64_t stripe_count = end - first;
    uint64_t first_slot = stripe_count >= slot_count_ ? 0 : slot_of(first);
    uint64_t slot_count = stripe_count >= slot_count_ ? slot_count_ : stripe_count;

    // The range covers slots first_slot .. first_slot + slot_count - 1, modulo slot_count_.
    // Slots that wrapped past the end are the lowest, so they are locked first. Example with
    // 8 slots and stripes [6, 10): slots 0 and 1 first, then 6 and 7.
    uint64_t wrapped = first_slot + slot_count > slot_count_ ? first_slot + slot_count - slot_count_
                                                             : 0;
    for (uint64_t slot = 0; slot < wrapped; ++slot) {
        co_await lock_slot(static_cast<uint32_t>(slot), exclusive);
    }
    for (uint64_t slot = first_slot; slot < first_slot + slot_count - wrapped; ++slot) {
        co_await lock_slot(static_cast<uint32_t>(slot), exclusive);
    }

    Guard guard;
    guard.locks_ = this;
    guard.first_slot_ = static_cast<uint32_t>(first_slot);
    guard.slot_count_ = static_cast<uint32_t>(slot_count);
    guard.exclusive_ = exclusive;
    co_return std::move(guard);
}

StripeLocks::Guard::Guard(Guard&& other) noexcept
    : locks_(std::exchange(other.locks_, nullptr)),
      first_slot_(other.first_slot_),
      slot_count_(other.slot_count_),
      exclusive_(other.exclusive_) {}

StripeLocks::Guard& StripeLocks::Guard::operator=(Guard&& other) noexcept {
    if (this != &other) {
        release();
        locks_ = std::exchange(other.locks_, nullptr);
        first_slot_ = other.first_slot_;
        slot_count_ = other.slot_count_;
        exclusive_ = other.exclusive_;
    }
    return *this;
}

void StripeLocks::Guard::release() {
    if (locks_ == nullptr) return;
    StripeLocks* locks = std::exchange(locks_, nullptr);
    for (uint32_t i = 0; i < slot_count_; ++i) {
        uint64_t slot = (uint64_t{first_slot_} + i) % locks->slot_count_;
        locks->unlock_slot(static_cast<uint32_t>(slot), exclusive_);
    }
}

}  // namespace ecraid
