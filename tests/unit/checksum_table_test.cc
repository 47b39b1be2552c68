// SPDX-License-Identifier: Apache-2.0
// ChecksumTable: entries round trip through the member file, clear() without reads, eviction
// under a tiny shared budget, one load for concurrent acquires, and table I/O errors.
#include "array/checksum_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "coroutine_support.h"
#include "io/ring.h"
#include "io/worker_pool.h"

namespace ecraid {
namespace {

using testing::make_test_ring;
using testing::run_on_ring;

constexpr uint64_t kEntriesPerPage = ChecksumTable::kEntriesPerPage;
constexpr uint64_t kPageBytes = ChecksumTable::kPageBytes;
constexpr uint64_t kTableOffset = 8192;

uint64_t pages_for(uint64_t blocks) { return (blocks + kEntriesPerPage - 1) / kEntriesPerPage; }

// An unlinked temporary file that contains a table at kTableOffset.
class TableFile {
public:
    explicit TableFile(uint64_t blocks, int extra_flags = 0) {
        char name[] = "/tmp/ecraid-table-XXXXXX";
        fd_ = mkostemp(name, extra_flags);
        if (fd_ < 0) return;
        unlink(name);
        EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(kTableOffset + pages_for(blocks) * kPageBytes)),
                  0);
    }
    ~TableFile() {
        if (fd_ >= 0) close(fd_);
    }
    int fd() const { return fd_; }

    // Writes the little-endian entries of blocks [first, first + values.size()) through a
    // descriptor without O_DIRECT.
    void write_entries(uint64_t first, const std::vector<uint64_t>& values) const {
        int fd = plain_fd();
        ssize_t bytes = static_cast<ssize_t>(values.size() * sizeof(uint64_t));
        EXPECT_EQ(pwrite(fd, values.data(), values.size() * sizeof(uint64_t),
                         static_cast<off_t>(kTableOffset + first * sizeof(uint64_t))),
                  bytes);
        close(fd);
    }
    std::vector<uint64_t> read_entries(uint64_t first, uint64_t count) const {
        int fd = plain_fd();
        std::vector<uint64_t> values(count);
        ssize_t bytes = static_cast<ssize_t>(count * sizeof(uint64_t));
        EXPECT_EQ(pread(fd, values.data(), count * sizeof(uint64_t),
                        static_cast<off_t>(kTableOffset + first * sizeof(uint64_t))),
                  bytes);
        close(fd);
        return values;
    }

private:
    int plain_fd() const {
        std::string path = "/proc/self/fd/" + std::to_string(fd_);
        int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
        EXPECT_GE(fd, 0);
        return fd;
    }
    int fd_ = -1;
};

std::vector<uint64_t> random_entries(uint64_t count, uint32_t seed) {
    std::mt19937_64 random(seed);
    std::vector<uint64_t> values(count);
    for (auto& value : values) value = random() | 1;  // Never the all-zero marker.
    return values;
}

// Counts the blocks in [first, end) whose entry differs from `expected` and reports the
// first of them. The pages must be pinned.
uint64_t count_mismatches(const ChecksumTable& table, uint64_t first, uint64_t end,
                          const std::vector<uint64_t>& expected) {
    uint64_t mismatches = 0;
    for (uint64_t block = first; block < end; ++block) {
        uint64_t entry = table.get(block);
        if (entry == expected[block]) continue;
        if (mismatches == 0) {
            ADD_FAILURE() << "block " << block << ": entry " << entry << ", expected "
                          << expected[block];
        }
        ++mismatches;
    }
    return mismatches;
}

// 8 whole pages and a last page with 100 valid entries.
constexpr uint64_t kBlocks = 8 * kEntriesPerPage + 100;

TEST(ChecksumTable, LoadsEntriesFromMember) {
    TableFile file(kBlocks);
    std::vector<uint64_t> expected = random_entries(kBlocks, 1);
    file.write_entries(0, expected);
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    EXPECT_EQ(table.page_count(), 9u);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, kBlocks), 0);
        EXPECT_EQ(count_mismatches(table, 0, kBlocks, expected), 0u);
        table.release(0, kBlocks);
    });
    EXPECT_EQ(table.stats().page_loads, 9u);
    EXPECT_EQ(table.dirty_pages(), 0u);
    EXPECT_EQ(cache.cached_bytes(), 9 * kPageBytes);
}

