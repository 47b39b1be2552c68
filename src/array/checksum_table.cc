// SPDX-License-Identifier: Apache-2.0
#include "array/checksum_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <cerrno>
#include <coroutine>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "io/buffer_pool.h"
#include "io/ring.h"

namespace ecraid {

// Entries are stored little-endian and accessed in place as native integers.
static_assert(std::endian::native == std::endian::little,
              "ChecksumTable reads table entries in place and needs a little-endian host");

namespace detail {
namespace {

constexpr uint64_t kPageBytes = ChecksumTable::kPageBytes;
constexpr uint64_t kEntriesPerPage = ChecksumTable::kEntriesPerPage;
static_assert(kEntriesPerPage * sizeof(uint64_t) == kPageBytes);

// The page index is a two-level directory: a top level of 8 bytes per 64 pages (128 MiB of
// member data), and chunks of 64 page pointers (512 bytes), each allocated while it has a
// cached page. Random access over a large table leaves a cached page in most chunks, so
// chunks are kept small: at most one per cached page, 8 MiB for a 64 MiB cache.
constexpr uint64_t kChunkPages = 64;

// Dirty pages that one eviction pass writes back at most, one after another.
constexpr uint32_t kEvictionWritesMax = 16;

// Pages written by one write_back() batch.
constexpr size_t kWriteBackBatchPages = 32;

}  // namespace

struct Page;

// A coroutine waiting for a page's load or write to finish. It lives in the awaiting
// coroutine's frame and is resumed through its ring's post().
struct PageWaiter {
    PageWaiter* next = nullptr;
    Ring* ring = nullptr;
    std::coroutine_handle<> handle;
    int result = 0;  // 0, or the -errno of a failed load (the page is then gone).
};

enum class PageState : uint8_t {
    kLoading,  // A read is in flight; acquirers wait on `waiters`.
    kReady,
};

// Every field except `entries` contents and `dirty` is guarded by the cache mutex.
struct Page {
    TableState* table = nullptr;
    uint64_t index = 0;
    Buffer data{kPageBytes};
    std::atomic<uint32_t> pins{0};  // Changed under the mutex; atomic for lock-free asserts.
    std::atomic<bool> dirty{false};
    PageState state = PageState::kLoading;
    bool writing = false;     // A write of a snapshot is in flight.
    bool referenced = false;  // The clock's second-chance bit.
    bool orphaned = false;    // The table went away during an eviction write.
    PageWaiter* waiters = nullptr;
    Page* clock_prev = nullptr;
    Page* clock_next = nullptr;
    Page* table_prev = nullptr;
    Page* table_next = nullptr;

    uint64_t* entries() { return reinterpret_cast<uint64_t*>(data.data()); }
};

struct TableCacheState {
    explicit TableCacheState(uint64_t budget) : budget_bytes(budget) {}

    std::mutex mutex;
    const uint64_t budget_bytes;
    std::atomic<uint64_t> cached_bytes{0};  // Changed under the mutex.
    uint64_t page_count = 0;
    Page* clock_hand = nullptr;  // A page of the circular clock list, or null when empty.
};

struct TableState : std::enable_shared_from_this<TableState> {
    TableState(std::shared_ptr<TableCacheState> cache_state, int table_fd, uint64_t offset,
               uint64_t pages, DeviceIo* device_io)
        : cache(std::move(cache_state)),
          fd(table_fd),
          device(device_io),
          table_offset(offset),
          page_count(pages),
          chunk_count((pages + kChunkPages - 1) / kChunkPages),
          directory(std::make_unique<std::atomic<std::atomic<Page*>*>[]>(chunk_count)),
          chunk_pages(std::make_unique<uint32_t[]>(chunk_count)) {}
    ~TableState() {
        for (uint64_t i = 0; i < chunk_count; ++i) delete[] directory[i].load();
        if (fd >= 0) close(fd);
    }

