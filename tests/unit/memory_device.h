// SPDX-License-Identifier: Apache-2.0
// MemoryDevice: a sparse in-memory BlockDevice for server tests, with fault hooks.
//
// Data lives in 64 KiB pages that exist only once written, so an 8 GiB export costs memory
// only for what tests write. Two copies are kept to model a volatile write cache: writes
// change the current copy, and flush() (or FUA) makes it the durable copy, which is what a
// power loss would leave. Hooks fail chosen ranges with an errno and delay every request.
// Thread-safe: connections on different workers call it concurrently.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "array/block_device.h"
#include "io/ring.h"

namespace ecraid::testing {

class MemoryDevice : public BlockDevice {
public:
    static constexpr uint64_t kPageBytes = 64 * 1024;

    explicit MemoryDevice(uint64_t size_bytes, bool read_only = false)
        : size_bytes_(size_bytes), read_only_(read_only) {}

    uint64_t size_bytes() const override { return size_bytes_; }
    bool read_only() const override { return read_only_; }

    // Reads overlapping [offset, offset + length) fail with `error` for that range.
    void fail_reads(uint64_t offset, uint64_t length, int error = EIO) {
        std::lock_guard lock(mutex_);
        read_faults_.push_back({offset, length, error});
    }
    // Writes overlapping [offset, offset + length) fail with `error` and change nothing.
    void fail_writes(uint64_t offset, uint64_t length, int error = EIO) {
        std::lock_guard lock(mutex_);
        write_faults_.push_back({offset, length, error});
    }
    // The next `count` reads with a ReadTarget scribble over the caller's buffer, take it, and
    // return kReadAgain, as the array does when a member read into the buffer is abandoned.
    void keep_read_buffers(uint32_t count) { buffers_to_keep_.store(count); }
    uint32_t kept_buffers() const {
        std::lock_guard lock(mutex_);
        return uint32_t(kept_.size());
    }
    // Every request waits this long on its ring before it runs.
    void set_delay_ns(uint64_t nanoseconds) { delay_ns_.store(nanoseconds); }

    // The current and the durable contents of a range, for checks.
    std::vector<uint8_t> contents(uint64_t offset, uint64_t length) const {
        std::lock_guard lock(mutex_);
        return copy_out(current_, offset, length);
    }
    std::vector<uint8_t> durable_contents(uint64_t offset, uint64_t length) const {
        std::lock_guard lock(mutex_);
        return copy_out(durable_, offset, length);
    }
    // Sets contents directly, bypassing the NBD path (current and durable).
    void fill(uint64_t offset, const std::vector<uint8_t>& data) {
        std::lock_guard lock(mutex_);
        store(current_, offset, data.size(), data.data());
        store(durable_, offset, data.size(), data.data());
    }
    size_t pages_allocated() const {
        std::lock_guard lock(mutex_);
        return current_.size();
    }

    uint64_t writes() const { return writes_.load(); }
    uint64_t flushes() const { return flushes_.load(); }
    uint64_t trims() const { return trims_.load(); }
    uint64_t zeroes() const { return zeroes_.load(); }
    bool last_may_punch() const { return last_may_punch_.load(); }
    bool last_fua() const { return last_fua_.load(); }
    uint32_t in_flight_max() const { return in_flight_max_.load(); }

    Task<int> read(uint64_t offset, uint32_t length, uint8_t* buffer,
                   std::vector<ReadFailure>* failures, ReadTarget* target = nullptr) override {
        InFlight guard(this);
        co_await delay();
        if (offset > size_bytes_ || length > size_bytes_ - offset) co_return -EINVAL;
        std::lock_guard lock(mutex_);
        uint32_t keep = buffers_to_keep_.load();
        if (target != nullptr && keep > 0 && buffers_to_keep_.compare_exchange_strong(keep, keep - 1)) {
            std::memset(buffer, 0xEE, length);
            kept_.push_back(target->hand_over());
            co_return kReadAgain;
        }
        std::vector<uint8_t> data = copy_out(current_, offset, length);
        std::memcpy(buffer, data.data(), length);
        int first_error = 0;
        for (const Fault& fault : read_faults_) {
            uint64_t first = std::max(fault.offset, offset);
            uint64_t last = std::min(fault.offset + fault.length, offset + length);
            if (first >= last) continue;
            if (first_error == 0) first_error = fault.error;
            if (failures != nullptr) failures->push_back({first, last - first, fault.error});
        }
        co_return -first_error;
    }

    Task<int> write(uint64_t offset, uint32_t length, const uint8_t* data, bool fua) override {
        InFlight guard(this);
        co_await delay();
        co_return apply(offset, length, data, fua, &writes_);
    }