// Sets every entry, writes the table back, and reads it with a fresh cache and table.
void check_round_trip(TableFile& file) {
    std::vector<uint64_t> expected = random_entries(kBlocks, 2);
    auto ring = make_test_ring();
    {
        TableCache cache(1 << 20);
        ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
        run_on_ring(*ring, [&]() -> Task<void> {
            EXPECT_EQ(co_await table.acquire(0, kBlocks), 0);
            for (uint64_t block = 0; block < kBlocks; ++block) table.set(block, expected[block]);
            table.release(0, kBlocks);
            EXPECT_EQ(table.dirty_pages(), 9u);
            EXPECT_EQ(co_await table.write_back(), 0);
        });
        EXPECT_EQ(table.dirty_pages(), 0u);
        EXPECT_EQ(table.stats().page_writes, 9u);
    }

    EXPECT_EQ(file.read_entries(0, kBlocks), expected);
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, kBlocks), 0);
        EXPECT_EQ(count_mismatches(table, 0, kBlocks, expected), 0u);
        table.release(0, kBlocks);
    });
}

TEST(ChecksumTable, RoundTripsThroughWriteBack) {
    TableFile file(kBlocks);
    check_round_trip(file);
}

TEST(ChecksumTable, RoundTripsWithDirectIo) {
    TableFile file(kBlocks, O_DIRECT);
    if (file.fd() < 0) GTEST_SKIP() << "this file system rejects O_DIRECT: " << strerror(errno);
    check_round_trip(file);
}

TEST(ChecksumTable, ClearSkipsReadOfWholePages) {
    TableFile file(kBlocks);
    std::vector<uint64_t> expected = random_entries(kBlocks, 3);
    file.write_entries(0, expected);
    // Blocks [100, 1543): the rest of page 0, pages 1 and 2 whole, the start of page 3.
    constexpr uint64_t kFirst = 100;
    constexpr uint64_t kEnd = 3 * kEntriesPerPage + 7;
    for (uint64_t block = kFirst; block < kEnd; ++block) expected[block] = 0;

    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.clear(kFirst, kEnd - kFirst), 0);
        EXPECT_EQ(table.stats().page_loads, 2u);
        EXPECT_EQ(table.dirty_pages(), 4u);

        EXPECT_EQ(co_await table.acquire(0, kBlocks), 0);
        EXPECT_EQ(count_mismatches(table, 0, kBlocks, expected), 0u);
        table.release(0, kBlocks);
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(file.read_entries(0, kBlocks), expected);
}

TEST(ChecksumTable, ClearOfShortLastPageSkipsRead) {
    TableFile file(kBlocks);
    file.write_entries(0, random_entries(kBlocks, 4));
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.clear(8 * kEntriesPerPage, 100), 0);
        EXPECT_EQ(table.stats().page_loads, 0u);
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(file.read_entries(8 * kEntriesPerPage, 100), std::vector<uint64_t>(100, 0));
}

TEST(ChecksumTable, ClearOfCachedPageZeroesItInPlace) {
    TableFile file(kBlocks);
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, 1), 0);
        table.set(0, 42);
        table.release(0, 1);
        EXPECT_EQ(co_await table.clear(0, kEntriesPerPage), 0);
        EXPECT_EQ(co_await table.acquire(0, 1), 0);
        EXPECT_EQ(table.get(0), 0u);
        table.release(0, 1);
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(table.stats().page_loads, 1u);
    EXPECT_EQ(file.read_entries(0, 1), std::vector<uint64_t>{0});
}