    const std::shared_ptr<TableCacheState> cache;
    const int fd;  // Owned duplicate of the member's descriptor, or -errno of a failed dup().
    DeviceIo* const device;  // The member's issue mode and time limit, or null.
    const uint64_t table_offset;
    const uint64_t page_count;
    const uint64_t chunk_count;
    std::unique_ptr<std::atomic<std::atomic<Page*>*>[]> directory;
    // Cached pages in each chunk of the directory. A chunk is freed when its last page
    // leaves, so the directory's memory follows the cache, not the table's size. Guarded by
    // the cache mutex.
    std::unique_ptr<uint32_t[]> chunk_pages;
    Page* pages_head = nullptr;  // The table's cached pages, guarded by the cache mutex.
    std::atomic<int> write_error{0};
    std::atomic<uint64_t> page_loads{0};
    std::atomic<uint64_t> page_writes{0};
    std::atomic<uint64_t> page_evictions{0};
    std::atomic<uint64_t> load_waits{0};

    // Returns the cached page `index`, or null. Lock-free: readers of a pinned page need no
    // lock, and the pointer of a pinned page does not change.
    Page* lookup(uint64_t index) const {
        assert(index < page_count);
        std::atomic<Page*>* chunk = directory[index / kChunkPages].load(std::memory_order_acquire);
        if (chunk == nullptr) return nullptr;
        return chunk[index % kChunkPages].load(std::memory_order_acquire);
    }

    // Sets the cached page `index`, or clears it when `page` is null, and allocates or frees
    // its directory chunk. Lock-free readers look up only pages they have pinned, and a chunk
    // with a cached page stays, so freeing needs no reader lock. Requires the cache mutex.
    void store(uint64_t index, Page* page) {
        assert(index < page_count);
        uint64_t chunk_index = index / kChunkPages;
        std::atomic<std::atomic<Page*>*>& slot = directory[chunk_index];
        std::atomic<Page*>* chunk = slot.load(std::memory_order_relaxed);
        if (page == nullptr) {
            assert(chunk != nullptr);
            assert(chunk_pages[chunk_index] > 0);
            chunk[index % kChunkPages].store(nullptr, std::memory_order_release);
            if (--chunk_pages[chunk_index] == 0) {
                slot.store(nullptr, std::memory_order_release);
                delete[] chunk;
            }
            return;
        }
        if (chunk == nullptr) {
            uint64_t first = chunk_index * kChunkPages;
            chunk = new std::atomic<Page*>[std::min(kChunkPages, page_count - first)]();
            slot.store(chunk, std::memory_order_release);
        }
        if (chunk[index % kChunkPages].load(std::memory_order_relaxed) == nullptr) {
            ++chunk_pages[chunk_index];
        }
        chunk[index % kChunkPages].store(page, std::memory_order_release);
    }

    // Counts the directory chunks allocated now. Requires the cache mutex.
    uint64_t allocated_chunks() const {
        uint64_t count = 0;
        for (uint64_t i = 0; i < chunk_count; ++i) {
            if (directory[i].load(std::memory_order_relaxed) != nullptr) ++count;
        }
        return count;
    }

