// SPDX-License-Identifier: Apache-2.0
#include "codec/decode_cache.h"

#include <atomic>
#include <cassert>

namespace ecraid {

DecodeCache& DecodeCache::for_this_thread() {
    // Allocated on first use, so threads that never decode do not pay for it.
    thread_local std::unique_ptr<DecodeCache> cache = std::make_unique<DecodeCache>();
    return *cache;
}

uint32_t DecodeCache::set_of(uint64_t codec_id, uint64_t erased_mask) {
    // The splitmix64 finalizer spreads neighbouring ids and masks over all sets.
    uint64_t x = codec_id * 0x9e3779b97f4a7c15u ^ erased_mask;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return static_cast<uint32_t>(x % kSetCount);
}

const DecodePlan* DecodeCache::find(uint64_t codec_id, uint64_t erased_mask) const {
    assert(codec_id != 0);

    const DecodePlan* set = slots_[set_of(codec_id, erased_mask)];
    for (uint32_t way = 0; way < kWayCount; ++way) {
        if (set[way].codec_id == codec_id && set[way].erased_mask == erased_mask) {
            return &set[way];
        }
    }
    return nullptr;
}

DecodePlan* DecodeCache::claim(uint64_t codec_id, uint64_t erased_mask, size_t table_bytes) {
    assert(codec_id != 0);
    assert(find(codec_id, erased_mask) == nullptr);

    uint32_t set = set_of(codec_id, erased_mask);
    DecodePlan* slot = &slots_[set][next_victim_[set]];
    next_victim_[set] = static_cast<uint8_t>((next_victim_[set] + 1) % kWayCount);

    slot->codec_id = 0;
    slot->erased_mask = 0;
    if (slot->tables_capacity_bytes < table_bytes) {
        slot->tables = std::make_unique<uint8_t[]>(table_bytes);
        slot->tables_capacity_bytes = table_bytes;
    }
    ++plans_built_;
    return slot;
}

uint64_t next_codec_id() {
    static std::atomic<uint64_t> next_id{1};
    return next_id.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace ecraid