TEST(ChecksumTable, TinyBudgetEvictsAndKeepsEveryValue) {
    // Two tables share a budget of 4 pages and touch 40 pages each, 20 times the budget.
    constexpr uint64_t kBudgetPages = 4;
    constexpr uint64_t kPages = 40;
    constexpr uint64_t kTableBlocks = kPages * kEntriesPerPage;
    TableFile file_a(kTableBlocks), file_b(kTableBlocks);
    std::vector<uint64_t> expected_a = random_entries(kTableBlocks, 5);
    std::vector<uint64_t> expected_b = random_entries(kTableBlocks, 6);

    auto ring = make_test_ring();
    TableCache cache(kBudgetPages * kPageBytes);
    ChecksumTable table_a(&cache, file_a.fd(), kTableOffset, kTableBlocks);
    ChecksumTable table_b(&cache, file_b.fd(), kTableOffset, kTableBlocks);
    struct Pair {
        ChecksumTable* table;
        std::vector<uint64_t>* expected;
    };
    Pair pairs[] = {{&table_a, &expected_a}, {&table_b, &expected_b}};
    run_on_ring(*ring, [&]() -> Task<void> {
        for (uint64_t page = 0; page < kPages; ++page) {
            for (Pair& pair : pairs) {
                uint64_t first = page * kEntriesPerPage;
                EXPECT_EQ(co_await pair.table->acquire(first, kEntriesPerPage), 0);
                EXPECT_LE(cache.cached_bytes(), cache.budget_bytes());
                for (uint64_t block = first; block < first + kEntriesPerPage; ++block) {
                    pair.table->set(block, (*pair.expected)[block]);
                }
                pair.table->release(first, kEntriesPerPage);
            }
        }
        // Read back in a different order, so pages come back after eviction.
        for (uint64_t step = 0; step < kPages; ++step) {
            uint64_t page = (step * 7) % kPages;
            for (Pair& pair : pairs) {
                uint64_t first = page * kEntriesPerPage;
                EXPECT_EQ(co_await pair.table->acquire(first, kEntriesPerPage), 0);
                uint64_t end = first + kEntriesPerPage;
                EXPECT_EQ(count_mismatches(*pair.table, first, end, *pair.expected), 0u);
                pair.table->release(first, kEntriesPerPage);
            }
        }
        EXPECT_EQ(co_await table_a.write_back(), 0);
        EXPECT_EQ(co_await table_b.write_back(), 0);
    });
    EXPECT_LE(cache.cached_bytes(), cache.budget_bytes());
    EXPECT_GE(table_a.stats().page_evictions, kPages);
    EXPECT_GE(table_a.stats().page_writes, kPages - kBudgetPages);
    EXPECT_GE(table_a.stats().page_loads, kPages);
    EXPECT_EQ(file_a.read_entries(0, kTableBlocks), expected_a);
    EXPECT_EQ(file_b.read_entries(0, kTableBlocks), expected_b);
}

TEST(ChecksumTable, DirectoryFollowsTheCachedPages) {
    // The page directory has one chunk per 64 pages. A table of four chunks with pages
    // cached in each allocates four, and once eviction has left pages of the first chunk
    // only, one. Entries set before the eviction read back after it.
    constexpr uint64_t kChunkPages = 64;
    constexpr uint64_t kPages = 3 * kChunkPages + 10;
    constexpr uint64_t kTableBlocks = kPages * kEntriesPerPage;
    constexpr uint64_t kBudgetPages = 8;
    TableFile file(kTableBlocks);
    auto ring = make_test_ring();
    TableCache cache(kBudgetPages * kPageBytes);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kTableBlocks);

    const uint64_t spread_pages[] = {0, kChunkPages, 2 * kChunkPages, 3 * kChunkPages + 9};
    uint64_t chunks_while_spread = 0;
    run_on_ring(*ring, [&]() -> Task<void> {
        for (uint64_t page : spread_pages) {
            uint64_t block = page * kEntriesPerPage + 3;
            EXPECT_EQ(co_await table.acquire(block, 1), 0);
            table.set(block, page + 1000);
            table.release(block, 1);
        }
        chunks_while_spread = table.directory_chunks();
        // Pages 1 to 32 lie in the first chunk.
        for (uint64_t page = 1; page <= 4 * kBudgetPages; ++page) {
            EXPECT_EQ(co_await table.acquire(page * kEntriesPerPage, 1), 0);
            table.release(page * kEntriesPerPage, 1);
        }
    });
    EXPECT_EQ(chunks_while_spread, 4u);
    EXPECT_EQ(table.directory_chunks(), 1u);

    run_on_ring(*ring, [&]() -> Task<void> {
        for (uint64_t page : spread_pages) {
            uint64_t block = page * kEntriesPerPage + 3;
            EXPECT_EQ(co_await table.acquire(block, 1), 0);
            EXPECT_EQ(table.get(block), page + 1000) << "page " << page;
            table.release(block, 1);
        }
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(file.read_entries(kChunkPages * kEntriesPerPage + 3, 1)[0], kChunkPages + 1000);
}

TEST(ChecksumTable, PinnedPagesMayExceedBudget) {
    TableFile file(kBlocks);
    auto ring = make_test_ring();
    TableCache cache(2 * kPageBytes);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, 5 * kEntriesPerPage), 0);
        EXPECT_EQ(cache.cached_bytes(), 5 * kPageBytes);
        table.release(0, 5 * kEntriesPerPage);
        // The next acquire evicts down to the budget, keeping its own page.
        EXPECT_EQ(co_await table.acquire(0, 1), 0);
        EXPECT_LE(cache.cached_bytes(), 2 * kPageBytes);
        table.release(0, 1);
    });
}