    // The read or write descriptor: a failed dup() turns every I/O into that error.
    int io_error() const { return fd < 0 ? fd : 0; }
    uint64_t page_offset(uint64_t index) const { return table_offset + index * kPageBytes; }
};

namespace {

// Adds a new page to the cache: into the table's index and list, and into the clock list
// just behind the hand, so the clock visits it last. Requires the cache mutex.
void link_page(TableCacheState& cache, Page* page) {
    TableState& table = *page->table;
    assert(table.lookup(page->index) == nullptr);
    table.store(page->index, page);
    page->table_prev = nullptr;
    page->table_next = table.pages_head;
    if (table.pages_head != nullptr) table.pages_head->table_prev = page;
    table.pages_head = page;

    if (cache.clock_hand == nullptr) {
        page->clock_prev = page;
        page->clock_next = page;
        cache.clock_hand = page;
    } else {
        Page* behind = cache.clock_hand->clock_prev;
        page->clock_prev = behind;
        page->clock_next = cache.clock_hand;
        behind->clock_next = page;
        cache.clock_hand->clock_prev = page;
    }
    ++cache.page_count;
    cache.cached_bytes.fetch_add(kPageBytes, std::memory_order_relaxed);
}

// Removes a page from its table's index and list and from the clock list. The caller frees
// it. Requires the cache mutex.
void unlink_page(TableCacheState& cache, Page* page) {
    TableState& table = *page->table;
    assert(table.lookup(page->index) == page);
    table.store(page->index, nullptr);
    if (page->table_prev != nullptr) {
        page->table_prev->table_next = page->table_next;
    } else {
        table.pages_head = page->table_next;
    }
    if (page->table_next != nullptr) page->table_next->table_prev = page->table_prev;

    if (page->clock_next == page) {
        cache.clock_hand = nullptr;
    } else {
        if (cache.clock_hand == page) cache.clock_hand = page->clock_next;
        page->clock_prev->clock_next = page->clock_next;
        page->clock_next->clock_prev = page->clock_prev;
    }
    page->clock_prev = nullptr;
    page->clock_next = nullptr;
    assert(cache.page_count > 0);
    --cache.page_count;
    cache.cached_bytes.fetch_sub(kPageBytes, std::memory_order_relaxed);
}

// Resumes waiters detached from a page, each on its own ring, with `result`.
void post_waiters(PageWaiter* waiter, int result) {
    while (waiter != nullptr) {
        // The resumed coroutine may free the node at once: read it before posting.
        PageWaiter* next = waiter->next;
        Ring* ring = waiter->ring;
        std::coroutine_handle<> handle = waiter->handle;
        waiter->result = result;
        ring->post(handle);
        waiter = next;
    }
}

// Suspends until the page's load or write in progress finishes. The caller holds `lock` on
// the cache mutex, and the awaiter unlocks it after queueing itself, so the lock is never
// held while suspended. Returns with the mutex unlocked: 0, or the -errno of a failed load.
class PageWaitAwaiter {
public:
    PageWaitAwaiter(std::unique_lock<std::mutex>& lock, Page* page) : lock_(lock), page_(page) {}

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> handle) {
        assert(lock_.owns_lock());
        waiter_.ring = Ring::current();
        assert(waiter_.ring != nullptr);
        waiter_.handle = handle;
        waiter_.next = page_->waiters;
        page_->waiters = &waiter_;
        // The waiter is resumed through this thread's ring, so not before this returns.
        lock_.unlock();
    }
    int await_resume() const noexcept { return waiter_.result; }

private:
    std::unique_lock<std::mutex>& lock_;
    Page* page_;
    PageWaiter waiter_;
};

// Sets the page's dirty flag after an entry store. Every change of the flag is an atomic
// read-modify-write, so the flag's changes form one release sequence. A take_dirty() that
// reads any later value therefore synchronizes with this call, and its copy includes the entry.
void mark_dirty(Page* page) { page->dirty.exchange(true, std::memory_order_acq_rel); }

// Clears the page's dirty flag before its entries are copied. An entry stored after the
// copy has marked the page dirty again by the time its store is visible.
void take_dirty(Page* page) { page->dirty.exchange(false, std::memory_order_acq_rel); }

// Copies the page's entries into `snapshot` after clearing its dirty flag, so an entry
// stored during the copy or the write that follows leaves the page dirty again.
void snapshot_page(Page* page, uint8_t* snapshot) {
    take_dirty(page);
    auto* target = reinterpret_cast<uint64_t*>(snapshot);
    uint64_t* entries = page->entries();
    for (uint64_t i = 0; i < kEntriesPerPage; ++i) {
        target[i] = std::atomic_ref<uint64_t>(entries[i]).load(std::memory_order_relaxed);
    }
}

// Ends a write that the caller started by setting `writing`. A failed write leaves the page
// dirty and the table's error sticky. Requires the cache mutex. Returns the waiters to post.
PageWaiter* finish_write(Page* page, int result) {
    assert(page->writing);
    page->writing = false;
    TableState& table = *page->table;
    if (result < 0) {
        mark_dirty(page);
        int expected = 0;
        if (table.write_error.compare_exchange_strong(expected, result)) {
            spdlog::error("checksum table: write of page {} at offset {} failed: {}",
                          page->index, table.page_offset(page->index), std::strerror(-result));
        }
    } else {
        table.page_writes.fetch_add(1, std::memory_order_relaxed);
    }
    return std::exchange(page->waiters, nullptr);
}

// Advances the clock hand to an unpinned, idle page whose reference bit is clear, clearing
// the bits it passes. Skips dirty pages of a table whose writes fail. Returns null when two
// turns of the clock find nothing. Requires the cache mutex.
Page* find_victim(TableCacheState& cache) {
    uint64_t steps_max = 2 * cache.page_count;
    for (uint64_t step = 0; step < steps_max && cache.clock_hand != nullptr; ++step) {
        Page* page = cache.clock_hand;
        cache.clock_hand = page->clock_next;
        if (page->pins.load(std::memory_order_relaxed) > 0) continue;
        if (page->state != PageState::kReady || page->writing) continue;
        if (page->dirty.load(std::memory_order_acquire) &&
            page->table->write_error.load(std::memory_order_relaxed) != 0) {
            continue;
        }
        if (page->referenced) {
            page->referenced = false;
            continue;
        }
        return page;
    }
    return nullptr;
}

bool over_budget(const TableCacheState& cache) {
    return cache.cached_bytes.load(std::memory_order_relaxed) > cache.budget_bytes;
}

// Evicts pages while the cache is over budget, writing dirty victims back first through the
// current ring. Stops early when every page is pinned or under I/O, or after
// kEvictionWritesMax writes. The next acquire or clear continues the work.
Task<void> evict_over_budget(TableCacheState& cache) {
    uint32_t writes = 0;
    std::unique_lock lock(cache.mutex, std::defer_lock);
    while (writes < kEvictionWritesMax) {
        lock.lock();
        if (!over_budget(cache)) co_return;
        Page* victim = find_victim(cache);
        if (victim == nullptr) co_return;

        if (!victim->dirty.load(std::memory_order_acquire)) {
            unlink_page(cache, victim);
            victim->table->page_evictions.fetch_add(1, std::memory_order_relaxed);
            lock.unlock();
            delete victim;
            continue;
        }

        // The victim may belong to another table. Holding its state keeps the descriptor
        // open even if that table is destroyed during the write.
        std::shared_ptr<TableState> owner = victim->table->shared_from_this();
        victim->writing = true;
        lock.unlock();
        ++writes;

        Buffer snapshot(kPageBytes);
        snapshot_page(victim, snapshot.data());
        int result = owner->io_error();
        if (result == 0) {
            IoOp op;
            prepare_rw(&op, IoKind::kWrite, owner->fd, snapshot.data(), kPageBytes,
                       owner->page_offset(victim->index));
            op.device = owner->device;
            IoBatch batch(*Ring::current());
            batch.add(&op);
            co_await batch.wait();
            result = op.result;
            if (op.abandoned) {
                Ring::current()->retain_until_returned(op,
                                                       std::make_shared<Buffer>(std::move(snapshot)));
            }
        }

        lock.lock();
        PageWaiter* waiters = finish_write(victim, result);
        if (victim->orphaned) {
            assert(waiters == nullptr);
            lock.unlock();
            delete victim;
            continue;
        }
        // Someone may have pinned, changed or used the page during the write.
        bool evictable = result >= 0 && victim->pins.load(std::memory_order_relaxed) == 0 &&
                         !victim->dirty.load(std::memory_order_acquire) &&
                         !victim->referenced && waiters == nullptr;
        if (evictable) {
            unlink_page(cache, victim);
            owner->page_evictions.fetch_add(1, std::memory_order_relaxed);
        }
        lock.unlock();
        post_waiters(waiters, 0);
        if (evictable) delete victim;
    }
}

enum class PinMode {
    kLoad,          // Read the page from the member when it is not cached.
    kZeroIfAbsent,  // Create a zero page when it is not cached (the caller overwrites it).
};

// Pins page `index`, loading it or waiting for another acquirer's load as needed. Returns 0,
// or the -errno of the failed load (nothing is then pinned or cached).
Task<int> pin_page(TableState& table, uint64_t index, PinMode mode) {
    TableCacheState& cache = *table.cache;
    std::unique_ptr<Page> spare;
    std::unique_lock lock(cache.mutex, std::defer_lock);
    for (;;) {
        lock.lock();
        Page* page = table.lookup(index);
        if (page != nullptr) {
            page->pins.fetch_add(1, std::memory_order_relaxed);
            page->referenced = true;
            if (page->state == PageState::kReady) co_return 0;

            table.load_waits.fetch_add(1, std::memory_order_relaxed);
            int result = co_await PageWaitAwaiter(lock, page);
            if (result == 0) co_return 0;
            // The page was dropped with this pin on it. A zero page needs no read, so make one.
            if (mode == PinMode::kZeroIfAbsent) continue;
            co_return result;
        }

        if (spare == nullptr) {
            // Allocate outside the lock, then look again: another acquirer may have won.
            lock.unlock();
            spare = std::make_unique<Page>();
            continue;
        }
        page = spare.release();
        page->table = &table;
        page->index = index;
        page->pins.store(1, std::memory_order_relaxed);
        page->referenced = true;
        if (mode == PinMode::kZeroIfAbsent) {
            std::memset(page->data.data(), 0, kPageBytes);
            page->state = PageState::kReady;
            link_page(cache, page);
            co_return 0;
        }
        page->state = PageState::kLoading;
        link_page(cache, page);
        lock.unlock();

        // The page buffer is 4 KiB-aligned, as O_DIRECT requires.
        int result = table.io_error();
        IoOp op;
        if (result == 0) {
            prepare_rw(&op, IoKind::kRead, table.fd, page->data.data(), kPageBytes,
                       table.page_offset(index));
            op.device = table.device;
            IoBatch batch(*Ring::current());
            batch.add(&op);
            co_await batch.wait();
            result = op.result;
        }

        lock.lock();
        PageWaiter* waiters = std::exchange(page->waiters, nullptr);
        if (result < 0) {
            unlink_page(cache, page);
        } else {
            page->state = PageState::kReady;
            table.page_loads.fetch_add(1, std::memory_order_relaxed);
        }
        lock.unlock();
        post_waiters(waiters, result < 0 ? result : 0);
        if (result < 0) {
            if (op.abandoned) {
                // The kernel may still write into the page: the ring frees it later.
                Ring::current()->retain_until_returned(op, std::shared_ptr<Page>(page));
            } else {
                delete page;
            }
            co_return result;
        }
        co_return 0;
    }
}

// Unpins pages [first, end). Requires the cache mutex.
void unpin_pages(TableState& table, uint64_t first, uint64_t end) {
    for (uint64_t index = first; index < end; ++index) {
        Page* page = table.lookup(index);
        assert(page != nullptr);
        assert(page->pins.load(std::memory_order_relaxed) > 0);
        page->pins.fetch_sub(1, std::memory_order_relaxed);
    }
}

}  // namespace
}  // namespace detail

