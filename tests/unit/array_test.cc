// SPDX-License-Identifier: Apache-2.0
// Array: the read and write paths of every level against an in-memory model, on member files
// formatted by create_array: random aligned and unaligned writes, degraded reads after member
// failures, self-heal of corrupt blocks, trims and write-zeroes.
#include "array/array.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "array/assemble.h"
#include "array/create.h"
#include "io/buffer_pool.h"
#include "io/ring.h"
#include "io/worker_pool.h"

namespace ecraid {
namespace {

uint64_t test_seed() {
    const char* text = std::getenv("ECRAID_TEST_SEED");
    return text != nullptr ? std::strtoull(text, nullptr, 10) : 20261204;
}

struct LevelCase {
    const char* name;
    Level level;
    uint32_t members;
    uint32_t data;
    uint32_t parity;
    uint64_t chunk;
};

// Owns a read buffer that the array may take.
struct TakenBuffer final : ReadTarget {
    explicit TakenBuffer(size_t bytes) : buffer(std::make_shared<Buffer>(bytes)) {}
    std::shared_ptr<void> hand_over() override {
        ++hand_overs;
        return buffer;
    }
    std::shared_ptr<Buffer> buffer;
    int hand_overs = 0;
};

class ArrayTest : public ::testing::TestWithParam<LevelCase> {
protected:
    void SetUp() override {
        directory_ = std::filesystem::temp_directory_path() /
                     ("ecraid-array-" + std::to_string(getpid()) + "-" +
                      std::to_string(counter_++));
        std::filesystem::create_directories(directory_);
        const LevelCase& level = GetParam();
        CreateOptions options;
        options.level = level.level;
        options.data_count = level.data;
        options.parity_count = level.parity;
        options.chunk_bytes = level.chunk;
        options.create_size_bytes = 24ull << 20;
        options.name = "test";
        for (uint32_t i = 0; i < level.members; ++i) {
            paths_.push_back((directory_ / ("m" + std::to_string(i))).string());
        }
        options.member_paths = paths_;
        auto created = create_array(options);
        ASSERT_TRUE(created.ok()) << created.status().to_string();
        auto ring = Ring::create(256);
        ASSERT_TRUE(ring.ok());
        ring_ = std::move(ring).value();
        open();
    }

    void TearDown() override {
        array_.reset();
        assembly_.reset();
        workers_.reset();
        std::filesystem::remove_all(directory_);
    }

    // Starts `count` workers and spreads the array's large requests over them. The test's
    // ring is not one of them, so every group of a spread request runs on a worker.
    void spread_requests(uint32_t count) {
        auto pool = WorkerPool::start(count, 64);
        ASSERT_TRUE(pool.ok()) << pool.status().to_string();
        workers_ = std::move(pool).value();
        array_->spread_over(workers_.get());
    }

    // Runs `body` on worker `index` and waits for it.
    template <typename Body>
    void on_worker(uint32_t index, Body body) {
        workers_->run_and_wait(index, [&]() -> Task<int> {
            body(workers_->ring(index));
            co_return 0;
        });
    }

    // Member ops the workers' rings have made, through the kernel or inline.
    uint64_t worker_ops() {
        uint64_t ops = 0;
        for (uint32_t i = 0; i < workers_->size(); ++i) {
            on_worker(i, [&](Ring& ring) { ops += ring.stats().submitted; });
        }
        return ops;
    }

    void open() {
        array_.reset();
        assembly_.reset();
        auto assembly = assemble(paths_, AssembleOptions{});
        ASSERT_TRUE(assembly.ok()) << assembly.status().to_string();
        assembly_ = std::make_unique<Assembly>(std::move(assembly).value());
        ArrayOptions options;
        options.table_cache_bytes = 1 << 20;
        options.io_timeout_ns = io_timeout_ns_;
        auto array = open_array(*assembly_, options);
        ASSERT_TRUE(array.ok()) << array.status().to_string();
        array_ = std::move(array).value();
        model_.resize(array_->size_bytes());
    }

    // Runs `body` as a coroutine on the test's ring until it finishes.
    template <typename Body>
    void run(Body body) {
        auto wrapper = [&]() -> Task<void> {
            co_await body();
            ring_->stop();
        };
        ring_->post([&] { spawn(wrapper()); });
        ring_->run();
    }

    int write(uint64_t offset, const std::vector<uint8_t>& data, bool fua = false) {
        int result = 0;
        Buffer buffer(data.size());
        std::memcpy(buffer.data(), data.data(), data.size());
        run([&]() -> Task<void> {
            result = co_await array_->write(offset, uint32_t(data.size()), buffer.data(), fua);
        });
        if (result == 0) std::copy(data.begin(), data.end(), model_.begin() + offset);
        return result;
    }