// Turns the first `again_left` read completions into -EAGAIN, each costing the ring a
// 200 us pause, so a load stays in flight long enough for other workers to pile up on it.
// Reads after that fail with `final_result` when it is nonzero. Counts the reads that reach
// the file, independently of the table's own counters.
struct SlowReads {
    std::atomic<int> again_left{0};
    int final_result = 0;
    std::atomic<uint64_t> file_reads{0};
};

int slow_reads(const IoOp& op, int result, void* context) {
    auto* plan = static_cast<SlowReads*>(context);
    if (op.kind != IoKind::kRead) return result;
    ++plan->file_reads;
    if (plan->again_left.fetch_sub(1) > 0) return -EAGAIN;
    return plan->final_result != 0 ? plan->final_result : result;
}

struct ConcurrentAcquire {
    ChecksumTable* table;
    std::atomic<uint64_t> finished{0};
    std::atomic<uint64_t> failures{0};
    std::atomic<int> results[8] = {};
};

Task<void> acquire_page_zero(ConcurrentAcquire& state, uint32_t worker, uint64_t expected) {
    int result = co_await state.table->acquire(0, kEntriesPerPage);
    state.results[worker] = result;
    if (result == 0) {
        if (state.table->get(7) != expected) ++state.failures;
        state.table->release(0, kEntriesPerPage);
    }
    ++state.finished;
}

// Starts one acquire of page 0 on each of `kWorkers` workers whose reads are slowed by
// `plan`, and waits for all of them.
void run_concurrent_acquires(ChecksumTable& table, SlowReads& plan, uint64_t expected,
                             ConcurrentAcquire& state) {
    constexpr uint32_t kWorkers = 4;
    state.table = &table;
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    for (uint32_t worker = 0; worker < kWorkers; ++worker) {
        // Safe before any I/O: the hook is read by the ring thread only for completions of
        // work posted after this.
        (*pool)->ring(worker).set_fault_hook(slow_reads, &plan);
    }
    for (uint32_t worker = 0; worker < kWorkers; ++worker) {
        (*pool)->ring(worker).post([&state, worker, expected] {
            spawn(acquire_page_zero(state, worker, expected));
        });
    }
    ASSERT_TRUE(testing::wait_for_count(state.finished, kWorkers, std::chrono::seconds(30)));
    (*pool)->stop();
}

