// SPDX-License-Identifier: Apache-2.0
// Scrub of one stripe: verify every block of every position against its checksum, rebuild
// what fails from redundancy, and check that parity matches data.
//
// Because each block has its own checksum, a scrub names exactly which block is wrong and
// repairs only that one. A stripe whose blocks all verify but whose parity does not match its
// data has stale parity (for example a crash between the data and the parity write): the
// parity is recomputed from the data. Rows with more bad blocks than the level tolerates are
// unrecoverable and counted, never "repaired" into wrong data.
#pragma once

#include <cstdint>

#include "array/array.h"
#include "io/task.h"

namespace ecraid {

struct ScrubCounts {
    uint64_t checked_bytes = 0;        // Array data bytes of the stripes checked.
    uint64_t bad_blocks = 0;           // Blocks that failed their checksum or could not be read.
    uint64_t repaired_blocks = 0;      // Bad blocks rebuilt (and written back when repairing).
    uint64_t unrecoverable_blocks = 0;
    uint64_t parity_mismatches = 0;    // Block rows whose parity did not match their data.
    uint64_t parity_rewritten = 0;

    void add(const ScrubCounts& other) {
        checked_bytes += other.checked_bytes;
        bad_blocks += other.bad_blocks;
        repaired_blocks += other.repaired_blocks;
        unrecoverable_blocks += other.unrecoverable_blocks;
        parity_mismatches += other.parity_mismatches;
        parity_rewritten += other.parity_rewritten;
    }
};

// Scrubs `stripe` under its exclusive lock. With `repair`, bad blocks and stale parity are
// written back; without it, nothing is written.
Task<void> scrub_stripe(Array& array, uint64_t stripe, bool repair, ScrubCounts* counts);

}  // namespace ecraid
