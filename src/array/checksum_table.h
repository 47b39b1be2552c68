// SPDX-License-Identifier: Apache-2.0
// ChecksumTable: the cached checksum table of one member.
//
// The table holds one 8-byte little-endian XXH3-64 entry per 4 KiB block of the member's
// data area (see integrity/checksum.h for the value and the all-zero convention), stored in
// 4 KiB pages of 512 entries at `table_offset` on the member. Pages are cached in memory up
// to a byte budget shared by all tables of an array. A page is loaded through the current
// worker's ring on first use and written back when it is evicted dirty or on write_back().
// Eviction picks unpinned pages by the clock algorithm. It skips pinned pages and pages under
// I/O, so the cache exceeds its budget while those alone fill it.
//
// Threading: any worker may call any method. Callers pin the pages they use with acquire()
// and only touch entries of pinned pages. Entry reads and writes are atomic 8-byte accesses,
// so two stripes sharing a page update it safely; the stripe lock orders accesses to one
// block's entry. A write-back snapshots a page, so an entry changed during the write makes
// the page dirty again instead of being lost. At most one write of a page is in flight.
//
// Errors: a failed table read returns -errno and caches nothing. A failed table write keeps
// the page dirty and makes every later write_back() of that table fail, until discard().
#pragma once

#include <cstdint>
#include <memory>

#include "io/ring.h"
#include "io/task.h"

namespace ecraid {

class TableCache;

namespace detail {
struct TableState;
struct TableCacheState;
}  // namespace detail

class ChecksumTable {
public:
    static constexpr uint32_t kEntriesPerPage = 512;
    static constexpr uint32_t kPageBytes = 4096;

    // `fd` is the member's descriptor, with or without O_DIRECT, and `block_count` the number
    // of 4 KiB blocks in its data area. The table works on a duplicate of `fd` that it closes
    // after the table and the last write of its pages are gone, so the caller may close `fd`
    // at any time. If the duplicate cannot be made, every table I/O fails with dup()'s errno.
    // `device` (optional) is the member's issue mode and time limit for the rings; it must
    // outlive the table's I/O.
    ChecksumTable(TableCache* cache, int fd, uint64_t table_offset, uint64_t block_count,
                  DeviceIo* device = nullptr);
    // Drops cached pages, including dirty ones (call write_back() first). Requires no
    // acquire, clear or write_back of this table in progress and no page pinned.
    ~ChecksumTable();
    ChecksumTable(const ChecksumTable&) = delete;
    ChecksumTable& operator=(const ChecksumTable&) = delete;

    // Loads and pins the pages covering blocks [first_block, first_block + count), then
    // evicts unpinned pages while the cache is over budget. Returns 0 or a negative errno
    // from reading the table (the member is then unusable); on error nothing stays pinned.
    // Requires a current Ring and the range inside the table.
    Task<int> acquire(uint64_t first_block, uint64_t count);
    // Pins the pages covering blocks [first_block, first_block + count) without waiting,
    // when every one of them is cached and loaded and the cache is within its budget.
    // Otherwise returns false with nothing pinned, and acquire() has to do the work. A
    // successful call is released like an acquire().
    bool try_acquire(uint64_t first_block, uint64_t count);
    // Unpins the pages pinned by the matching successful acquire() or try_acquire().
    void release(uint64_t first_block, uint64_t count);

    // Requires the block's page to be pinned.
    uint64_t get(uint64_t block) const;
    void set(uint64_t block, uint64_t checksum);

    // Sets the entries of [first_block, first_block + count) to zero (a trimmed range). Pages
    // entirely inside the range are replaced without being read. Returns 0 or the -errno of
    // a failed read, after clearing the pages before the one that failed. Requires a current
    // Ring.
    Task<int> clear(uint64_t first_block, uint64_t count);

    // Writes every dirty page, waiting for writes of its pages that eviction already started.
    // Returns 0 or the first negative errno, which is sticky (see the file comment). Does not
    // fdatasync. Requires a current Ring.
    Task<int> write_back();

    uint64_t block_count() const { return block_count_; }
    uint64_t page_count() const;
    uint64_t dirty_pages() const;
    // Returns the chunks of the page directory allocated now, each indexing up to 64 pages.
    // Only chunks with a cached page are allocated.
    uint64_t directory_chunks() const;

    // Drops every cached page without writing (the member failed and will be rebuilt) and
    // clears an earlier write error. Pages pinned or under I/O at the time stay cached and
    // are marked clean, so their changes are written only if they change again.
    void discard();

    // Counters since the table was created.
    struct Stats {
        uint64_t page_loads = 0;      // Pages read from the member.
        uint64_t page_writes = 0;     // Pages written to the member, by eviction or write_back.
        uint64_t page_evictions = 0;  // Pages dropped from the cache to meet the budget.
        uint64_t load_waits = 0;      // Acquires that waited for another acquire's load.
    };
    Stats stats() const;

private:
    std::shared_ptr<detail::TableState> state_;
    uint64_t block_count_;
};

// The shared page budget of one array's tables. The tables share its state, so they may
// outlive it.
class TableCache {
public:
    explicit TableCache(uint64_t budget_bytes);
    ~TableCache();
    TableCache(const TableCache&) = delete;
    TableCache& operator=(const TableCache&) = delete;

    uint64_t budget_bytes() const { return budget_bytes_; }
    // Bytes of pages cached by all tables, including pages being loaded.
    uint64_t cached_bytes() const;

private:
    friend class ChecksumTable;
    std::shared_ptr<detail::TableCacheState> state_;
    uint64_t budget_bytes_;
};

}  // namespace ecraid