TEST(ChecksumTable, ConcurrentAcquiresLoadPageOnce) {
    TableFile file(kBlocks);
    std::vector<uint64_t> expected = random_entries(kBlocks, 7);
    file.write_entries(0, expected);
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    SlowReads plan;
    plan.again_left = 500;  // About 100 ms.
    ConcurrentAcquire state;
    run_concurrent_acquires(table, plan, expected[7], state);
    for (uint32_t worker = 0; worker < 4; ++worker) EXPECT_EQ(state.results[worker], 0);
    EXPECT_EQ(state.failures.load(), 0u);
    // One read, resubmitted after each -EAGAIN.
    EXPECT_EQ(plan.file_reads.load(), 500u + 1);
    EXPECT_EQ(table.stats().page_loads, 1u);
    EXPECT_EQ(table.stats().load_waits, 3u);
}

TEST(ChecksumTable, ConcurrentAcquiresShareLoadError) {
    TableFile file(kBlocks);
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    SlowReads plan;
    plan.again_left = 200;
    plan.final_result = -EIO;
    ConcurrentAcquire state;
    run_concurrent_acquires(table, plan, 0, state);
    for (uint32_t worker = 0; worker < 4; ++worker) EXPECT_EQ(state.results[worker], -EIO);
    EXPECT_EQ(table.stats().page_loads, 0u);
    EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(ChecksumTable, InvalidDescriptorFailsWithEbadf) {
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, -1, kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, 1), -EBADF);
        EXPECT_EQ(co_await table.clear(5, 10), -EBADF);
    });
    EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(ChecksumTable, TableBeyondEndOfFileFailsWithEio) {
    TableFile file(kBlocks);
    ASSERT_EQ(ftruncate(file.fd(), kTableOffset + 2 * kPageBytes + 100), 0);
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        // Pages 0 and 1 load and page 2 is cut short: nothing stays pinned or half-loaded.
        EXPECT_EQ(co_await table.acquire(0, 3 * kEntriesPerPage), -EIO);
        EXPECT_EQ(cache.cached_bytes(), 2 * kPageBytes);
        EXPECT_EQ(co_await table.acquire(5 * kEntriesPerPage, 1), -EIO);
        EXPECT_EQ(cache.cached_bytes(), 2 * kPageBytes);

        EXPECT_EQ(ftruncate(file.fd(), kTableOffset + 9 * kPageBytes), 0);
        EXPECT_EQ(co_await table.acquire(0, 3 * kEntriesPerPage), 0);
        EXPECT_EQ(table.get(2 * kEntriesPerPage), 0u);
        table.release(0, 3 * kEntriesPerPage);
    });
    EXPECT_EQ(table.stats().page_loads, 3u);
}

TEST(ChecksumTable, FailedWriteIsStickyUntilDiscard) {
    char name[] = "/tmp/ecraid-table-XXXXXX";
    int writable = mkstemp(name);
    ASSERT_GE(writable, 0);
    ASSERT_EQ(ftruncate(writable, kTableOffset + 9 * kPageBytes), 0);
    int read_only = open(name, O_RDONLY | O_CLOEXEC);
    unlink(name);
    close(writable);
    ASSERT_GE(read_only, 0);

    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, read_only, kTableOffset, kBlocks);
    close(read_only);  // The table keeps its own duplicate.
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, 1), 0);
        table.set(0, 42);
        table.release(0, 1);
        EXPECT_EQ(co_await table.write_back(), -EBADF);
        EXPECT_EQ(table.dirty_pages(), 1u);
        EXPECT_EQ(co_await table.write_back(), -EBADF);

        table.discard();
        EXPECT_EQ(table.dirty_pages(), 0u);
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(cache.cached_bytes(), 0u);
}

