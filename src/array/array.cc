// SPDX-License-Identifier: Apache-2.0
#include "array/array.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "array/group_io.h"
#include "integrity/checksum.h"
#include "io/member_file.h"
#include "io/worker_pool.h"

namespace ecraid {

// The part of one request that falls into one group of one stripe, by data position.
// Trivially constructible, so arrays of it start uninitialized: build_group_requests sets
// every field and ranges [0, k), and nothing reads the ranges of parity positions.
struct Array::GroupRequest {
    struct Range {
        uint64_t chunk_offset;  // Byte offset within the chunk.
        uint64_t length;        // 0: the position is not touched.
        uint64_t array_offset;
        uint8_t* read_into;
        const uint8_t* write_from;
    };
    uint64_t stripe;
    uint32_t group;
    // Rows [first_row, end_row) of the chunk that this request handles: all of them, or one
    // piece of a group split over the workers (split_rows).
    uint32_t first_row;
    uint32_t end_row;
    int result;  // 0, or the negative errno that handling the group failed with.
    // False for the groups of a large request (see kInlineCopyMaxBytes).
    bool copy_inline;
    Range ranges[kGroupWidthMax];
};

// The group requests of one client request. Up to kInlineCount of them live in the list
// itself, so small requests, which touch one or two groups, allocate nothing. Requests
// that touch more groups put them on the heap.
struct Array::GroupRequestList {
    static constexpr uint32_t kInlineCount = 4;