    int read(uint64_t offset, uint32_t length, std::vector<uint8_t>* out,
             std::vector<ReadFailure>* failures = nullptr) {
        int result = 0;
        Buffer buffer(length);
        run([&]() -> Task<void> {
            result = co_await array_->read(offset, length, buffer.data(), failures);
        });
        out->assign(buffer.data(), buffer.data() + length);
        return result;
    }

    // Reads [0, length) while the member of its first block hangs. The read must end with
    // kReadAgain and leave its buffer with the ring, and a second read must return the
    // model's data. Returns the abandoned buffer, which lives until the hung ops return.
    std::weak_ptr<Buffer> read_past_hung_member(uint32_t length) {
        auto first = std::make_unique<TakenBuffer>(length);
        int result = 0;
        run([&]() -> Task<void> {
            result = co_await array_->read(0, length, first->buffer->data(), nullptr, first.get());
        });
        EXPECT_EQ(result, kReadAgain);
        EXPECT_EQ(first->hand_overs, 1);
        std::weak_ptr<Buffer> abandoned_buffer = first->buffer;
        first.reset();
        EXPECT_FALSE(abandoned_buffer.expired())
            << "the ring must keep the buffer the kernel may write into";

        TakenBuffer second(length);
        run([&]() -> Task<void> {
            result = co_await array_->read(0, length, second.buffer->data(), nullptr, &second);
        });
        EXPECT_EQ(result, 0);
        EXPECT_EQ(second.hand_overs, 0);
        EXPECT_TRUE(std::equal(second.buffer->data(), second.buffer->data() + length,
                               model_.begin()));
        return abandoned_buffer;
    }

    int flush() {
        int result = 0;
        run([&]() -> Task<void> { result = co_await array_->flush(); });
        return result;
    }

    void expect_matches_model(uint64_t offset, uint64_t length, const std::string& context) {
        constexpr uint32_t kPiece = 1 << 20;
        for (uint64_t at = offset; at < offset + length; at += kPiece) {
            uint32_t piece = uint32_t(std::min<uint64_t>(kPiece, offset + length - at));
            std::vector<uint8_t> data;
            ASSERT_EQ(read(at, piece, &data), 0) << context << " at " << at;
            ASSERT_TRUE(std::equal(data.begin(), data.end(), model_.begin() + at))
                << context << ": mismatch in [" << at << ", " << at + piece << ")";
        }
    }

    std::vector<uint8_t> random_bytes(std::mt19937_64& random, size_t size) {
        std::vector<uint8_t> data(size);
        for (auto& byte : data) byte = uint8_t(random());
        return data;
    }

    void random_writes(std::mt19937_64& random, int count) {
        uint64_t size = array_->size_bytes();
        for (int i = 0; i < count; ++i) {
            uint64_t length;
            switch (random() % 4) {
                case 0: length = 1 + random() % 8192; break;          // Small, unaligned.
                case 1: length = 4096 * (1 + random() % 32); break;   // Aligned blocks.
                case 2: length = array_->geometry().stripe_data_bytes(); break;
                default: length = 1 + random() % (600 * 1024); break;
            }
            length = std::min(length, size);
            uint64_t offset = random() % (size - length + 1);
            if (random() % 2 == 0) offset &= ~uint64_t(4095);
            ASSERT_EQ(write(offset, random_bytes(random, length)), 0)
                << "write " << offset << "+" << length;
        }
    }

    // Overwrites bytes of member `role` at byte `member_offset` of its data area.
    void corrupt_member(uint32_t role, uint64_t member_offset, size_t length) {
        const AssembledRole& slot = assembly_->roles[role];
        int fd = ::open(paths_[role].c_str(), O_WRONLY);
        ASSERT_GE(fd, 0);
        std::vector<uint8_t> garbage(length, 0xA5);
        ASSERT_EQ(pwrite(fd, garbage.data(), length,
                         off_t(slot.superblock.layout.data_offset + member_offset)),
                  ssize_t(length));
        close(fd);
    }