using detail::Page;
using detail::PageState;
using detail::PageWaiter;
using detail::TableCacheState;
using detail::TableState;

namespace {

// Returns the page holding `block`, which the caller has pinned.
Page* pinned_page(const TableState& table, uint64_t block) {
    Page* page = table.lookup(block / ChecksumTable::kEntriesPerPage);
    assert(page != nullptr);
    assert(page->pins.load(std::memory_order_relaxed) > 0);
    return page;
}

int duplicate_fd(int fd) {
    int duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (duplicate >= 0) return duplicate;
    int error = errno;
    spdlog::error("checksum table: dup of descriptor {} failed: {}. Every read and write of "
                  "this table will fail.",
                  fd, std::strerror(error));
    return -error;
}

}  // namespace

TableCache::TableCache(uint64_t budget_bytes)
    : state_(std::make_shared<TableCacheState>(budget_bytes)), budget_bytes_(budget_bytes) {}

TableCache::~TableCache() = default;

uint64_t TableCache::cached_bytes() const {
    return state_->cached_bytes.load(std::memory_order_relaxed);
}

ChecksumTable::ChecksumTable(TableCache* cache, int fd, uint64_t table_offset,
                             uint64_t block_count, DeviceIo* device)
    : state_(std::make_shared<TableState>(
          cache->state_, duplicate_fd(fd), table_offset,
          (block_count + kEntriesPerPage - 1) / kEntriesPerPage, device)),
      block_count_(block_count) {
    assert(cache != nullptr);
    assert(table_offset % kPageBytes == 0);
}