TEST(ChecksumTable, DiscardDropsChanges) {
    TableFile file(kBlocks);
    std::vector<uint64_t> expected = random_entries(kBlocks, 8);
    file.write_entries(0, expected);
    auto ring = make_test_ring();
    TableCache cache(1 << 20);
    ChecksumTable table(&cache, file.fd(), kTableOffset, kBlocks);
    run_on_ring(*ring, [&]() -> Task<void> {
        EXPECT_EQ(co_await table.acquire(0, 2 * kEntriesPerPage), 0);
        table.set(3, 1);
        table.set(kEntriesPerPage + 3, 1);
        table.release(kEntriesPerPage, kEntriesPerPage);
        // Page 0 is still pinned, so it stays cached, but it is clean now.
        table.discard();
        EXPECT_EQ(table.dirty_pages(), 0u);
        EXPECT_EQ(cache.cached_bytes(), kPageBytes);
        table.release(0, kEntriesPerPage);

        EXPECT_EQ(co_await table.acquire(kEntriesPerPage, kEntriesPerPage), 0);
        EXPECT_EQ(table.get(kEntriesPerPage + 3), expected[kEntriesPerPage + 3]);
        table.release(kEntriesPerPage, kEntriesPerPage);
        EXPECT_EQ(co_await table.write_back(), 0);
    });
    EXPECT_EQ(table.stats().page_writes, 0u);
}

// Workers set interleaved entries of shared pages under a small budget while one of them
// writes the table back now and then. Every last value must reach the file.
struct SharedUpdates {
    static constexpr uint32_t kWorkers = 4;
    static constexpr uint64_t kPages = 32;
    static constexpr uint64_t kBlocks = kPages * kEntriesPerPage;
    ChecksumTable* table = nullptr;
    std::vector<uint64_t> expected = std::vector<uint64_t>(kBlocks, 0);
    std::atomic<uint64_t> finished{0};
    std::atomic<uint64_t> failures{0};
};

Task<void> update_worker(SharedUpdates& state, uint32_t worker) {
    std::mt19937_64 random(worker + 100);
    for (int round = 0; round < 300; ++round) {
        uint64_t page = random() % SharedUpdates::kPages;
        uint64_t first = page * kEntriesPerPage;
        if (co_await state.table->acquire(first, kEntriesPerPage) != 0) ++state.failures;
        // Worker w owns the blocks whose index is w modulo kWorkers.
        for (uint64_t block = first + worker; block < first + kEntriesPerPage;
             block += SharedUpdates::kWorkers) {
            uint64_t value = random() | 1;
            state.table->set(block, value);
            state.expected[block] = value;
        }
        if (co_await Ring::current()->sleep_ns(10 * 1000) != 0) ++state.failures;
        for (uint64_t block = first + worker; block < first + kEntriesPerPage;
             block += SharedUpdates::kWorkers) {
            if (state.table->get(block) != state.expected[block]) ++state.failures;
        }
        state.table->release(first, kEntriesPerPage);
        if (worker == 0 && round % 16 == 0) {
            if (co_await state.table->write_back() != 0) ++state.failures;
        }
    }
    ++state.finished;
}

TEST(ChecksumTable, UpdatesFromWorkersSurviveEvictionAndWriteBack) {
    TableFile file(SharedUpdates::kBlocks);
    SharedUpdates state;
    TableCache cache(6 * kPageBytes);
    ChecksumTable table(&cache, file.fd(), kTableOffset, SharedUpdates::kBlocks);
    state.table = &table;
    {
        auto pool = WorkerPool::start(SharedUpdates::kWorkers, 64);
        ASSERT_TRUE(pool.ok()) << pool.status().to_string();
        for (uint32_t worker = 0; worker < SharedUpdates::kWorkers; ++worker) {
            (*pool)->ring(worker).post([&state, worker] { spawn(update_worker(state, worker)); });
        }
        ASSERT_TRUE(testing::wait_for_count(state.finished, SharedUpdates::kWorkers,
                                            std::chrono::seconds(60)));
        (*pool)->ring(0).post([&state] {
            spawn([](SharedUpdates& shared) -> Task<void> {
                if (co_await shared.table->write_back() != 0) ++shared.failures;
                ++shared.finished;
            }(state));
        });
        ASSERT_TRUE(testing::wait_for_count(state.finished, SharedUpdates::kWorkers + 1,
                                            std::chrono::seconds(30)));
    }
    EXPECT_EQ(state.failures.load(), 0u);
    EXPECT_EQ(table.dirty_pages(), 0u);
    EXPECT_GT(table.stats().page_evictions, 0u);
    EXPECT_EQ(file.read_entries(0, SharedUpdates::kBlocks), state.expected);
}

}  // namespace
}  // namespace ecraid