    static inline int counter_ = 0;
    uint64_t io_timeout_ns_ = 30'000'000'000ull;
    std::filesystem::path directory_;
    std::vector<std::string> paths_;
    std::unique_ptr<Ring> ring_;
    std::unique_ptr<Assembly> assembly_;
    std::unique_ptr<Array> array_;
    std::unique_ptr<WorkerPool> workers_;
    std::vector<uint8_t> model_;
};

TEST_P(ArrayTest, RandomWritesReadBack) {
    uint64_t seed = test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    random_writes(random, 60);
    expect_matches_model(0, array_->size_bytes(), "after writes");
    ASSERT_EQ(flush(), 0);
    open();
    expect_matches_model(0, array_->size_bytes(), "after reopen");
}

TEST_P(ArrayTest, RandomReadsMatchModel) {
    // Aligned reads land in the caller's buffer directly and the others through scratch, so
    // both kinds, and buffers that are not 4 KiB-aligned, must return the same bytes.
    std::mt19937_64 random(test_seed() + 6);
    random_writes(random, 20);
    uint64_t size = array_->size_bytes();
    for (int i = 0; i < 200; ++i) {
        uint32_t length = uint32_t(std::min<uint64_t>(size, 1 + random() % (300 * 1024)));
        if (i % 2 == 0) length = std::max<uint32_t>(4096, length & ~4095u);
        uint64_t offset = random() % (size - length + 1);
        if (i % 2 == 0) offset &= ~uint64_t(4095);
        uint32_t shift = i % 3 == 0 ? 512 : 0;
        Buffer buffer(length + shift);
        int result = 0;
        run([&]() -> Task<void> {
            result = co_await array_->read(offset, length, buffer.data() + shift, nullptr);
        });
        ASSERT_EQ(result, 0) << offset << "+" << length;
        ASSERT_TRUE(std::equal(buffer.data() + shift, buffer.data() + shift + length,
                               model_.begin() + offset))
            << "read " << offset << "+" << length << " shifted by " << shift;
    }
}

TEST_P(ArrayTest, UnalignedSourceWritesReadBack) {
    std::mt19937_64 random(test_seed() + 7);
    uint64_t stripe = array_->geometry().stripe_data_bytes();
    std::vector<uint8_t> data = random_bytes(random, stripe * 2);
    Buffer buffer(data.size() + 512);
    std::memcpy(buffer.data() + 512, data.data(), data.size());
    int result = 0;
    run([&]() -> Task<void> {
        result = co_await array_->write(stripe, uint32_t(data.size()), buffer.data() + 512, false);
    });
    ASSERT_EQ(result, 0);
    std::copy(data.begin(), data.end(), model_.begin() + stripe);
    expect_matches_model(0, stripe * 4, "after a full-stripe write from an unaligned buffer");
}

TEST_P(ArrayTest, DegradedReadsAndWrites) {
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    uint64_t seed = test_seed() + 1;
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    random_writes(random, 30);
    // Fail as many members as the level tolerates (for raid10, one per pair).
    uint32_t n = array_->geometry().member_count();
    for (uint32_t i = 0; i < tolerated; ++i) {
        uint32_t role = array_->geometry().level() == Level::kRaid10 ? 2 * i + 1 : (i * 2) % n;
        array_->fail_member(role, "test");
    }
    ASSERT_FALSE(array_->lost_data());
    expect_matches_model(0, array_->size_bytes(), "degraded");
    random_writes(random, 30);
    expect_matches_model(0, array_->size_bytes(), "degraded after writes");
}

TEST_P(ArrayTest, SmallWritesBesideFailedMembers) {
    // Block-sized and smaller writes take read-modify-write or reconstruct-write. With members
    // failed, both must keep data, parity and every surviving member's checksums right.
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    const Geometry& geometry = array_->geometry();
    std::mt19937_64 random(test_seed() + 10);
    uint64_t span = std::min<uint64_t>(array_->size_bytes(), 4 * geometry.stripe_data_bytes());
    ASSERT_EQ(write(0, random_bytes(random, span)), 0);
    // Fail a data position and, where tolerated, the first parity position of stripe 0.
    array_->fail_member(geometry.member_of(0, 0, 0), "test");
    if (tolerated >= 2) {
        array_->fail_member(geometry.member_of(0, 0, geometry.data_per_group()), "test");
    }
    ASSERT_FALSE(array_->lost_data());
    for (int i = 0; i < 200; ++i) {
        uint64_t length = i % 2 == 0 ? 4096 : 1 + random() % 4096;
        uint64_t offset = random() % (span - length + 1);
        if (i % 2 == 0) offset &= ~uint64_t(4095);
        ASSERT_EQ(write(offset, random_bytes(random, length)), 0) << offset << "+" << length;
    }
    expect_matches_model(0, span, "after small degraded writes");
    for (uint32_t role = 0; role < geometry.member_count(); ++role) {
        if (!array_->member(role).active()) continue;
        EXPECT_EQ(array_->member(role).device.load()->errors.checksum.load(), 0u)
            << "member " << role;
    }
}

// Fails every read of one device's checksum table with EIO.
struct TableReadFault {
    const MemberDevice* device;
    uint64_t table_begin;
    uint64_t table_end;
};

int fail_table_reads(const IoOp& op, int result, void* context) {
    const auto* fault = static_cast<const TableReadFault*>(context);
    bool table_read = op.device == &fault->device->io && op.kind == IoKind::kRead &&
                      op.offset >= fault->table_begin && op.offset < fault->table_end;
    return table_read ? -EIO : result;
}

TEST_P(ArrayTest, UnreadableTableFailsOnlyItsMember) {
    // A write pins the table pages of the positions it touches. A table that cannot be read
    // fails its member, and the write goes on degraded, whether the member stores the
    // written data or parity.
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    const Geometry geometry = array_->geometry();  // A copy: open() replaces the array.
    uint32_t k = geometry.data_per_group();
    uint64_t span = geometry.stripe_data_bytes();
    for (uint32_t position : {0u, k}) {
        SCOPED_TRACE("position " + std::to_string(position));
        std::mt19937_64 random(test_seed() + 11 + position);
        ASSERT_EQ(write(0, random_bytes(random, span)), 0);
        ASSERT_EQ(flush(), 0);
        open();  // Start with no table page cached.
        uint32_t role = geometry.member_of(0, 0, position);
        const MemberDevice* device = array_->member(role).device.load();
        uint64_t pages = (device->table->block_count() + ChecksumTable::kEntriesPerPage - 1) /
                         ChecksumTable::kEntriesPerPage;
        TableReadFault fault{device, device->table_offset,
                             device->table_offset + pages * ChecksumTable::kPageBytes};
        ring_->set_fault_hook(fail_table_reads, &fault);
        EXPECT_EQ(write(0, random_bytes(random, 4096)), 0);
        EXPECT_EQ(write(100, random_bytes(random, 50)), 0);
        ring_->set_fault_hook(nullptr, nullptr);
        EXPECT_EQ(array_->member(role).state.load(), MemberState::kFaulty);
        EXPECT_EQ(array_->unusable_count(), 1u);
        expect_matches_model(0, span, "after writes beside the unreadable table");
        // Bring the member back for the next case: its superblock was never changed.
        open();
        ASSERT_EQ(write(0, random_bytes(random, span)), 0);
    }
}

TEST_P(ArrayTest, SmallWriteLoadsOnlyTouchedTables) {
    // With read-modify-write, a one-block write reads and writes its data position and the
    // parity positions, so the checksum tables of the other members stay unloaded.
    const Geometry geometry = array_->geometry();  // A copy: open() replaces the array.
    uint32_t k = geometry.data_per_group();
    uint32_t m = geometry.parity_per_group();
    if (m == 0 || k < 2 || 1 + m >= k - 1) {
        GTEST_SKIP() << "a one-block write takes read-modify-write only with k - 2 > m";
    }
    std::mt19937_64 random(test_seed() + 12);
    ASSERT_EQ(write(0, random_bytes(random, geometry.stripe_data_bytes())), 0);
    ASSERT_EQ(flush(), 0);
    open();  // Start with no table page cached.
    ASSERT_EQ(write(0, random_bytes(random, 4096)), 0);
    for (uint32_t position = 0; position < k + m; ++position) {
        uint32_t role = geometry.member_of(0, 0, position);
        uint64_t loads = array_->member(role).device.load()->table->stats().page_loads;
        bool touched = position == 0 || position >= k;
        EXPECT_EQ(loads > 0, touched) << "position " << position << " loaded " << loads;
    }
    expect_matches_model(0, geometry.stripe_data_bytes(), "after the write");
}

TEST_P(ArrayTest, CorruptBlockIsRepairedOnRead) {
    uint32_t tolerated = array_->geometry().failures_tolerated();
    uint64_t seed = test_seed() + 2;
    std::mt19937_64 random(seed);
    std::vector<uint8_t> data = random_bytes(random, array_->geometry().stripe_data_bytes() * 4);
    ASSERT_EQ(write(0, data), 0);
    ASSERT_EQ(flush(), 0);
    // Corrupt one block of stripe 1 on member 1 (data or parity, depending on rotation).
    uint64_t chunk = array_->geometry().chunk_bytes();
    corrupt_member(1, chunk + 4096, 100);
    std::vector<uint8_t> back;
    std::vector<ReadFailure> failures;
    int result = read(0, uint32_t(data.size()), &back, &failures);
    if (tolerated == 0) {
        EXPECT_EQ(result, -EIO);
        EXPECT_FALSE(failures.empty());
        return;
    }
    ASSERT_EQ(result, 0);
    EXPECT_EQ(back, data);
    // Member 1 holds a data position of stripe 1 at every level (and is the mirror read there).
    EXPECT_EQ(array_->member(1).device.load()->errors.checksum.load(), 1u);
    EXPECT_EQ(array_->member(1).device.load()->errors.repaired.load(), 1u);
    // The repaired block was written back: a second read finds nothing new to repair.
    ASSERT_EQ(read(0, uint32_t(data.size()), &back), 0);
    EXPECT_EQ(back, data);
    EXPECT_EQ(array_->member(1).device.load()->errors.checksum.load(), 1u);
}

TEST_P(ArrayTest, RepairReplacesACorruptSource) {
    // Rebuilding a lost chunk starts from the first positions of the row. A corrupt one among
    // them must make the repair read further positions instead of decoding garbage.
    if (array_->geometry().failures_tolerated() < 2) GTEST_SKIP() << "needs two parities";
    const Geometry& geometry = array_->geometry();
    std::mt19937_64 random(test_seed() + 8);
    std::vector<uint8_t> data = random_bytes(random, geometry.stripe_data_bytes());
    ASSERT_EQ(write(0, data), 0);
    ASSERT_EQ(flush(), 0);
    uint32_t lost_role = geometry.member_of(0, 0, 0);
    uint32_t corrupt_role = geometry.member_of(0, 0, 1);
    corrupt_member(corrupt_role, 0, 64);
    array_->fail_member(lost_role, "test");
    // Read only the lost block, so the corrupt one is found while loading decode sources.
    std::vector<uint8_t> back;
    ASSERT_EQ(read(0, 4096, &back), 0);
    EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin()));
    EXPECT_EQ(array_->member(corrupt_role).device.load()->errors.checksum.load(), 1u);
    ASSERT_EQ(read(0, uint32_t(data.size()), &back), 0);
    EXPECT_EQ(back, data);
}

