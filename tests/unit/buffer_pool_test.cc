// SPDX-License-Identifier: Apache-2.0
// Buffer: size classes, alignment, per-thread reuse, the cached-bytes cap and thread exit.
#include "io/buffer_pool.h"

#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ecraid {
namespace {

bool aligned(const Buffer& buffer) {
    return reinterpret_cast<uintptr_t>(buffer.data()) % kBufferAlignment == 0;
}

class BufferTest : public ::testing::Test {
protected:
    void SetUp() override { BufferPool::trim(); }
    void TearDown() override { BufferPool::trim(); }
};

TEST_F(BufferTest, RoundsUpToSizeClass) {
    EXPECT_EQ(Buffer(0).capacity(), 4096u);
    EXPECT_EQ(Buffer(1).capacity(), 4096u);
    EXPECT_EQ(Buffer(4096).capacity(), 4096u);
    EXPECT_EQ(Buffer(4097).capacity(), 8192u);
    EXPECT_EQ(Buffer(100000).capacity(), 131072u);
    EXPECT_EQ(Buffer(kBufferClassBytesMax).capacity(), kBufferClassBytesMax);
}

TEST_F(BufferTest, IsAlignedTo4KiB) {
    for (size_t bytes : {size_t{1}, size_t{4096}, size_t{12345}, size_t{1} << 20}) {
        Buffer buffer(bytes);
        ASSERT_TRUE(buffer);
        EXPECT_TRUE(aligned(buffer)) << bytes;
        buffer.data()[0] = 1;
        buffer.data()[buffer.capacity() - 1] = 2;
    }
}

TEST_F(BufferTest, ReusesReleasedBufferOnSameThread) {
    Buffer first(10000);
    uint8_t* data = first.data();
    first.release();
    EXPECT_FALSE(first);
    EXPECT_EQ(first.capacity(), 0u);
    EXPECT_EQ(BufferPool::cached_bytes(), 16384u);

    Buffer second(16384);
    EXPECT_EQ(second.data(), data);
    EXPECT_EQ(BufferPool::cached_bytes(), 0u);

    Buffer other_class(4096);
    EXPECT_NE(other_class.data(), data);
}

TEST_F(BufferTest, LargeRequestIsNotCached) {
    Buffer buffer(kBufferClassBytesMax + 1);
    EXPECT_EQ(buffer.capacity(), kBufferClassBytesMax + 4096);
    EXPECT_TRUE(aligned(buffer));
    buffer.data()[buffer.capacity() - 1] = 1;
    buffer.release();
    EXPECT_EQ(BufferPool::cached_bytes(), 0u);
}

TEST_F(BufferTest, CacheStopsAtPerThreadCap) {
    constexpr size_t kCount = kCachedBytesMaxPerThread / kBufferClassBytesMax + 1;
    std::vector<Buffer> buffers;
    for (size_t i = 0; i < kCount; ++i) buffers.emplace_back(kBufferClassBytesMax);
    buffers.clear();
    EXPECT_EQ(BufferPool::cached_bytes(), kCachedBytesMaxPerThread);

    BufferPool::trim();
    EXPECT_EQ(BufferPool::cached_bytes(), 0u);
}

TEST_F(BufferTest, MoveTransfersOwnership) {
    Buffer source(4096);
    uint8_t* data = source.data();
    Buffer target(std::move(source));
    EXPECT_FALSE(source);
    EXPECT_EQ(target.data(), data);

    Buffer assigned(8192);
    assigned = std::move(target);
    EXPECT_FALSE(target);
    EXPECT_EQ(assigned.data(), data);
    EXPECT_EQ(assigned.capacity(), 4096u);
    // The 8 KiB buffer that `assigned` held went back to the cache.
    EXPECT_EQ(BufferPool::cached_bytes(), 8192u);
}

TEST_F(BufferTest, ReleaseOnOtherThreadCachesThere) {
    Buffer buffer(4096);
    size_t cached_there = 0;
    std::thread([&] {
        buffer.release();
        cached_there = BufferPool::cached_bytes();
    }).join();
    EXPECT_EQ(cached_there, 4096u);
    EXPECT_EQ(BufferPool::cached_bytes(), 0u);
}

// Under AddressSanitizer, a cache not freed at thread exit shows up as a leak.
TEST_F(BufferTest, ThreadExitFreesCache) {
    size_t cached_there = 0;
    std::thread([&] {
        for (size_t bytes = 4096; bytes <= (1u << 20); bytes *= 2) Buffer buffer(bytes);
        cached_there = BufferPool::cached_bytes();
    }).join();
    EXPECT_EQ(cached_there, (2u << 20) - 4096);
}

}  // namespace
}  // namespace ecraid