    GroupRequest inline_requests[kInlineCount];
    std::unique_ptr<GroupRequest[]> heap_requests;
    GroupRequest* requests = nullptr;
    uint32_t count = 0;
};

namespace {

// Largest piece of a write-zeroes handled at once, so memory stays bounded.
constexpr uint64_t kZeroPieceBytes = 4ull << 20;

// Largest transfer to a member in memory that a worker copies itself (DeviceIo), and the
// largest read that stays on one worker. The groups of a larger read are spread over the
// workers, each copying its own transfers. Larger writes, and large reads with one worker,
// leave their transfers to the kernel's threads, which copy them in parallel. With one
// connection, a worker that copied all of a 1 MiB raid0 read itself served 1167 MiB/s.
constexpr uint32_t kInlineCopyMaxBytes = 64u << 10;

// Minimum rows in a piece of a group split over the workers (Array::split_rows): 16 KiB per
// position, so the pieces' member transfers do not become tiny.
constexpr uint32_t kSplitRowsMin = 4;

struct RowRun {
    uint32_t row;
    uint32_t end;
};

// Splits the rows touched by a group request, within its rows [first_row, end_row), into
// runs of consecutive rows. Returns the number of runs written to `runs` (at most
// kGroupWidthMax).
template <typename Request>
uint32_t row_runs(const Request& request, uint32_t data_count, RowRun* runs) {
    RowRun intervals[kGroupWidthMax];
    uint32_t count = 0;
    for (uint32_t position = 0; position < data_count; ++position) {
        const auto& range = request.ranges[position];
        if (range.length == 0) continue;
        uint32_t row = uint32_t(range.chunk_offset / kBlockBytes);
        uint32_t end = uint32_t((range.chunk_offset + range.length + kBlockBytes - 1) / kBlockBytes);
        row = std::max(row, request.first_row);
        end = std::min(end, request.end_row);
        if (row < end) intervals[count++] = RowRun{row, end};
    }
    std::sort(intervals, intervals + count,
              [](const RowRun& a, const RowRun& b) { return a.row < b.row; });
    uint32_t merged = 0;
    for (uint32_t i = 0; i < count; ++i) {
        if (merged > 0 && intervals[i].row <= runs[merged - 1].end) {
            runs[merged - 1].end = std::max(runs[merged - 1].end, intervals[i].end);
        } else {
            runs[merged++] = intervals[i];
        }
    }
    return merged;
}

// The byte range [begin, end) of a position's request range that falls in rows [row, end_row),
// as offsets within the chunk. Without default member initializers, so the per-position
// arrays of spans are not zeroed on every write.
struct ByteSpan {
    uint64_t begin;
    uint64_t end;
    bool empty() const { return begin >= end; }
};

template <typename Range>
ByteSpan clip(const Range& range, uint32_t row, uint32_t end_row) {
    ByteSpan span;
    span.begin = std::max<uint64_t>(range.chunk_offset, uint64_t(row) * kBlockBytes);
    span.end = std::min<uint64_t>(range.chunk_offset + range.length, uint64_t(end_row) * kBlockBytes);
    return span;
}

// True when `memory` can take a direct member transfer: 4 KiB-aligned.
bool is_block_aligned(const void* memory) {
    return reinterpret_cast<uintptr_t>(memory) % kBlockBytes == 0;
}

// True when the new data overwrites row `row` of a position whole.
bool is_whole(const ByteSpan& span, bool touched, uint32_t row) {
    uint64_t block_begin = uint64_t(row) * kBlockBytes;
    return touched && span.begin <= block_begin && span.end >= block_begin + kBlockBytes;
}

const uint8_t* zero_source() {
    static uint8_t* zeros = [] {
        void* memory = nullptr;
        if (posix_memalign(&memory, 4096, kZeroPieceBytes) != 0) std::abort();
        std::memset(memory, 0, kZeroPieceBytes);
        return static_cast<uint8_t*>(memory);
    }();
    return zeros;
}

}  // namespace

Array::Array(const Geometry& geometry, ArrayOptions options)
    : geometry_(geometry), options_(std::move(options)) {}

Array::~Array() = default;

Result<std::unique_ptr<Array>> Array::open(const Geometry& geometry,
                                           std::vector<ArrayMemberSpec> members,
                                           ArrayOptions options) {
    if (members.size() != geometry.member_count()) {
        return Status::error(Code::kInvalidArgument,
                             "array needs " + std::to_string(geometry.member_count()) +
                                 " member slots, got " + std::to_string(members.size()));
    }
    if (geometry.group_width() > kGroupWidthMax) {
        return Status::error(Code::kInvalidArgument, "group width over the supported maximum");
    }
    std::unique_ptr<Array> array(new Array(geometry, std::move(options)));
    if (geometry.parity_per_group() > 0) {
        auto codec = Codec::create(geometry.level(), geometry.data_per_group(),
                                   geometry.parity_per_group());
        if (!codec.ok()) return codec.status();
        array->codec_ = std::move(codec).value();
    }
    array->table_cache_ = std::make_unique<TableCache>(array->options_.table_cache_bytes);
    array->write_intent_ = std::make_unique<WriteIntent>(
        geometry.stripe_count(), geometry.chunk_bytes(), array->options_.region_bytes,
        array->options_.bitmap_bytes);
    for (auto& spec : members) {
        auto member = std::make_unique<ArrayMember>();
        if (spec.fd >= 0) {
            member->device.store(array->adopt_device(uint32_t(array->members_.size()), spec.path,
                                                     spec.fd, spec.direct,
                                                     spec.data_offset, spec.table_offset,
                                                     spec.bitmap_offset));
            member->state.store(spec.state);
        } else {
            member->state.store(spec.state == MemberState::kActive ? MemberState::kMissing
                                                                   : spec.state);
        }
        if (spec.incoming_fd >= 0) {
            member->incoming.store(array->adopt_device(
                uint32_t(array->members_.size()), spec.incoming_path, spec.incoming_fd, spec.incoming_direct,
                spec.incoming_data_offset, spec.incoming_table_offset,
                spec.incoming_bitmap_offset));
            member->rebuilt_up_to.store(spec.incoming_rebuilt_up_to);
        }
        array->members_.push_back(std::move(member));
    }
    return array;
}

void member_io_timed_out(void* context) {
    auto* device = static_cast<MemberDevice*>(context);
    device->errors.read.fetch_add(1, std::memory_order_relaxed);
    device->owner->fail_device(device->role, device,
                               "an I/O did not complete within the I/O timeout");
}

MemberDevice* Array::adopt_device(uint32_t role, const std::string& path, int fd, bool direct,
                                  uint64_t data_offset, uint64_t table_offset,
                                  uint64_t bitmap_offset) {
    auto device = std::make_unique<MemberDevice>();
    device->owner = this;
    device->role = role;
    device->bitmap_offset = bitmap_offset;
    device->path = path;
    device->fd = fd;
    device->direct = direct;
    device->data_offset = data_offset;
    device->table_offset = table_offset;
    device->io.issue_async = inline_issue_may_block(fd);
    if (file_in_memory(fd)) device->io.inline_copy_max_bytes = kInlineCopyMaxBytes;
    device->io.time_limit_ns = options_.io_timeout_ns;
    device->io.on_time_limit = member_io_timed_out;
    device->io.context = device.get();
    device->io.failed = &device->failed;
    if (device->io.inline_copy_max_bytes > 0) {
        spdlog::info("{}: {} is a file in memory; its transfers up to {} KiB are copied by the "
                     "workers themselves",
                     options_.name, path, kInlineCopyMaxBytes >> 10);
    }
    if (device->io.issue_async) {
        spdlog::info("{}: {} is not a block device or a file on a local filesystem; its I/O "
                     "goes through io_uring's worker threads",
                     options_.name, path);
    }
    uint64_t block_count = geometry_.stripe_count() * (geometry_.chunk_bytes() / kBlockBytes);
    device->table = std::make_unique<ChecksumTable>(table_cache_.get(), fd, table_offset,
                                                    block_count, &device->io);
    std::lock_guard lock(devices_mutex_);
    devices_.push_back(std::move(device));
    return devices_.back().get();
}

Task<void> Array::quiesce(std::function<void()> change) {
    StripeLocks::Guard guard =
        co_await stripe_locks_.lock(0, std::max<uint64_t>(geometry_.stripe_count(), 1), true);
    change();
}

void Array::fail_device(uint32_t role, MemberDevice* device, const std::string& reason) {
    ArrayMember& target = *members_[role];
    if (device->failed.exchange(true)) return;
    if (device == target.incoming.load()) {
        spdlog::error("{}: rebuild target {} for member {} failed: {}", options_.name,
                      device->path, role, reason);
        if (options_.on_incoming_failed) options_.on_incoming_failed(role, reason);
        return;
    }
    if (device == target.device.load()) fail_member(role, reason);
}

uint32_t Array::unusable_count() const {
    uint32_t count = 0;
    for (const auto& member : members_) count += member->usable() ? 0 : 1;
    return count;
}

bool Array::lost_data() const {
    uint32_t tolerated = geometry_.failures_tolerated();
    if (geometry_.group_count() == 1) return unusable_count() > tolerated;
    // raid10: each mirrored pair is its own group.
    for (uint32_t group = 0; group < geometry_.group_count(); ++group) {
        uint32_t lost = 0;
        for (uint32_t position = 0; position < geometry_.group_width(); ++position) {
            lost += members_[geometry_.member_of(0, group, position)]->usable() ? 0 : 1;
        }
        if (lost > tolerated) return true;
    }
    return false;
}

void Array::fail_member(uint32_t role, const std::string& reason) {
    ArrayMember& target = *members_[role];
    MemberState expected = MemberState::kActive;
    if (!target.state.compare_exchange_strong(expected, MemberState::kFaulty)) return;
    MemberDevice* device = target.device.load();
    if (device != nullptr) device->failed.store(true);
    spdlog::error("{}: member {} ({}) is now faulty: {}", options_.name, role,
                  device != nullptr ? device->path : std::string("missing"), reason);
    if (lost_data()) {
        spdlog::error("{}: more members lost than {} tolerates; data on the lost members' "
                      "stripes is unavailable",
                      options_.name, level_name(geometry_.level()));
    }
    if (options_.on_member_state_change) {
        options_.on_member_state_change(role, MemberState::kFaulty, reason);
    }
}

void Array::build_group_requests(uint64_t offset, uint64_t length, const uint8_t* source,
                                 uint8_t* destination, GroupRequestList* list) const {
    assert(length > 0);
    // Chunk c of the array is data position c % k of group c / k, counting groups across
    // stripes. So the request touches every group from that of its first byte to that of
    // its last.
    uint64_t end = offset + length;
    uint32_t k = geometry_.data_per_group();
    uint64_t first_group = offset / geometry_.chunk_bytes() / k;
    uint64_t last_group = (end - 1) / geometry_.chunk_bytes() / k;
    uint64_t count = last_group - first_group + 1;
    list->requests = list->inline_requests;
    if (count > GroupRequestList::kInlineCount) {
        list->heap_requests = std::make_unique_for_overwrite<GroupRequest[]>(count);
        list->requests = list->heap_requests.get();
    }
    list->count = 0;

    GroupRequest* request = nullptr;
    for (uint64_t at = offset; at < end;) {
        Extent extent = geometry_.extent_at(at, end);
        at += extent.length;
        if (request == nullptr || request->stripe != extent.stripe ||
            request->group != extent.group) {
            assert(list->count < count);
            request = &list->requests[list->count++];
            request->stripe = extent.stripe;
            request->group = extent.group;
            request->first_row = 0;
            request->end_row = uint32_t(geometry_.chunk_bytes() / kBlockBytes);
            request->result = 0;
            request->copy_inline = length <= kInlineCopyMaxBytes;
            std::fill(request->ranges, request->ranges + k, GroupRequest::Range{});
        }
        GroupRequest::Range& range = request->ranges[extent.position];
        range.chunk_offset = extent.member_offset - extent.stripe * geometry_.chunk_bytes();
        range.length = extent.length;
        range.array_offset = extent.array_offset;
        uint64_t relative = extent.array_offset - offset;
        if (destination != nullptr) range.read_into = destination + relative;
        if (source != nullptr) range.write_from = source + relative;
    }
    assert(list->count == count);
}

// ---- Reads ----

Task<int> Array::read(uint64_t offset, uint32_t length, uint8_t* buffer,
                      std::vector<ReadFailure>* failures, ReadTarget* target) {
    if (length == 0) co_return 0;
    if (offset > size_bytes() || length > size_bytes() - offset) co_return -EINVAL;
    client_requests_.fetch_add(1, std::memory_order_relaxed);
    co_return co_await read_range(offset, length, buffer, failures, target);
}

Task<int> Array::read_range(uint64_t offset, uint64_t length, uint8_t* buffer,
                            std::vector<ReadFailure>* failures, ReadTarget* target) {
    uint64_t first_stripe = 0;
    uint64_t end_stripe = 0;
    geometry_.stripe_range(offset, length, &first_stripe, &end_stripe);
    StripeLocks::Guard guard = co_await stripe_locks_.lock(first_stripe, end_stripe, false);

    GroupRequestList list;
    build_group_requests(offset, length, nullptr, buffer, &list);
    DirectReadMemory memory;
    memory.target = target;
    ReadFailureList failure_list;
    failure_list.failures = failures;
    DirectReadMemory* direct_memory = target != nullptr ? &memory : nullptr;
    co_await run_groups(&list, length,
                        [this, &failure_list, direct_memory](GroupRequest* request, auto* group) {
                            return read_group(request, &failure_list, direct_memory, group);
                        });
    // The kernel may still write into memory taken from the caller; the ring keeps it.
    if (memory.taken()) co_return kReadAgain;
    for (uint32_t i = 0; i < list.count; ++i) {
        if (list.requests[i].result < 0) co_return list.requests[i].result;
    }
    co_return 0;
}

uint32_t Array::spread_count(uint64_t length) const {
    if (workers_ == nullptr || length <= kInlineCopyMaxBytes) return 1;
    return workers_->size();
}

void Array::split_rows(GroupRequestList* list, uint32_t pieces) const {
    uint32_t data_count = geometry_.data_per_group();
    auto split = std::make_unique_for_overwrite<GroupRequest[]>(size_t(list->count) * pieces);
    uint32_t count = 0;
    for (uint32_t i = 0; i < list->count; ++i) {
        const GroupRequest& request = list->requests[i];
        RowRun runs[kGroupWidthMax];
        uint32_t run_count = row_runs(request, data_count, runs);
        uint32_t low = run_count > 0 ? runs[0].row : request.first_row;
        uint32_t high = run_count > 0 ? runs[run_count - 1].end : request.end_row;
        uint32_t parts = std::clamp<uint32_t>((high - low) / kSplitRowsMin, 1, pieces);
        for (uint32_t part = 0; part < parts; ++part) {
            GroupRequest& piece = split[count++];
            piece = request;
            piece.first_row = low + (high - low) * part / parts;
            piece.end_row = low + (high - low) * (part + 1) / parts;
        }
    }
    list->heap_requests = std::move(split);
    list->requests = list->heap_requests.get();
    list->count = count;
}

template <typename StartGroup>
Task<void> Array::run_groups(GroupRequestList* list, uint64_t length, StartGroup start_group) {
    uint32_t worker_count = spread_count(length);
    if (worker_count > 1 && list->count < worker_count) {
        split_rows(list, (worker_count + list->count - 1) / list->count);
    }
    if (worker_count <= 1 || list->count <= 1) {
        WaitGroup group;
        group.add(list->count);
        for (uint32_t i = 0; i < list->count; ++i) spawn(start_group(&list->requests[i], &group));
        co_await group.wait();
        co_return;
    }
    // Request i runs on worker i % worker_count, so that checksums, decoding and the copies
    // of members in memory (inline, see kInlineCopyMaxBytes) use every CPU, even for a single
    // connection. The stripe locks stay with this ring.
    Ring* home = Ring::current();
    CrossRingWaitGroup group(list->count);
    for (uint32_t i = 0; i < list->count; ++i) {
        GroupRequest* request = &list->requests[i];
        request->copy_inline = true;
        Ring& ring = workers_->ring(i % worker_count);
        if (&ring == home) {
            spawn(start_group(request, &group));
        } else {
            ring.post([start_group, request, &group] { spawn(start_group(request, &group)); });
        }
    }
    co_await group.wait();
}

void Array::ReadFailureList::add(const ReadFailure& failure) {
    if (failures == nullptr) return;
    std::lock_guard lock(mutex);
    failures->push_back(failure);
}

template <typename Group>
Task<void> Array::read_group(GroupRequest* request, ReadFailureList* failures,
                             DirectReadMemory* memory, Group* group) {
    int* result = &request->result;
    uint32_t data_count = geometry_.data_per_group();
    uint32_t width = geometry_.group_width();
    RowRun runs[kGroupWidthMax];
    uint32_t run_count = row_runs(*request, data_count, runs);

    for (uint32_t run = 0; run < run_count; ++run) {
        GroupIo io(*this, request->stripe, request->group, runs[run].row, runs[run].end);
        io.copy_inline = request->copy_inline;

        // Mirrors (k = 1) can serve a read from any copy: spread stripes over the copies.
        uint32_t source_of[kGroupWidthMax];
        for (uint32_t position = 0; position < data_count; ++position) {
            source_of[position] = position;
        }
        if (data_count == 1) {
            uint32_t start = uint32_t(request->stripe % width);
            for (uint32_t i = 0; i < width; ++i) {
                uint32_t candidate = (start + i) % width;
                if (io.usable(candidate)) {
                    source_of[0] = candidate;
                    break;
                }
            }
        }

        bool needed[kGroupWidthMax] = {};
        uint32_t positions[kGroupWidthMax];
        uint32_t position_count = 0;
        for (uint32_t position = 0; position < data_count; ++position) {
            ByteSpan span = clip(request->ranges[position], runs[run].row, runs[run].end);
            if (request->ranges[position].length == 0 || span.empty()) continue;
            needed[source_of[position]] = true;
            positions[position_count++] = source_of[position];
        }
        // Load only the rows each position needs; the rows outside stay unloaded. A position
        // whose range covers the whole run in whole blocks is read straight into the
        // caller's buffer.
        RowRange loads[kGroupWidthMax];
        for (uint32_t i = 0; i < position_count; ++i) {
            uint32_t data_position = data_count == 1 ? 0 : positions[i];
            const GroupRequest::Range& range = request->ranges[data_position];
            ByteSpan span = clip(range, runs[run].row, runs[run].end);
            loads[i] = RowRange{positions[i], uint32_t(span.begin / kBlockBytes),
                                uint32_t((span.end + kBlockBytes - 1) / kBlockBytes)};
            uint8_t* target = range.read_into + (span.begin - range.chunk_offset);
            if (memory != nullptr && span.begin == uint64_t(runs[run].row) * kBlockBytes &&
                span.end == uint64_t(runs[run].end) * kBlockBytes && is_block_aligned(target)) {
                io.use_direct(positions[i], target, memory);
            }
        }
        co_await io.load_ranges(loads, position_count);
        co_await io.repair_rows(runs[run].row, runs[run].end, needed);

        for (uint32_t position = 0; position < data_count; ++position) {
            const GroupRequest::Range& range = request->ranges[position];
            ByteSpan span = clip(range, runs[run].row, runs[run].end);
            if (range.length == 0 || span.empty()) continue;
            uint32_t source = source_of[position];
            for (uint64_t at = span.begin; at < span.end;) {
                uint32_t row = uint32_t(at / kBlockBytes);
                uint64_t piece_end = std::min<uint64_t>(span.end, uint64_t(row + 1) * kBlockBytes);
                uint8_t* target = range.read_into + (at - range.chunk_offset);
                if (io.state(source, row) == BlockState::kLost ||
                    io.state(source, row) == BlockState::kBad) {
                    *result = -EIO;
                    failures->add(ReadFailure{range.array_offset + (at - range.chunk_offset),
                                              piece_end - at, EIO});
                    std::memset(target, 0, piece_end - at);
                } else if (io.direct[source] == nullptr) {
                    std::memcpy(target, io.block(source, row) + (at % kBlockBytes), piece_end - at);
                }
                at = piece_end;
            }
        }
        co_await io.write_back_repairs();
        io.unpin_tables();
    }
    group->done();
}

// ---- Writes ----

Task<int> Array::write(uint64_t offset, uint32_t length, const uint8_t* data, bool fua) {
    if (options_.read_only) co_return -EPERM;
    if (length == 0) co_return 0;
    if (offset > size_bytes() || length > size_bytes() - offset) co_return -ENOSPC;
    client_requests_.fetch_add(1, std::memory_order_relaxed);
    co_return co_await write_range(offset, length, data, fua);
}

Task<int> Array::write_range(uint64_t offset, uint64_t length, const uint8_t* data, bool fua) {
    uint64_t first_stripe = 0;
    uint64_t end_stripe = 0;
    geometry_.stripe_range(offset, length, &first_stripe, &end_stripe);
    GroupRequestList list;
    build_group_requests(offset, length, data, nullptr, &list);
    {
        StripeLocks::Guard guard = co_await stripe_locks_.lock(first_stripe, end_stripe, true);
        int marked = co_await write_intent_->begin_write(*this, first_stripe, end_stripe);
        if (marked < 0) co_return marked;
        WaitGroup group;
        group.add(list.count);
        for (uint32_t i = 0; i < list.count; ++i) {
            GroupRequest& request = list.requests[i];
            spawn(write_group(&request, &request.result, &group));
        }
        co_await group.wait();
        write_intent_->end_write(first_stripe, end_stripe);
        for (uint32_t i = 0; i < list.count; ++i) {
            if (list.requests[i].result < 0) co_return list.requests[i].result;
        }
    }
    if (fua) {
        std::vector<uint32_t> roles;
        for (uint32_t i = 0; i < list.count; ++i) {
            const GroupRequest& request = list.requests[i];
            for (uint32_t position = 0; position < geometry_.group_width(); ++position) {
                roles.push_back(geometry_.member_of(request.stripe, request.group, position));
            }
        }
        std::sort(roles.begin(), roles.end());
        roles.erase(std::unique(roles.begin(), roles.end()), roles.end());
        co_return co_await sync_members(roles);
    }
    co_return 0;
}

Task<void> Array::write_group(GroupRequest* request, int* result, WaitGroup* group) {
    uint32_t k = geometry_.data_per_group();
    uint32_t m = geometry_.parity_per_group();
    uint32_t width = k + m;
    RowRun runs[kGroupWidthMax];
    uint32_t run_count = row_runs(*request, k, runs);

    for (uint32_t run = 0; run < run_count && *result == 0; ++run) {
        uint32_t row = runs[run].row;
        uint32_t end = runs[run].end;
        uint32_t rows = end - row;
        GroupIo io(*this, request->stripe, request->group, row, end);
        io.copy_inline = request->copy_inline;

        // Which rows of which data positions the new data covers whole.
        ByteSpan spans[kGroupWidthMax];
        bool touched[kGroupWidthMax] = {};
        uint32_t full_rows[kGroupWidthMax] = {};
        bool all_full = true;
        for (uint32_t position = 0; position < k; ++position) {
            const GroupRequest::Range& range = request->ranges[position];
            spans[position] = clip(range, row, end);
            touched[position] = range.length > 0 && !spans[position].empty();
            if (touched[position]) {
                uint64_t first_full = (spans[position].begin + kBlockBytes - 1) / kBlockBytes;
                uint64_t end_full = spans[position].end / kBlockBytes;
                full_rows[position] = end_full > first_full ? uint32_t(end_full - first_full) : 0;
            }
            all_full = all_full && full_rows[position] == rows;
        }
        if (all_full) {
            // Whole rows load nothing, so data goes to the members straight from the caller's
            // buffer, and for mirrors every copy does.
            const uint8_t* sources[kGroupWidthMax];
            bool aligned = true;
            for (uint32_t position = 0; position < k; ++position) {
                const GroupRequest::Range& range = request->ranges[position];
                sources[position] = range.write_from + (spans[position].begin - range.chunk_offset);
                aligned = aligned && is_block_aligned(sources[position]);
            }
            // Stores only read the memory of a direct position. Parity positions keep scratch
            // unless they are mirror copies of the one data position.
            uint32_t direct_count = aligned ? (k == 1 ? width : k) : 0;
            for (uint32_t position = 0; position < direct_count; ++position) {
                io.use_direct(position, const_cast<uint8_t*>(sources[k == 1 ? 0 : position]));
            }
        }

        // Reads needed by read-modify-write (touched positions and parity over the run) and by
        // reconstruct-write (every block of a data position not overwritten whole).
        uint64_t rmw_reads = 0;
        uint64_t rcw_reads = 0;
        bool rmw_possible = m > 0 && k > 1;
        for (uint32_t position = 0; position < k; ++position) {
            if (touched[position]) {
                rmw_reads += rows;
                rmw_possible = rmw_possible && io.usable(position);
            }
            rcw_reads += rows - full_rows[position];
        }
        for (uint32_t parity = k; parity < width; ++parity) {
            rmw_reads += rows;
            rmw_possible = rmw_possible && io.usable(parity);
        }

        bool done = false;
        if (!all_full && rmw_possible && rmw_reads < rcw_reads) {
            uint32_t positions[kGroupWidthMax];
            uint32_t count = 0;
            for (uint32_t position = 0; position < k; ++position) {
                if (touched[position]) positions[count++] = position;
            }
            for (uint32_t parity = k; parity < width; ++parity) positions[count++] = parity;
            co_await io.load(positions, count, row, end);
            bool all_good = true;
            for (uint32_t i = 0; i < count && all_good; ++i) {
                for (uint32_t r = row; r < end; ++r) {
                    if (io.state(positions[i], r) != BlockState::kGood) {
                        all_good = false;
                        break;
                    }
                }
            }
            if (all_good) {
                // Apply each position's change to parity, then store it in scratch.
                Buffer updated(size_t(rows) * kBlockBytes);
                uint8_t* parity[kGroupWidthMax];
                for (uint32_t j = 0; j < m; ++j) parity[j] = io.block(k + j, row);
                for (uint32_t position = 0; position < k; ++position) {
                    if (!touched[position]) continue;
                    uint8_t* old_data = io.block(position, row);
                    std::memcpy(updated.data(), old_data, size_t(rows) * kBlockBytes);
                    const GroupRequest::Range& range = request->ranges[position];
                    std::memcpy(updated.data() + (spans[position].begin - uint64_t(row) * kBlockBytes),
                                range.write_from + (spans[position].begin - range.chunk_offset),
                                spans[position].end - spans[position].begin);
                    codec_->update(position, old_data, updated.data(), parity,
                                   size_t(rows) * kBlockBytes);
                    std::memcpy(old_data, updated.data(), size_t(rows) * kBlockBytes);
                }
                done = true;
            }
        }
        if (!done && !all_full) {
            // Reconstruct-write: load what the new data does not overwrite whole. A position
            // is needed when any of its blocks in the run keeps old bytes. Without parity
            // (raid0) only the partly written blocks are needed: nothing is computed from the
            // blocks the request does not touch.
            auto keeps_old = [&](uint32_t position, uint32_t r) {
                if (is_whole(spans[position], touched[position], r)) return false;
                if (m > 0) return true;
                uint64_t block_begin = uint64_t(r) * kBlockBytes;
                return touched[position] && spans[position].begin < block_begin + kBlockBytes &&
                       spans[position].end > block_begin;
            };
            bool needed[kGroupWidthMax] = {};
            RowRange loads[kGroupWidthMax * 2];
            uint32_t load_count = 0;
            for (uint32_t position = 0; position < k; ++position) {
                uint32_t r = row;
                while (r < end) {
                    if (!keeps_old(position, r)) {
                        ++r;
                        continue;
                    }
                    uint32_t run_end = r + 1;
                    while (run_end < end && keeps_old(position, run_end)) {
                        ++run_end;
                    }
                    needed[position] = true;
                    // At most three runs per position: before, at the partial edges, after.
                    if (load_count < kGroupWidthMax * 2) {
                        loads[load_count++] = RowRange{position, r, run_end};
                    } else {
                        co_await io.load(&position, 1, r, run_end);
                    }
                    r = run_end;
                }
            }
            co_await io.load_ranges(loads, load_count);
            uint32_t lost = co_await io.repair_rows(row, end, needed);
            if (lost > 0) {
                spdlog::error("{}: stripe {} group {}: write rejected, {} row(s) cannot be "
                              "reconstructed",
                              options_.name, request->stripe, request->group, lost);
                *result = -EIO;
                io.unpin_tables();
                break;
            }
        }

        // Merge the new data (read-modify-write already did) and compute parity over the run.
        for (uint32_t position = 0; position < k && !done; ++position) {
            if (!touched[position] || io.direct[position] != nullptr) continue;
            const GroupRequest::Range& range = request->ranges[position];
            std::memcpy(io.block(position, row) + (spans[position].begin - uint64_t(row) * kBlockBytes),
                        range.write_from + (spans[position].begin - range.chunk_offset),
                        spans[position].end - spans[position].begin);
        }
        // Direct mirror copies already point at the data.
        bool copies_direct = k == 1 && m > 0 && io.direct[1] != nullptr;
        if (m > 0 && !done && !copies_direct) {
            const uint8_t* data[kGroupWidthMax];
            uint8_t* parity[kGroupWidthMax];
            for (uint32_t position = 0; position < k; ++position) data[position] = io.block(position, row);
            for (uint32_t j = 0; j < m; ++j) parity[j] = io.block(k + j, row);
            codec_->encode(data, parity, size_t(rows) * kBlockBytes);
        }

        RowRange ranges[kGroupWidthMax];
        uint32_t range_count = 0;
        for (uint32_t position = 0; position < k; ++position) {
            if (!touched[position]) continue;
            ranges[range_count++] =
                RowRange{position, uint32_t(spans[position].begin / kBlockBytes),
                         uint32_t((spans[position].end + kBlockBytes - 1) / kBlockBytes)};
        }
        for (uint32_t parity = k; parity < width; ++parity) {
            ranges[range_count++] = RowRange{parity, row, end};
        }
        co_await io.store_ranges(ranges, range_count);
        co_await io.write_back_repairs();
        if (m == 0) {
            // raid0: the write failed only if one of the chunks it wrote is unwritable.
            for (uint32_t position = 0; position < k; ++position) {
                if (touched[position] && !io.writable(position)) *result = -EIO;
            }
        } else if (io.unwritable_positions() > m) {
            *result = -EIO;
        }
        io.unpin_tables();
    }
    group->done();
}

// ---- Flush, trim and zeroes ----

// The devices writes to `role` reach: the active device and a rebuild's incoming device.
static uint32_t write_devices(const ArrayMember& member, MemberDevice** devices) {
    uint32_t count = 0;
    if (member.active()) devices[count++] = member.device.load();
    MemberDevice* incoming = member.incoming.load();
    if (incoming != nullptr && !incoming->failed.load()) devices[count++] = incoming;
    return count;
}

Task<int> Array::sync_members(const std::vector<uint32_t>& roles) {
    struct Target {
        uint32_t role;
        MemberDevice* device;
    };
    std::vector<Target> targets;
    for (uint32_t role : roles) {
        MemberDevice* devices[2];
        uint32_t count = write_devices(*members_[role], devices);
        for (uint32_t i = 0; i < count; ++i) targets.push_back(Target{role, devices[i]});
    }
    for (const Target& target : targets) {
        int result = co_await target.device->table->write_back();
        if (result < 0) {
            target.device->errors.write.fetch_add(1, std::memory_order_relaxed);
            fail_device(target.role, target.device,
                        std::string("checksum table write failed: ") + strerror(-result));
        }
    }
    std::vector<IoOp> ops(targets.size());
    IoBatch batch(*Ring::current());
    for (size_t i = 0; i < targets.size(); ++i) {
        prepare_rw(&ops[i], IoKind::kFdatasync, targets[i].device->fd, nullptr, 0, 0);
        ops[i].device = &targets[i].device->io;
        batch.add(&ops[i]);
    }
    co_await batch.wait();
    for (size_t i = 0; i < targets.size(); ++i) {
        if (ops[i].result < 0) {
            // A failed fdatasync is sticky: what it covered may be lost, so the device goes.
            targets[i].device->errors.write.fetch_add(1, std::memory_order_relaxed);
            fail_device(targets[i].role, targets[i].device,
                        std::string("fdatasync failed: ") + strerror(-ops[i].result));
        }
    }
    co_return lost_data() ? -EIO : 0;
}

Task<int> Array::flush() {
    std::vector<uint64_t> before = write_intent_->snapshot();
    std::vector<uint32_t> roles(members_.size());
    for (uint32_t role = 0; role < roles.size(); ++role) roles[role] = role;
    int result = co_await sync_members(roles);
    if (result == 0 && !options_.read_only) co_await write_intent_->clear_idle(*this, before);
    co_return result;
}

Task<int> Array::punch_stripes(uint64_t first_stripe, uint64_t end_stripe) {
    StripeLocks::Guard guard = co_await stripe_locks_.lock(first_stripe, end_stripe, true);
    int marked = co_await write_intent_->begin_write(*this, first_stripe, end_stripe);
    if (marked < 0) co_return marked;
    int result = co_await punch_locked(first_stripe, end_stripe);
    write_intent_->end_write(first_stripe, end_stripe);
    co_return result;
}

Task<int> Array::punch_locked(uint64_t first_stripe, uint64_t end_stripe) {
    uint64_t chunk = geometry_.chunk_bytes();
    uint64_t blocks_per_chunk = chunk / kBlockBytes;
    for (uint32_t role = 0; role < members_.size(); ++role) {
        MemberDevice* devices[2];
        uint32_t count = write_devices(*members_[role], devices);
        for (uint32_t i = 0; i < count; ++i) {
            MemberDevice* device = devices[i];
            int result = co_await Ring::current()->fallocate(
                device->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                device->data_offset + first_stripe * chunk, (end_stripe - first_stripe) * chunk,
                &device->io);
            if (result == -EOPNOTSUPP || result == -EINVAL) co_return result;
            if (result < 0) {
                device->errors.write.fetch_add(1, std::memory_order_relaxed);
                fail_device(role, device, std::string("punching a hole failed: ") + strerror(-result));
                continue;
            }
            result = co_await device->table->clear(first_stripe * blocks_per_chunk,
                                                   (end_stripe - first_stripe) * blocks_per_chunk);
            if (result < 0) {
                fail_device(role, device, std::string("clearing checksums failed: ") + strerror(-result));
            }
        }
    }
    co_return lost_data() ? -EIO : 0;
}

Task<int> Array::write_zeroes(uint64_t offset, uint64_t length, bool may_punch, bool fua) {
    if (options_.read_only) co_return -EPERM;
    if (length == 0) co_return 0;
    if (offset > size_bytes() || length > size_bytes() - offset) co_return -ENOSPC;
    uint64_t stripe_bytes = geometry_.stripe_data_bytes();
    uint64_t end = offset + length;
    uint64_t whole_begin = (offset + stripe_bytes - 1) / stripe_bytes * stripe_bytes;
    uint64_t whole_end = end / stripe_bytes * stripe_bytes;
    bool punched = false;
    if (may_punch && whole_begin < whole_end) {
        int result = co_await punch_stripes(whole_begin / stripe_bytes, whole_end / stripe_bytes);
        if (result < 0 && result != -EOPNOTSUPP && result != -EINVAL) co_return result;
        punched = result == 0;
    }
    // Write zeros through the normal path where no hole was punched, a piece at a time.
    const uint8_t* zeros = zero_source();
    uint64_t at = offset;
    while (at < end) {
        if (punched && at == whole_begin) {
            at = whole_end;
            continue;
        }
        uint64_t limit = punched && at < whole_begin ? whole_begin : end;
        uint64_t piece = std::min(limit - at, kZeroPieceBytes);
        int result = co_await write_range(at, piece, zeros, false);
        if (result < 0) co_return result;
        at += piece;
    }
    if (fua) co_return co_await flush();
    co_return 0;
}

Task<int> Array::trim(uint64_t offset, uint64_t length, bool fua) {
    if (options_.read_only) co_return -EPERM;
    if (length == 0) co_return 0;
    if (offset > size_bytes() || length > size_bytes() - offset) co_return -EINVAL;
    // Trimmed ranges read back as zeros, which keeps parity and checksums trivially valid.
    co_return co_await write_zeroes(offset, length, true, fua);
}

}  // namespace ecraid