TEST_P(ArrayTest, FailurePastToleranceReadsEio) {
    uint32_t tolerated = array_->geometry().failures_tolerated();
    std::mt19937_64 random(test_seed() + 3);
    std::vector<uint8_t> data = random_bytes(random, 1 << 20);
    ASSERT_EQ(write(0, data), 0);
    for (uint32_t role = 0; role <= tolerated; ++role) array_->fail_member(role, "test");
    if (array_->geometry().level() == Level::kRaid10) array_->fail_member(1, "test");
    ASSERT_TRUE(array_->lost_data());
    std::vector<uint8_t> back;
    std::vector<ReadFailure> failures;
    EXPECT_EQ(read(0, 1 << 20, &back, &failures), -EIO);
    EXPECT_FALSE(failures.empty());
    // Every byte outside the failed ranges is still correct.
    std::vector<bool> failed(1 << 20, false);
    for (const auto& failure : failures) {
        for (uint64_t at = failure.offset; at < failure.offset + failure.length; ++at) failed[at] = true;
    }
    for (size_t i = 0; i < back.size(); ++i) {
        if (!failed[i]) {
            ASSERT_EQ(back[i], data[i]) << "byte " << i;
        }
    }
}

TEST_P(ArrayTest, Raid0WritesBesideALostMemberSucceed) {
    if (array_->geometry().level() != Level::kRaid0) GTEST_SKIP() << "raid0 only";
    std::mt19937_64 random(test_seed() + 5);
    uint64_t chunk = array_->geometry().chunk_bytes();
    ASSERT_EQ(write(0, random_bytes(random, 2 * chunk)), 0);
    std::vector<Extent> extents;
    array_->geometry().map(chunk, 1, &extents);
    ASSERT_EQ(extents.size(), 1u);
    array_->fail_member(extents[0].member, "test");
    // Unaligned writes into the first chunk read nothing from the lost one.
    ASSERT_EQ(write(100, random_bytes(random, 5000)), 0);
    ASSERT_EQ(write(chunk - 4096 - 10, random_bytes(random, 4096)), 0);
    expect_matches_model(0, chunk, "first chunk");
    // A write that reaches the lost chunk fails, and reads of it fail.
    EXPECT_EQ(write(chunk - 10, random_bytes(random, 20)), -EIO);
    std::vector<uint8_t> out;
    EXPECT_EQ(read(chunk, 4096, &out), -EIO);
}