ChecksumTable::~ChecksumTable() {
    TableCacheState& cache = *state_->cache;
    std::vector<Page*> freed;
    uint64_t dirty_dropped = 0;
    {
        std::lock_guard lock(cache.mutex);
        while (Page* page = state_->pages_head) {
            assert(page->pins.load(std::memory_order_relaxed) == 0);
            assert(page->state == PageState::kReady);
            if (page->dirty.load(std::memory_order_relaxed)) ++dirty_dropped;
            detail::unlink_page(cache, page);
            if (page->writing) {
                // An eviction write on some worker still uses the page; it frees it after.
                page->orphaned = true;
            } else {
                freed.push_back(page);
            }
        }
    }
    for (Page* page : freed) delete page;
    if (dirty_dropped > 0) {
        spdlog::warn("checksum table at offset {}: dropped {} dirty pages without writing "
                     "them, because the table was destroyed without a write_back()",
                     state_->table_offset, dirty_dropped);
    }
}

Task<int> ChecksumTable::acquire(uint64_t first_block, uint64_t count) {
    assert(first_block <= block_count_);
    assert(count <= block_count_ - first_block);
    assert(Ring::current() != nullptr);
    if (count == 0) co_return 0;
    uint64_t first_page = first_block / kEntriesPerPage;
    uint64_t end_page = (first_block + count - 1) / kEntriesPerPage + 1;

    for (uint64_t index = first_page; index < end_page; ++index) {
        int result = co_await detail::pin_page(*state_, index, detail::PinMode::kLoad);
        if (result < 0) {
            std::lock_guard lock(state_->cache->mutex);
            detail::unpin_pages(*state_, first_page, index);
            co_return result;
        }
    }

    if (detail::over_budget(*state_->cache)) co_await detail::evict_over_budget(*state_->cache);
    co_return 0;
}

