// SPDX-License-Identifier: Apache-2.0
// FramePool: coroutine frames of every size are reused by the thread that freed them, and
// frames too large to cache still work.
#include "io/task.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace ecraid {
namespace {

TEST(FramePool, ReleasedFramesAreReused) {
    for (size_t bytes : {size_t(24), size_t(256), size_t(300), size_t(8191), size_t(8192),
                         size_t(12000), size_t(16384), size_t(40000), size_t(256 << 10)}) {
        void* first = detail::FramePool::allocate(bytes);
        std::memset(first, 0xA5, bytes);
        detail::FramePool::release(first, bytes);
        void* second = detail::FramePool::allocate(bytes);
        EXPECT_EQ(second, first) << bytes << " bytes";
        EXPECT_EQ(reinterpret_cast<uintptr_t>(second) % 64, 0u) << bytes << " bytes";
        detail::FramePool::release(second, bytes);
    }
}

TEST(FramePool, OversizedFramesAreNotCached) {
    size_t bytes = (256 << 10) + 1;
    void* frame = detail::FramePool::allocate(bytes);
    ASSERT_NE(frame, nullptr);
    std::memset(frame, 0x5A, bytes);
    detail::FramePool::release(frame, bytes);
}

TEST(FramePool, CachedFrameServesWholeClass) {
    // A frame allocated for a small size of a class serves the largest size of that class.
    void* frame = detail::FramePool::allocate(9000);
    detail::FramePool::release(frame, 9000);
    void* again = detail::FramePool::allocate(16000);
    ASSERT_EQ(again, frame);
    std::memset(again, 0x11, 16000);
    detail::FramePool::release(again, 16000);
}

Task<uintptr_t> large_frame_address() {
    uint8_t local[20000];
    std::memset(local, 1, sizeof(local));
    co_return reinterpret_cast<uintptr_t>(&local[0]) + local[sizeof(local) - 1] - 1;
}

Task<void> await_twice(uintptr_t* first, uintptr_t* second) {
    *first = co_await large_frame_address();
    *second = co_await large_frame_address();
}

TEST(FramePool, LargeCoroutineFrameIsReused) {
    uintptr_t first = 0;
    uintptr_t second = 0;
    spawn(await_twice(&first, &second));
    ASSERT_NE(first, 0u);
    EXPECT_EQ(first, second);
}

}  // namespace
}  // namespace ecraid