// Withholds every completion of one member device, as if it hung, until the test hands them
// to the ring.
int withhold_member_io(const IoOp& op, int result, void* context) {
    return op.device == static_cast<const DeviceIo*>(context) ? kWithholdCompletion : result;
}

TEST_P(ArrayTest, HungMemberFailsAndReadsGoOn) {
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    std::mt19937_64 random(test_seed() + 6);
    io_timeout_ns_ = 200'000'000;
    open();
    uint64_t stripe_bytes = array_->geometry().stripe_data_bytes();
    ASSERT_EQ(write(0, random_bytes(random, 2 * stripe_bytes)), 0);

    std::vector<Extent> extents;
    array_->geometry().map(0, 1, &extents);
    ASSERT_EQ(extents.size(), 1u);
    uint32_t hung_role = extents[0].member;
    MemberDevice* hung = array_->member(hung_role).device.load();
    ring_->set_fault_hook(withhold_member_io, &hung->io);

    auto start = std::chrono::steady_clock::now();
    expect_matches_model(0, 2 * stripe_bytes, "read while a member hangs");
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_LT(waited, std::chrono::seconds(2)) << "the read waited for the hung member";
    EXPECT_EQ(array_->member(hung_role).state.load(), MemberState::kFaulty);
    EXPECT_GT(ring_->stats().timed_out, 0u);

    // A flush goes on without the hung member, and writes too.
    EXPECT_EQ(flush(), 0);
    ASSERT_EQ(write(4096, random_bytes(random, 8192)), 0);
    expect_matches_model(0, 2 * stripe_bytes, "read after a write");

    // The kernel returns the hung ops at last: the ring frees what they used.
    EXPECT_GT(ring_->stats().abandoned_in_kernel, 0u);
    run([&]() -> Task<void> {
        ring_->deliver_withheld_completions();
        co_return;
    });
    EXPECT_EQ(ring_->stats().abandoned_in_kernel, 0u);
    ring_->set_fault_hook(nullptr, nullptr);
}