bool ChecksumTable::try_acquire(uint64_t first_block, uint64_t count) {
    assert(first_block <= block_count_);
    assert(count <= block_count_ - first_block);
    if (count == 0) return true;
    uint64_t first_page = first_block / kEntriesPerPage;
    uint64_t end_page = (first_block + count - 1) / kEntriesPerPage + 1;
    std::lock_guard lock(state_->cache->mutex);
    // Over budget, acquire() must run, because it continues the eviction.
    if (detail::over_budget(*state_->cache)) return false;
    for (uint64_t index = first_page; index < end_page; ++index) {
        Page* page = state_->lookup(index);
        if (page == nullptr || page->state != PageState::kReady) {
            detail::unpin_pages(*state_, first_page, index);
            return false;
        }
        page->pins.fetch_add(1, std::memory_order_relaxed);
        page->referenced = true;
    }
    // The caller reads or sets these entries once its member I/O completes. Random small
    // requests rarely find them in the CPU cache, so start loading the first line now.
    __builtin_prefetch(pinned_page(*state_, first_block)->entries() + first_block % kEntriesPerPage);
    return true;
}

void ChecksumTable::release(uint64_t first_block, uint64_t count) {
    assert(first_block <= block_count_);
    assert(count <= block_count_ - first_block);
    if (count == 0) return;
    uint64_t first_page = first_block / kEntriesPerPage;
    uint64_t end_page = (first_block + count - 1) / kEntriesPerPage + 1;
    std::lock_guard lock(state_->cache->mutex);
    detail::unpin_pages(*state_, first_page, end_page);
}