    Task<int> flush() override {
        InFlight guard(this);
        co_await delay();
        std::lock_guard lock(mutex_);
        durable_.clear();
        for (const auto& [index, page] : current_) {
            durable_.emplace(index, std::make_unique<Page>(*page));
        }
        ++flushes_;
        co_return 0;
    }

    Task<int> trim(uint64_t offset, uint64_t length, bool fua) override {
        InFlight guard(this);
        co_await delay();
        co_return apply(offset, length, nullptr, fua, &trims_);
    }

    Task<int> write_zeroes(uint64_t offset, uint64_t length, bool may_punch, bool fua) override {
        InFlight guard(this);
        co_await delay();
        last_may_punch_.store(may_punch);
        co_return apply(offset, length, nullptr, fua, &zeroes_);
    }

private:
    struct Fault {
        uint64_t offset;
        uint64_t length;
        int error;
    };
    struct Page {
        uint8_t bytes[kPageBytes] = {};
    };
    using Pages = std::map<uint64_t, std::unique_ptr<Page>>;

    // Counts requests running at once, to check that the server runs them concurrently.
    struct InFlight {
        explicit InFlight(MemoryDevice* device) : device_(device) {
            uint32_t now = ++device_->in_flight_;
            uint32_t seen = device_->in_flight_max_.load();
            while (now > seen && !device_->in_flight_max_.compare_exchange_weak(seen, now)) {
            }
        }
        ~InFlight() { --device_->in_flight_; }
        MemoryDevice* device_;
    };

    Task<int> delay() {
        uint64_t nanoseconds = delay_ns_.load();
        if (nanoseconds > 0) co_await Ring::current()->sleep_ns(nanoseconds);
        co_return 0;
    }

    int apply(uint64_t offset, uint64_t length, const uint8_t* data, bool fua,
              std::atomic<uint64_t>* counter) {
        if (read_only_) return -EPERM;
        if (offset > size_bytes_ || length > size_bytes_ - offset) return -ENOSPC;
        std::lock_guard lock(mutex_);
        for (const Fault& fault : write_faults_) {
            if (fault.offset < offset + length && offset < fault.offset + fault.length) {
                return -fault.error;
            }
        }
        store(current_, offset, length, data);
        if (fua) store(durable_, offset, length, data);
        last_fua_.store(fua);
        ++*counter;
        return 0;
    }

    // Writes `data` (or zeros when null) over a range. Zeroed whole pages are freed.
    static void store(Pages& pages, uint64_t offset, uint64_t length, const uint8_t* data) {
        uint64_t done = 0;
        while (done < length) {
            uint64_t position = offset + done;
            uint64_t index = position / kPageBytes;
            uint64_t in_page = position % kPageBytes;
            uint64_t piece = std::min(length - done, kPageBytes - in_page);
            if (data == nullptr && piece == kPageBytes) {
                pages.erase(index);
            } else {
                auto& page = pages[index];
                if (!page) page = std::make_unique<Page>();
                if (data != nullptr) {
                    std::memcpy(page->bytes + in_page, data + done, piece);
                } else {
                    std::memset(page->bytes + in_page, 0, piece);
                }
            }
            done += piece;
        }
    }

    static std::vector<uint8_t> copy_out(const Pages& pages, uint64_t offset, uint64_t length) {
        std::vector<uint8_t> out(length);
        uint64_t done = 0;
        while (done < length) {
            uint64_t position = offset + done;
            uint64_t index = position / kPageBytes;
            uint64_t in_page = position % kPageBytes;
            uint64_t piece = std::min(length - done, kPageBytes - in_page);
            auto found = pages.find(index);
            if (found != pages.end()) {
                std::memcpy(out.data() + done, found->second->bytes + in_page, piece);
            }
            done += piece;
        }
        return out;
    }

    const uint64_t size_bytes_;
    const bool read_only_;
    mutable std::mutex mutex_;
    Pages current_;
    Pages durable_;
    std::vector<Fault> read_faults_;
    std::vector<Fault> write_faults_;
    std::atomic<uint32_t> buffers_to_keep_{0};
    std::vector<std::shared_ptr<void>> kept_;  // Guarded by mutex_.
    std::atomic<uint64_t> delay_ns_{0};
    std::atomic<uint64_t> writes_{0};
    std::atomic<uint64_t> flushes_{0};
    std::atomic<uint64_t> trims_{0};
    std::atomic<uint64_t> zeroes_{0};
    std::atomic<bool> last_may_punch_{false};
    std::atomic<bool> last_fua_{false};
    std::atomic<uint32_t> in_flight_{0};
    std::atomic<uint32_t> in_flight_max_{0};
};

}  // namespace ecraid::testing