TEST_P(ArrayTest, HungMemberTakesDirectReadBuffer) {
    // A read lands in the caller's buffer directly. When the member hangs, the kernel may
    // write into that buffer later, so the array must keep it and have the caller read again.
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    std::mt19937_64 random(test_seed() + 9);
    io_timeout_ns_ = 200'000'000;
    open();
    uint32_t length = uint32_t(2 * array_->geometry().stripe_data_bytes());
    ASSERT_EQ(write(0, random_bytes(random, length)), 0);
    std::vector<Extent> extents;
    array_->geometry().map(0, 1, &extents);
    MemberDevice* hung = array_->member(extents[0].member).device.load();
    ring_->set_fault_hook(withhold_member_io, &hung->io);

    std::weak_ptr<Buffer> abandoned_buffer = read_past_hung_member(length);

    run([&]() -> Task<void> {
        ring_->deliver_withheld_completions();
        co_return;
    });
    EXPECT_TRUE(abandoned_buffer.expired()) << "the buffer outlived the kernel's use of it";
    ring_->set_fault_hook(nullptr, nullptr);
}

// The length of a read that spreads over the workers: whole stripes, at least two, and more
// than a request that stays on one worker.
uint32_t spread_read_length(const Geometry& geometry) {
    uint64_t stripe = geometry.stripe_data_bytes();
    uint64_t stripes = std::max<uint64_t>(2, (256 * 1024 + stripe - 1) / stripe);
    return uint32_t(stripes * stripe);
}

TEST_P(ArrayTest, LargeReadsOnEveryWorkerMatchModel) {
    // Optimal, degraded to the level's tolerance, and past it: a read whose groups run on
    // three workers returns what a read on one ring returns, failures included.
    std::mt19937_64 random(test_seed() + 11);
    uint64_t size = array_->size_bytes();
    ASSERT_EQ(write(0, random_bytes(random, size)), 0);
    random_writes(random, 20);
    spread_requests(3);
    const Geometry& geometry = array_->geometry();
    // Reads of several groups make no member I/O on the test's ring.
    uint64_t ring_ops = ring_->stats().submitted;
    uint64_t ops_before = worker_ops();
    uint32_t spread_length = spread_read_length(geometry);
    for (uint64_t offset = 0; offset + spread_length <= size; offset += 3 * spread_length) {
        std::vector<uint8_t> data;
        ASSERT_EQ(read(offset, spread_length, &data), 0) << offset;
        ASSERT_TRUE(std::equal(data.begin(), data.end(), model_.begin() + offset))
            << "mismatch in " << offset << "+" << spread_length;
    }
    EXPECT_EQ(ring_->stats().submitted, ring_ops) << "the test's ring read members itself";
    EXPECT_GT(worker_ops(), ops_before);
    expect_matches_model(0, size, "optimal");
    for (int i = 0; i < 20; ++i) {
        uint32_t length = uint32_t(64 * 1024 + 1 + random() % (1 << 20));
        uint64_t offset = random() % (size - length + 1);
        std::vector<uint8_t> data;
        ASSERT_EQ(read(offset, length, &data), 0) << offset << "+" << length;
        ASSERT_TRUE(std::equal(data.begin(), data.end(), model_.begin() + offset))
            << "mismatch in " << offset << "+" << length;
    }

    uint32_t tolerated = geometry.failures_tolerated();
    for (uint32_t role = 0; role < tolerated; ++role) array_->fail_member(role, "test");
    ASSERT_FALSE(array_->lost_data());
    expect_matches_model(0, size, "degraded");

    array_->fail_member(tolerated, "test");
    if (geometry.level() == Level::kRaid10) array_->fail_member(1, "test");
    ASSERT_TRUE(array_->lost_data());
    uint32_t length = spread_length;
    std::vector<uint8_t> spread_data;
    std::vector<ReadFailure> spread_failures;
    EXPECT_EQ(read(0, length, &spread_data, &spread_failures), -EIO);
    array_->spread_over(nullptr);
    std::vector<uint8_t> local_data;
    std::vector<ReadFailure> local_failures;
    EXPECT_EQ(read(0, length, &local_data, &local_failures), -EIO);
    auto by_offset = [](const ReadFailure& a, const ReadFailure& b) { return a.offset < b.offset; };
    std::sort(spread_failures.begin(), spread_failures.end(), by_offset);
    std::sort(local_failures.begin(), local_failures.end(), by_offset);
    ASSERT_EQ(spread_failures.size(), local_failures.size());
    ASSERT_FALSE(spread_failures.empty());
    for (size_t i = 0; i < spread_failures.size(); ++i) {
        EXPECT_EQ(spread_failures[i].offset, local_failures[i].offset) << "failure " << i;
        EXPECT_EQ(spread_failures[i].length, local_failures[i].length) << "failure " << i;
    }
    EXPECT_EQ(spread_data, local_data);
}

