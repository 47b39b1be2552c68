// SPDX-License-Identifier: Apache-2.0
#include "array/write_intent.h"

#include <cassert>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "array/array.h"
#include "io/buffer_pool.h"
#include "io/ring.h"

namespace ecraid {
namespace {

// How long a waiter sleeps between looks at a region another writer is marking.
constexpr uint64_t kWaitStepNs = 20'000;

}  // namespace

WriteIntent::WriteIntent(uint64_t stripe_count, uint64_t chunk_bytes, uint64_t region_bytes,
                         uint64_t bitmap_bytes)
    : stripes_per_region_(std::max<uint64_t>(1, region_bytes / chunk_bytes)),
      region_count_((stripe_count + stripes_per_region_ - 1) / stripes_per_region_),
      bitmap_bytes_(bitmap_bytes),
      regions_(new Region[std::max<uint64_t>(region_count_, 1)]),
      image_(bitmap_bytes, 0) {
    assert(region_count_ <= bitmap_bytes * 8);
}

Task<int> WriteIntent::write_image(Array& array, bool sync) {
    // One image write at a time; each takes its snapshot when it starts.
    while (writing_.exchange(true, std::memory_order_acq_rel)) {
        co_await Ring::current()->sleep_ns(kWaitStepNs);
    }
    Buffer buffer(bitmap_bytes_);
    {
        std::lock_guard lock(mutex_);
        std::memcpy(buffer.data(), image_.data(), bitmap_bytes_);
    }
    struct Target {
        uint32_t role;
        MemberDevice* device;
    };
    std::vector<Target> targets;
    for (uint32_t role = 0; role < array.geometry().member_count(); ++role) {
        ArrayMember& member = array.member(role);
        if (member.active()) targets.push_back(Target{role, member.device.load()});
        MemberDevice* incoming = member.incoming.load();
        if (incoming != nullptr && !incoming->failed.load()) targets.push_back(Target{role, incoming});
    }
    std::vector<IoOp> ops(targets.size());
    {
        IoBatch batch(*Ring::current());
        for (size_t i = 0; i < targets.size(); ++i) {
            prepare_rw(&ops[i], IoKind::kWrite, targets[i].device->fd, buffer.data(),
                       uint32_t(bitmap_bytes_), targets[i].device->bitmap_offset);
            ops[i].device = &targets[i].device->io;
            batch.add(&ops[i]);
        }
        co_await batch.wait();
    }
    // The kernel may still read the image for abandoned writes: the ring keeps it until then.
    std::shared_ptr<Buffer> kept_buffer;
    for (size_t i = 0; i < targets.size(); ++i) {
        if (!ops[i].abandoned) continue;
        if (!kept_buffer) kept_buffer = std::make_shared<Buffer>(std::move(buffer));
        Ring::current()->retain_until_returned(ops[i], kept_buffer);
    }
    std::vector<IoOp> syncs(targets.size());
    if (sync) {
        IoBatch batch(*Ring::current());
        for (size_t i = 0; i < targets.size(); ++i) {
            if (ops[i].result < 0) continue;
            prepare_rw(&syncs[i], IoKind::kFdatasync, targets[i].device->fd, nullptr, 0, 0);
            syncs[i].device = &targets[i].device->io;
            batch.add(&syncs[i]);
        }
        co_await batch.wait();
    }
    writing_.store(false, std::memory_order_release);
    for (size_t i = 0; i < targets.size(); ++i) {
        int result = ops[i].result < 0 ? ops[i].result : (sync ? syncs[i].result : 0);
        if (result < 0) {
            targets[i].device->errors.write.fetch_add(1, std::memory_order_relaxed);
            array.fail_device(targets[i].role, targets[i].device,
                              std::string("write-intent bitmap write failed: ") + strerror(-result));
        }
    }
    co_return array.lost_data() ? -EIO : 0;
}

Task<int> WriteIntent::begin_write(Array& array, uint64_t first_stripe, uint64_t end_stripe) {
    uint64_t first_region = region_of_stripe(first_stripe);
    uint64_t end_region = region_of_stripe(end_stripe - 1) + 1;
    for (uint64_t index = first_region; index < end_region; ++index) {
        Region& region = regions_[index];
        region.in_flight.fetch_add(1, std::memory_order_acq_rel);
        region.generation.fetch_add(1, std::memory_order_acq_rel);
        for (;;) {
            uint8_t state = region.state.load(std::memory_order_acquire);
            if (state == kDirty) break;
            if (state == kClean &&
                region.state.compare_exchange_strong(state, kMarking, std::memory_order_acq_rel)) {
                {
                    std::lock_guard lock(mutex_);
                    image_[index / 8] |= uint8_t(1u << (index % 8));
                }
                int result = co_await write_image(array, true);
                marks_written_.fetch_add(1, std::memory_order_relaxed);
                region.state.store(kDirty, std::memory_order_release);
                if (result < 0) {
                    for (uint64_t undo = first_region; undo <= index; ++undo) {
                        regions_[undo].in_flight.fetch_sub(1, std::memory_order_acq_rel);
                    }
                    co_return result;
                }
                break;
            }
            co_await Ring::current()->sleep_ns(kWaitStepNs);
        }
    }
    co_return 0;
}

void WriteIntent::end_write(uint64_t first_stripe, uint64_t end_stripe) {
    if (first_stripe >= end_stripe) return;
    uint64_t first_region = region_of_stripe(first_stripe);
    uint64_t end_region = region_of_stripe(end_stripe - 1) + 1;
    for (uint64_t index = first_region; index < end_region; ++index) {
        regions_[index].in_flight.fetch_sub(1, std::memory_order_acq_rel);
    }
}

std::vector<uint64_t> WriteIntent::snapshot() const {
    std::vector<uint64_t> generations(region_count_, UINT64_MAX);
    for (uint64_t index = 0; index < region_count_; ++index) {
        if (regions_[index].state.load(std::memory_order_acquire) != kDirty) continue;
        generations[index] = regions_[index].generation.load(std::memory_order_acquire);
    }
    return generations;
}

Task<void> WriteIntent::clear_idle(Array& array, const std::vector<uint64_t>& before) {
    bool cleared = false;
    for (uint64_t index = 0; index < region_count_ && index < before.size(); ++index) {
        Region& region = regions_[index];
        if (before[index] == UINT64_MAX) continue;
        if (region.in_flight.load(std::memory_order_acquire) != 0) continue;
        if (region.generation.load(std::memory_order_acquire) != before[index]) continue;
        uint8_t expected = kDirty;
        if (!region.state.compare_exchange_strong(expected, kClean, std::memory_order_acq_rel)) {
            continue;
        }
        // A write that started after the checks sets the state again and rewrites the image
        // after this one (image writes are serialized), so its bit is never lost.
        std::lock_guard lock(mutex_);
        image_[index / 8] &= uint8_t(~(1u << (index % 8)));
        cleared = true;
    }
    if (cleared) co_await write_image(array, false);
}

void WriteIntent::load(const std::vector<uint8_t>& bits) {
    std::lock_guard lock(mutex_);
    std::fill(image_.begin(), image_.end(), 0);
    for (uint64_t index = 0; index < region_count_; ++index) {
        bool dirty = index / 8 < bits.size() && (bits[index / 8] >> (index % 8)) & 1;
        regions_[index].state.store(dirty ? kDirty : kClean);
        if (dirty) image_[index / 8] |= uint8_t(1u << (index % 8));
    }
}

std::vector<uint64_t> WriteIntent::dirty_regions() const {
    std::vector<uint64_t> dirty;
    for (uint64_t index = 0; index < region_count_; ++index) {
        if (regions_[index].state.load() == kDirty) dirty.push_back(index);
    }
    return dirty;
}

Task<int> WriteIntent::clear_regions(Array& array, const std::vector<uint64_t>& regions) {
    {
        std::lock_guard lock(mutex_);
        for (uint64_t index : regions) {
            if (regions_[index].in_flight.load() != 0) continue;
            regions_[index].state.store(kClean);
            image_[index / 8] &= uint8_t(~(1u << (index % 8)));
        }
    }
    co_return co_await write_image(array, true);
}

}  // namespace ecraid
