// SPDX-License-Identifier: Apache-2.0
// Array: the read and write paths of an assembled array, served as a BlockDevice.
//
// A request is split into stripes; every stripe it touches is locked (shared for reads,
// exclusive for writes) for the whole read-compute-write sequence. Each group of each stripe
// is then handled on its own, concurrently with the others:
//   read    read the data blocks, verify every block's checksum; a block that fails its
//           checksum or whose member returns an error is rebuilt from the rest of its group,
//           returned, written back and counted against the member. Blocks on a missing or
//           faulty member are rebuilt the same way without the write-back. A block row with
//           more bad positions than the level tolerates fails with EIO; other rows go on.
//   write   a write that covers every data position over the same block rows reads nothing;
//           otherwise read-modify-write or reconstruct-write, whichever reads fewer blocks,
//           with a fall back to reconstruct-write when any block it reads is bad. Partial
//           blocks at the edges are merged with their verified old contents.
// Checksums of written blocks are stored in the members' checksum tables; FLUSH writes the
// dirty table pages and then fdatasyncs every member.
//
// A member whose write fails is marked faulty: the array goes on degraded, and the metadata
// hook records the change in the surviving members' superblocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "array/block_device.h"
#include "array/checksum_table.h"
#include "array/stripe_lock.h"
#include "array/write_intent.h"
#include "codec/codec.h"
#include "common/status.h"
#include "io/ring.h"
#include "layout/geometry.h"
#include "meta/superblock.h"

namespace ecraid {

struct DirectReadMemory;
class WorkerPool;

struct MemberErrorCounts {
    std::atomic<uint64_t> read{0};
    std::atomic<uint64_t> write{0};
    std::atomic<uint64_t> checksum{0};
    std::atomic<uint64_t> repaired{0};
};

// One open member device: a file or block device with its checksum table. Devices are never
// freed while the array exists, so a request may keep using a device that was just swapped
// out or failed; its descriptor stays open.
struct MemberDevice {
    std::string path;
    int fd = -1;
    bool direct = false;
    uint64_t data_offset = 0;  // Byte offset of the data area on the device.
    uint64_t table_offset = 0;
    uint64_t bitmap_offset = 0;
    std::unique_ptr<ChecksumTable> table;
    MemberErrorCounts errors;
    std::atomic<bool> failed{false};  // A write or flush failed: never used again.
    Array* owner = nullptr;
    uint32_t role = 0;
    // Issue mode and I/O timeout for the rings; every op on `fd` points to it.
    DeviceIo io;
};

// Called by a ring when a member I/O passes the I/O timeout (DeviceIo::on_time_limit); fails
// that device.
void member_io_timed_out(void* device);

// One role of the layout. `device` serves reads and writes while the role is active. A
// rebuild writes an `incoming` device: every write to the role also goes there, and once
// rebuilt_up_to passes a stripe the incoming device holds current data for it, so reads may
// use it there when the role has no active device.
struct ArrayMember {
    std::atomic<MemberDevice*> device{nullptr};
    std::atomic<MemberState> state{MemberState::kMissing};
    std::atomic<MemberDevice*> incoming{nullptr};
    std::atomic<uint64_t> rebuilt_up_to{0};  // Stripes of `incoming` that hold current data.

    bool active() const {
        return state.load(std::memory_order_acquire) == MemberState::kActive &&
               device.load(std::memory_order_acquire) != nullptr;
    }
    // The device to read `stripe` from, or null when the role cannot serve it.
    MemberDevice* reader(uint64_t stripe) const {
        if (active()) return device.load(std::memory_order_acquire);
        MemberDevice* target = incoming.load(std::memory_order_acquire);
        if (target != nullptr && !target->failed.load(std::memory_order_acquire) &&
            stripe < rebuilt_up_to.load(std::memory_order_acquire)) {
            return target;
        }
        return nullptr;
    }
    // Kept for callers that only ask whether the role is active.
    bool usable() const { return active(); }
};

struct ArrayMemberSpec {
    std::string path;
    int fd = -1;  // Owned by the caller; -1 when the member is missing.
    bool direct = false;
    uint64_t data_offset = 0;
    uint64_t table_offset = 0;
    uint64_t bitmap_offset = 0;
    MemberState state = MemberState::kMissing;
    // A device being rebuilt for this role (resumed after a restart), or fd -1.
    int incoming_fd = -1;
    std::string incoming_path;
    bool incoming_direct = false;
    uint64_t incoming_data_offset = 0;
    uint64_t incoming_table_offset = 0;
    uint64_t incoming_bitmap_offset = 0;
    uint64_t incoming_rebuilt_up_to = 0;
};

struct ArrayOptions {
    bool read_only = false;
    uint64_t table_cache_bytes = 64ull << 20;
    std::string name;
    // A member whose read, write, flush or fallocate waits this long while the member
    // completes nothing else fails (see "Watched ops" in io/ring.h); 0 means no limit.
    uint64_t io_timeout_ns = 30'000'000'000ull;
    // Write-intent bitmap geometry, from the superblock.
    uint64_t region_bytes = 64ull << 20;
    uint64_t bitmap_bytes = 4096;
    // Called on the worker that saw the failure when a member changes state; records it in
    // the superblocks. Must not block for long.
    std::function<void(uint32_t role, MemberState state, const std::string& reason)>
        on_member_state_change;
    // Called when a write or flush to an incoming (rebuild target) device fails.
    std::function<void(uint32_t role, const std::string& reason)> on_incoming_failed;
};

class Array : public BlockDevice {
public:
    // Requires members.size() == geometry.member_count(), in role order.
    static Result<std::unique_ptr<Array>> open(const Geometry& geometry,
                                               std::vector<ArrayMemberSpec> members,
                                               ArrayOptions options);
    ~Array() override;