namespace ecraid {

// ---- Resync after an unclean stop ----

Task<Array::ResyncReport> Array::resync(std::vector<uint64_t> regions) {
    ResyncReport report;
    report.regions = regions.size();
    uint64_t per_region = write_intent_->stripes_per_region();
    for (uint64_t region : regions) {
        uint64_t first = region * per_region;
        uint64_t end = std::min(first + per_region, geometry_.stripe_count());
        for (uint64_t stripe = first; stripe < end; ++stripe) {
            co_await resync_stripe(stripe, &report);
            ++report.stripes;
        }
    }
    int flushed = co_await flush();
    if (flushed == 0) co_await write_intent_->clear_regions(*this, regions);
    co_return report;
}

Task<void> Array::resync_stripe(uint64_t stripe, ResyncReport* report) {
    StripeLocks::Guard guard = co_await stripe_locks_.lock(stripe, stripe + 1, true);
    uint32_t k = geometry_.data_per_group();
    uint32_t m = geometry_.parity_per_group();
    uint32_t rows = uint32_t(geometry_.chunk_bytes() / kBlockBytes);
    for (uint32_t group = 0; group < geometry_.group_count(); ++group) {
        GroupIo io(*this, stripe, group, 0, rows);
        io.count_mismatches = false;
        co_await io.pin_tables();
        uint32_t width = k + m;
        uint32_t positions[kGroupWidthMax];
        for (uint32_t position = 0; position < width; ++position) positions[position] = position;
        co_await io.load(positions, width, 0, rows);
        // Blocks found on a member are what the crash left; their checksums are recomputed
        // rather than trusted. Blocks that could not be read at all stay erasures.
        RowRange rewrites[kGroupWidthMax];
        uint32_t rewrite_count = 0;
        bool complete = true;
        for (uint32_t position = 0; position < width; ++position) {
            if (!io.usable(position)) {
                complete = complete && position >= k;
                continue;
            }
            uint32_t low = rows;
            uint32_t high = 0;
            for (uint32_t row = 0; row < rows; ++row) {
                if (io.state(position, row) != BlockState::kBad) continue;
                io.state(position, row) = BlockState::kGood;
                low = std::min(low, row);
                high = row + 1;
                ++report->checksums_rewritten;
            }
            if (low < high && position < k) rewrites[rewrite_count++] = RowRange{position, low, high};
            if (low < high && position >= k && !complete) {
                rewrites[rewrite_count++] = RowRange{position, low, high};
            }
        }
        if (!complete) {
            // A data position is missing: parity is the only copy of its data, so it is kept
            // as found. If the crash tore this stripe, that data may be stale: the write hole
            // that a crash together with a member failure leaves open.
            ++report->unverifiable_stripes;
            if (rewrite_count > 0) co_await io.store_ranges(rewrites, rewrite_count);
            io.unpin_tables();
            continue;
        }
        if (m > 0) {
            const uint8_t* data[kGroupWidthMax];
            uint8_t* parity[kGroupWidthMax];
            for (uint32_t position = 0; position < k; ++position) data[position] = io.block(position, 0);
            for (uint32_t j = 0; j < m; ++j) parity[j] = io.block(k + j, 0);
            codec_->encode(data, parity, size_t(rows) * kBlockBytes);
            for (uint32_t j = 0; j < m; ++j) rewrites[rewrite_count++] = RowRange{k + j, 0, rows};
        }
        if (rewrite_count > 0) co_await io.store_ranges(rewrites, rewrite_count);
        io.unpin_tables();
    }
}

}  // namespace ecraid