uint64_t ChecksumTable::get(uint64_t block) const {
    assert(block < block_count_);
    Page* page = pinned_page(*state_, block);
    uint64_t& entry = page->entries()[block % kEntriesPerPage];
    return std::atomic_ref<uint64_t>(entry).load(std::memory_order_relaxed);
}

void ChecksumTable::set(uint64_t block, uint64_t checksum) {
    assert(block < block_count_);
    Page* page = pinned_page(*state_, block);
    uint64_t& entry = page->entries()[block % kEntriesPerPage];
    std::atomic_ref<uint64_t>(entry).store(checksum, std::memory_order_relaxed);
    detail::mark_dirty(page);
}

Task<int> ChecksumTable::clear(uint64_t first_block, uint64_t count) {
    assert(first_block <= block_count_);
    assert(count <= block_count_ - first_block);
    assert(Ring::current() != nullptr);
    if (count == 0) co_return 0;
    uint64_t end_block = first_block + count;
    uint64_t first_page = first_block / kEntriesPerPage;
    uint64_t end_page = (end_block - 1) / kEntriesPerPage + 1;

    for (uint64_t index = first_page; index < end_page; ++index) {
        uint64_t page_first = index * kEntriesPerPage;
        uint64_t page_end = std::min(page_first + kEntriesPerPage, block_count_);
        uint64_t clear_first = std::max(first_block, page_first);
        uint64_t clear_end = std::min(end_block, page_end);
        bool whole_page = clear_first == page_first && clear_end == page_end;
        detail::PinMode mode = whole_page ? detail::PinMode::kZeroIfAbsent : detail::PinMode::kLoad;
        int result = co_await detail::pin_page(*state_, index, mode);
        if (result < 0) co_return result;

        Page* page = pinned_page(*state_, page_first);
        uint64_t* entries = page->entries();
        for (uint64_t block = clear_first; block < clear_end; ++block) {
            std::atomic_ref<uint64_t>(entries[block - page_first]).store(0, std::memory_order_relaxed);
        }
        detail::mark_dirty(page);

        std::lock_guard lock(state_->cache->mutex);
        detail::unpin_pages(*state_, index, index + 1);
    }

    if (detail::over_budget(*state_->cache)) co_await detail::evict_over_budget(*state_->cache);
    co_return 0;
}

