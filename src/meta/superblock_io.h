// SPDX-License-Identifier: Apache-2.0
// Reading and writing the two superblock copies of a member.
//
// Faults handled here:
//   - a torn or damaged copy: the other copy is used, and the damage is reported so that the
//     caller can log it and rewrite the superblock;
//   - a copy written to the wrong slot, whose sequence parity does not match the slot;
//   - two valid copies that describe different arrays or members;
//   - a member too short to contain both copies.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/status.h"
#include "io/member_file.h"
#include "meta/superblock.h"

namespace ecraid {

// Copy A is at byte 0 and stores even sequence numbers. Copy B is at byte 4096 and stores
// odd ones.
enum class SuperblockCopy : uint8_t { kA = 0, kB = 1 };

std::string_view superblock_copy_name(SuperblockCopy copy);  // "A" or "B".
uint64_t superblock_copy_offset(SuperblockCopy copy);
SuperblockCopy superblock_copy_for_sequence(uint64_t sequence);
SuperblockCopy other_superblock_copy(SuperblockCopy copy);

struct SuperblockPair {
    Superblock superblock;  // The copy that wins: valid, with the higher (event, sequence).
    SuperblockCopy used = SuperblockCopy::kA;
    // Ok when the other copy is valid and describes the same member. It is then normally one
    // sequence number older, which is expected after a write. An error when the other copy is
    // damaged, truncated, misplaced or describes another member: the caller should log it and
    // rewrite the superblock (write_superblock writes the other copy next).
    Status other_status;
    std::optional<Superblock> other;  // The other copy when it decoded, even if it is stale.
};

// Chooses between two copies, given as the bytes read from slots A and B (either may be
// shorter than 4096 bytes when the member is truncated). When neither copy is valid, the error
// is kUnsupported if a copy has a newer major version, else kCorruption. Its message starts
// with "not an ecraid member" when neither slot contains the superblock magic.
Result<SuperblockPair> select_superblock(std::span<const uint8_t> copy_a,
                                         std::span<const uint8_t> copy_b);

// Reads both copies from `file` and selects one. Errors name the member path.
Result<SuperblockPair> read_superblock_pair(const MemberFile& file);

// Writes the next version of `*superblock`: increments its sequence, stores the current format
// version, writes the copy for the new sequence's parity, and runs fdatasync. Updates
// *superblock only on success. Returns kInvalidArgument, writing nothing, when the superblock
// does not pass validate_superblock().
Status write_superblock(MemberFile& file, Superblock* superblock);

// Writes both copies (two consecutive sequence numbers, each followed by fdatasync), as create
// and repairs do.
Status write_superblock_pair(MemberFile& file, Superblock* superblock);

// Checks that a member of `member_bytes` still holds the data area its superblock records.
// Returns kCorruption naming both sizes when the member has shrunk.
Status validate_member_size(const Superblock& superblock, uint64_t member_bytes);

}  // namespace ecraid