TEST_P(ArrayTest, LargeWritesReadBackOnWorkers) {
    // Large writes (whole stripes, unaligned spans, FUA), optimal and degraded, read back by
    // reads spread over three workers, after a reopen, and by reads on one ring.
    std::mt19937_64 random(test_seed() + 13);
    uint64_t size = array_->size_bytes();
    // open() below replaces the array, so keep values, not a reference to its geometry.
    uint64_t stripe = array_->geometry().stripe_data_bytes();
    uint32_t tolerated = array_->geometry().failures_tolerated();
    ASSERT_EQ(write(0, random_bytes(random, size)), 0);
    spread_requests(3);

    uint64_t whole = std::max<uint64_t>(stripe, (128 * 1024 + stripe - 1) / stripe * stripe);
    for (uint64_t offset = 0; offset + whole <= size; offset += 5 * whole) {
        ASSERT_EQ(write(offset, random_bytes(random, whole), offset % 2 == 0), 0) << offset;
    }
    expect_matches_model(0, size, "after whole-stripe writes");

    for (int i = 0; i < 30; ++i) {
        uint64_t length = 64 * 1024 + 1 + random() % (700 * 1024);
        length = std::min(length, size);
        uint64_t offset = random() % (size - length + 1);
        if (i % 3 == 0) offset &= ~uint64_t(4095);
        ASSERT_EQ(write(offset, random_bytes(random, length), i % 5 == 0), 0)
            << offset << "+" << length;
    }
    expect_matches_model(0, size, "after large writes");
    ASSERT_EQ(flush(), 0);
    open();
    array_->spread_over(workers_.get());
    expect_matches_model(0, size, "after reopen");

    for (uint32_t role = 0; role < tolerated; ++role) array_->fail_member(role, "test");
    ASSERT_FALSE(array_->lost_data());
    for (int i = 0; i < 20; ++i) {
        uint64_t length = 64 * 1024 + 1 + random() % (700 * 1024);
        length = std::min(length, size);
        uint64_t offset = random() % (size - length + 1);
        ASSERT_EQ(write(offset, random_bytes(random, length)), 0) << offset << "+" << length;
    }
    expect_matches_model(0, size, "after degraded large writes");
    // Reads on the test's ring alone see the same data.
    array_->spread_over(nullptr);
    expect_matches_model(0, size, "read on one ring");
}

TEST_P(ArrayTest, SplitRowsOfOneGroupMatchModel) {
    // A read of one group is split into pieces of rows on the workers. Each piece returns its
    // own rows of every position, rebuilt rows included.
    std::mt19937_64 random(test_seed() + 14);
    uint64_t size = array_->size_bytes();
    const Geometry& geometry = array_->geometry();
    ASSERT_EQ(write(0, random_bytes(random, size)), 0);
    spread_requests(2);
    uint64_t group_bytes = geometry.chunk_bytes() * geometry.data_per_group();
    if (group_bytes <= 64 * 1024) GTEST_SKIP() << "a group of this level is not a large read";
    uint64_t ring_ops = ring_->stats().submitted;
    for (uint64_t offset = 0; offset + group_bytes <= size; offset += 7 * group_bytes) {
        std::vector<uint8_t> data;
        ASSERT_EQ(read(offset, uint32_t(group_bytes), &data), 0) << offset;
        ASSERT_TRUE(std::equal(data.begin(), data.end(), model_.begin() + offset)) << offset;
    }
    EXPECT_EQ(ring_->stats().submitted, ring_ops) << "the test's ring read members itself";
    if (geometry.failures_tolerated() == 0) return;
    array_->fail_member(geometry.member_of(0, 0, 0), "test");
    std::vector<uint8_t> data;
    ASSERT_EQ(read(0, uint32_t(group_bytes), &data), 0);
    EXPECT_TRUE(std::equal(data.begin(), data.end(), model_.begin())) << "rebuilt group";
}

