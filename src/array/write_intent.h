// SPDX-License-Identifier: Apache-2.0
// WriteIntent: the write-intent bitmap of an array.
//
// One bit per region (region_bytes of each member's data area; every stripe lies in one
// region because both sizes are powers of two and a region holds whole chunks). Before a write
// reaches the members, the bit of its region is set on every member and made durable; the
// first write into a clean region pays for that, later ones find the bit set in memory. After
// a FLUSH, regions that saw no write since the flush began and have none in flight are
// cleared again (written without fdatasync: a clear bit that is lost only costs a resync).
// After an unclean stop, only regions whose bit is set on some member need a resync.
//
// Bitmap images are written one at a time, each a snapshot taken when its write starts, so a
// clear can never overwrite a later set.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "io/task.h"

namespace ecraid {

class Array;

class WriteIntent {
public:
    WriteIntent(uint64_t stripe_count, uint64_t chunk_bytes, uint64_t region_bytes,
                uint64_t bitmap_bytes);

    uint64_t region_count() const { return region_count_; }
    uint64_t region_of_stripe(uint64_t stripe) const { return stripe / stripes_per_region_; }
    uint64_t stripes_per_region() const { return stripes_per_region_; }

    // Makes the regions of stripes [first, end) durably dirty and counts a write in flight in
    // each. Returns 0 or -EIO when the bitmap could not be written to enough members.
    Task<int> begin_write(Array& array, uint64_t first_stripe, uint64_t end_stripe);
    void end_write(uint64_t first_stripe, uint64_t end_stripe);

    // Taken before a flush: the generation of every dirty region.
    std::vector<uint64_t> snapshot() const;
    // After a successful flush: clears regions idle since `before` and writes the bitmap.
    Task<void> clear_idle(Array& array, const std::vector<uint64_t>& before);

    // Sets the bits found on disk (an unclean stop) or clears everything (a clean one).
    void load(const std::vector<uint8_t>& bits);
    std::vector<uint64_t> dirty_regions() const;
    // Clears the given regions after a resync and writes the bitmap (with fdatasync).
    Task<int> clear_regions(Array& array, const std::vector<uint64_t>& regions);
    // Writes the current image to every writable device, optionally with fdatasync.
    Task<int> write_image(Array& array, bool sync);

    uint64_t marks_written() const { return marks_written_.load(); }

private:
    enum : uint8_t { kClean = 0, kMarking = 1, kDirty = 2 };
    struct Region {
        std::atomic<uint8_t> state{kClean};
        std::atomic<uint32_t> in_flight{0};
        std::atomic<uint64_t> generation{0};
    };

    uint64_t stripes_per_region_;
    uint64_t region_count_;
    uint64_t bitmap_bytes_;
    std::unique_ptr<Region[]> regions_;
    mutable std::mutex mutex_;       // Guards image_.
    std::vector<uint8_t> image_;     // The bitmap as it should be on disk.
    std::atomic<bool> writing_{false};
    std::atomic<uint64_t> marks_written_{0};
};

}  // namespace ecraid