Task<int> ChecksumTable::write_back() {
    assert(Ring::current() != nullptr);
    TableState& table = *state_;
    TableCacheState& cache = *table.cache;
    std::unique_lock lock(cache.mutex);

    // Pin every page that is dirty or being written, so none is evicted meanwhile.
    std::vector<Page*> pages;
    for (Page* page = table.pages_head; page != nullptr; page = page->table_next) {
        if (page->state != PageState::kReady) continue;
        if (!page->dirty.load(std::memory_order_relaxed) && !page->writing) continue;
        page->pins.fetch_add(1, std::memory_order_relaxed);
        pages.push_back(page);
    }
    lock.unlock();
    if (pages.empty()) co_return table.write_error.load(std::memory_order_relaxed);

    int first_error = 0;
    constexpr size_t kBatchPages = detail::kWriteBackBatchPages;
    Buffer snapshots(kBatchPages * kPageBytes);
    std::vector<IoOp> ops(std::min(pages.size(), kBatchPages));
    for (size_t batch_first = 0; batch_first < pages.size(); batch_first += kBatchPages) {
        size_t batch_size = std::min(kBatchPages, pages.size() - batch_first);
        std::vector<bool> started(batch_size, false);
        IoBatch batch(*Ring::current());
        for (size_t i = 0; i < batch_size; ++i) {
            Page* page = pages[batch_first + i];
            lock.lock();
            // One write per page at a time: an older snapshot landing after a newer one
            // would undo it on disk while the page looks clean.
            while (page->writing) {
                co_await detail::PageWaitAwaiter(lock, page);
                lock.lock();
            }
            if (!page->dirty.load(std::memory_order_relaxed)) {
                lock.unlock();
                continue;
            }
            page->writing = true;
            lock.unlock();

            uint8_t* snapshot = snapshots.data() + i * kPageBytes;
            detail::snapshot_page(page, snapshot);
            prepare_rw(&ops[i], IoKind::kWrite, table.fd, snapshot, kPageBytes,
                       table.page_offset(page->index));
            ops[i].device = table.device;
            started[i] = true;
            if (table.io_error() < 0) {
                ops[i].result = table.io_error();
                continue;
            }
            batch.add(&ops[i]);
        }
        co_await batch.wait();
        bool any_abandoned = false;
        for (size_t i = 0; i < batch_size; ++i) {
            any_abandoned = any_abandoned || (started[i] && ops[i].abandoned);
        }
        if (any_abandoned) {
            // The kernel may still read the snapshots of abandoned writes: the ring keeps them,
            // and the next batch gets a new buffer.
            auto old_snapshots = std::make_shared<Buffer>(std::move(snapshots));
            for (size_t i = 0; i < batch_size; ++i) {
                if (started[i] && ops[i].abandoned) {
                    Ring::current()->retain_until_returned(ops[i], old_snapshots);
                }
            }
            snapshots = Buffer(kBatchPages * kPageBytes);
        }

        for (size_t i = 0; i < batch_size; ++i) {
            if (!started[i]) continue;
            int result = ops[i].result < 0 ? ops[i].result : 0;
            if (result < 0 && first_error == 0) first_error = result;
            lock.lock();
            PageWaiter* waiters = detail::finish_write(pages[batch_first + i], result);
            lock.unlock();
            detail::post_waiters(waiters, 0);
        }
    }

    lock.lock();
    for (Page* page : pages) page->pins.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();

    int sticky = table.write_error.load(std::memory_order_relaxed);
    co_return first_error < 0 ? first_error : sticky;
}

uint64_t ChecksumTable::page_count() const { return state_->page_count; }

uint64_t ChecksumTable::directory_chunks() const {
    std::lock_guard lock(state_->cache->mutex);
    return state_->allocated_chunks();
}

uint64_t ChecksumTable::dirty_pages() const {
    std::lock_guard lock(state_->cache->mutex);
    uint64_t count = 0;
    for (Page* page = state_->pages_head; page != nullptr; page = page->table_next) {
        if (page->dirty.load(std::memory_order_relaxed)) ++count;
    }
    return count;
}

void ChecksumTable::discard() {
    TableCacheState& cache = *state_->cache;
    std::vector<Page*> freed;
    {
        std::lock_guard lock(cache.mutex);
        Page* page = state_->pages_head;
        while (page != nullptr) {
            Page* next = page->table_next;
            detail::take_dirty(page);
            bool idle = page->pins.load(std::memory_order_relaxed) == 0 &&
                        page->state == PageState::kReady && !page->writing;
            if (idle) {
                detail::unlink_page(cache, page);
                freed.push_back(page);
            }
            page = next;
        }
        state_->write_error.store(0, std::memory_order_relaxed);
    }
    for (Page* page : freed) delete page;
}

ChecksumTable::Stats ChecksumTable::stats() const {
    Stats counters;
    counters.page_loads = state_->page_loads.load(std::memory_order_relaxed);
    counters.page_writes = state_->page_writes.load(std::memory_order_relaxed);
    counters.page_evictions = state_->page_evictions.load(std::memory_order_relaxed);
    counters.load_waits = state_->load_waits.load(std::memory_order_relaxed);
    return counters;
}

}  // namespace ecraid