    uint64_t size_bytes() const override { return geometry_.capacity_bytes(); }
    bool read_only() const override { return options_.read_only; }
    Task<int> read(uint64_t offset, uint32_t length, uint8_t* buffer,
                   std::vector<ReadFailure>* failures, ReadTarget* target = nullptr) override;
    Task<int> write(uint64_t offset, uint32_t length, const uint8_t* data, bool fua) override;
    Task<int> flush() override;
    Task<int> trim(uint64_t offset, uint64_t length, bool fua) override;
    Task<int> write_zeroes(uint64_t offset, uint64_t length, bool may_punch, bool fua) override;

    const Geometry& geometry() const { return geometry_; }
    ArrayMember& member(uint32_t role) { return *members_[role]; }
    const ArrayMember& member(uint32_t role) const { return *members_[role]; }
    const std::string& name() const { return options_.name; }
    uint64_t io_timeout_ns() const { return options_.io_timeout_ns; }
    // Null for raid0, which has no redundancy.
    const Codec* codec() const { return codec_.get(); }

    // Members that are not usable.
    uint32_t unusable_count() const;
    // True when some data can no longer be read (more members lost than tolerated).
    bool lost_data() const;

    // Marks a member faulty (idempotent) and reports it through on_member_state_change.
    void fail_member(uint32_t role, const std::string& reason);
    // Marks a device failed: the active device of its role fails the role; an incoming one
    // stops its rebuild.
    void fail_device(uint32_t role, MemberDevice* device, const std::string& reason);

    // Adds an open device to the array; it stays allocated until the array is destroyed.
    MemberDevice* adopt_device(uint32_t role, const std::string& path, int fd, bool direct,
                               uint64_t data_offset, uint64_t table_offset,
                               uint64_t bitmap_offset);
    // Waits until no request holds any stripe, runs `change`, then lets requests go on.
    // For swapping devices of a role.
    Task<void> quiesce(std::function<void()> change);
    StripeLocks& stripe_locks() { return stripe_locks_; }
    WriteIntent& write_intent() { return *write_intent_; }

    struct ResyncReport {
        uint64_t regions = 0;
        uint64_t stripes = 0;
        uint64_t checksums_rewritten = 0;  // Blocks whose data was kept and checksum rewritten.
        uint64_t unverifiable_stripes = 0;  // Degraded stripes whose parity could not be redone.
    };
    // Makes the given write-intent regions consistent after an unclean stop: data on the
    // members is kept as found, checksums are recomputed for it and parity is recomputed
    // from it. Then flushes and clears the regions.
    Task<ResyncReport> resync(std::vector<uint64_t> regions);
    // Spreads the groups of each large read over `workers` (see run_groups). Call before the
    // first request, and keep the pool until the last one has finished. Without it, every
    // group of a request runs on the ring that received the request.
    void spread_over(WorkerPool* workers) { workers_ = workers; }
    // Client requests served so far; background work watches it to yield to clients.
    uint64_t client_request_count() const {
        return client_requests_.load(std::memory_order_relaxed);
    }

private:
    struct GroupRequest;
    struct GroupRequestList;
    friend struct GroupIo;

    Array(const Geometry& geometry, ArrayOptions options);

    Task<int> read_range(uint64_t offset, uint64_t length, uint8_t* buffer,
                         std::vector<ReadFailure>* failures, ReadTarget* target = nullptr);
    Task<int> write_range(uint64_t offset, uint64_t length, const uint8_t* data, bool fua);
    // The failures of one read, which its groups may report from different workers.
    struct ReadFailureList {
        std::vector<ReadFailure>* failures = nullptr;  // Null when the caller wants none.
        std::mutex mutex;
        void add(const ReadFailure& failure);
    };
    template <typename Group>
    Task<void> read_group(GroupRequest* request, ReadFailureList* failures,
                          DirectReadMemory* memory, Group* group);
    Task<void> write_group(GroupRequest* request, int* result, WaitGroup* group);
    // Returns the number of workers a read of `length` bytes is spread over: 1 for small
    // reads, and without spread_over().
    uint32_t spread_count(uint64_t length) const;
    // Splits each group request into up to `pieces` requests over consecutive rows.
    void split_rows(GroupRequestList* list, uint32_t pieces) const;
    // Runs start_group(request, group) for every request of a read's list and waits for all
    // of them: on this ring, or spread over the workers for a large read (spread_count).
    // Writes stay on one ring: spreading them measured no gain (docs/benchmarks.md).
    template <typename StartGroup>
    Task<void> run_groups(GroupRequestList* list, uint64_t length, StartGroup start_group);
    Task<int> sync_members(const std::vector<uint32_t>& roles);
    Task<int> punch_stripes(uint64_t first_stripe, uint64_t end_stripe);
    Task<int> punch_locked(uint64_t first_stripe, uint64_t end_stripe);
    Task<void> resync_stripe(uint64_t stripe, ResyncReport* report);
    void build_group_requests(uint64_t offset, uint64_t length, const uint8_t* source,
                              uint8_t* destination, GroupRequestList* list) const;

    Geometry geometry_;
    ArrayOptions options_;
    std::unique_ptr<Codec> codec_;
    std::vector<std::unique_ptr<ArrayMember>> members_;
    std::mutex devices_mutex_;
    std::vector<std::unique_ptr<MemberDevice>> devices_;  // Every device ever used.
    std::unique_ptr<TableCache> table_cache_;
    std::unique_ptr<WriteIntent> write_intent_;
    StripeLocks stripe_locks_;
    std::atomic<uint64_t> read_balance_{0};
    std::atomic<uint64_t> client_requests_{0};
    WorkerPool* workers_ = nullptr;
};

}  // namespace ecraid