TEST_P(ArrayTest, HungMemberTakesDirectReadBufferOnWorkers) {
    // As HungMemberTakesDirectReadBuffer, with the read's groups on two workers: the worker
    // whose read hangs takes the caller's buffer, once, and the caller reads again.
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    std::mt19937_64 random(test_seed() + 12);
    io_timeout_ns_ = 200'000'000;
    open();
    uint32_t length = spread_read_length(array_->geometry());
    ASSERT_EQ(write(0, random_bytes(random, length)), 0);
    spread_requests(2);
    std::vector<Extent> extents;
    array_->geometry().map(0, 1, &extents);
    MemberDevice* hung = array_->member(extents[0].member).device.load();
    for (uint32_t i = 0; i < 2; ++i) {
        on_worker(i, [&](Ring& ring) { ring.set_fault_hook(withhold_member_io, &hung->io); });
    }

    std::weak_ptr<Buffer> abandoned_buffer = read_past_hung_member(length);

    for (uint32_t i = 0; i < 2; ++i) {
        on_worker(i, [&](Ring& ring) {
            ring.deliver_withheld_completions();
            ring.set_fault_hook(nullptr, nullptr);
        });
    }
    EXPECT_TRUE(abandoned_buffer.expired()) << "the buffer outlived the kernel's use of it";
}

TEST_P(ArrayTest, FlushFailsHungMemberWithinTimeout) {
    uint32_t tolerated = array_->geometry().failures_tolerated();
    if (tolerated == 0) GTEST_SKIP() << "raid0 has no redundancy";
    std::mt19937_64 random(test_seed() + 7);
    io_timeout_ns_ = 200'000'000;
    open();
    ASSERT_EQ(write(0, random_bytes(random, 65536)), 0);
    uint32_t hung_role = 1;
    MemberDevice* hung = array_->member(hung_role).device.load();
    ring_->set_fault_hook(withhold_member_io, &hung->io);

    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(flush(), 0);
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_LT(waited, std::chrono::seconds(2)) << "the flush waited for the hung member";
    EXPECT_EQ(array_->member(hung_role).state.load(), MemberState::kFaulty);
    expect_matches_model(0, 65536, "read after the flush");

    run([&]() -> Task<void> {
        ring_->deliver_withheld_completions();
        co_return;
    });
    EXPECT_EQ(ring_->stats().abandoned_in_kernel, 0u);
    ring_->set_fault_hook(nullptr, nullptr);
}

TEST_P(ArrayTest, TrimAndWriteZeroesReadZeros) {
    std::mt19937_64 random(test_seed() + 4);
    uint64_t size = array_->size_bytes();
    ASSERT_EQ(write(0, random_bytes(random, size)), 0);
    uint64_t stripe = array_->geometry().stripe_data_bytes();
    int result = 0;
    run([&]() -> Task<void> { result = co_await array_->trim(stripe / 2, stripe * 3, false); });
    ASSERT_EQ(result, 0);
    std::fill(model_.begin() + stripe / 2, model_.begin() + stripe / 2 + stripe * 3, 0);
    run([&]() -> Task<void> {
        result = co_await array_->write_zeroes(stripe * 6 + 100, stripe * 2, false, true);
    });
    ASSERT_EQ(result, 0);
    std::fill(model_.begin() + stripe * 6 + 100, model_.begin() + stripe * 8 + 100, 0);
    expect_matches_model(0, size, "after trim");
    ASSERT_EQ(flush(), 0);
    open();
    expect_matches_model(0, size, "after reopen");
}

TEST_P(ArrayTest, OutOfRangeRequestsAreRejected) {
    std::vector<uint8_t> out;
    uint64_t size = array_->size_bytes();
    EXPECT_EQ(read(size - 512, 1024, &out), -EINVAL);
    EXPECT_EQ(write(size - 512, std::vector<uint8_t>(1024, 1)), -ENOSPC);
}

INSTANTIATE_TEST_SUITE_P(
    Levels, ArrayTest,
    ::testing::Values(LevelCase{"raid0", Level::kRaid0, 4, 0, 0, 64 << 10},
                      LevelCase{"raid1", Level::kRaid1, 3, 0, 0, 64 << 10},
                      LevelCase{"raid10", Level::kRaid10, 4, 0, 0, 64 << 10},
                      LevelCase{"raid5", Level::kRaid5, 4, 0, 0, 64 << 10},
                      LevelCase{"raid6", Level::kRaid6, 6, 0, 0, 16 << 10},
                      LevelCase{"raid6_8_2", Level::kRaid6, 10, 0, 0, 64 << 10},
                      LevelCase{"rs4_2", Level::kRs, 6, 4, 2, 64 << 10},
                      LevelCase{"rs8_3", Level::kRs, 11, 8, 3, 4 << 10}),
    [](const ::testing::TestParamInfo<LevelCase>& param) { return std::string(param.param.name); });

}  // namespace
}  // namespace ecraid
