// SPDX-License-Identifier: Apache-2.0
// Superblock: the 4096-byte record at the start of every member. It records which array the
// member belongs to, its role, the array's geometry, every member's state and where the
// member's metadata regions are.
//
// Every member stores two copies (A at byte 0, B at byte 4096, see member_layout.h). Each
// write increments the update sequence number and goes to copy A when the new sequence is
// even and to copy B when it is odd, so a torn write damages at most the copy being written
// and the other still holds the previous state. Readers take the valid copy with the higher
// (event counter, sequence).
//
// The encoding is explicit little-endian, field by field; docs/format.md has the byte map.
// Decoding validates every field, so a copy whose checksum was recomputed after a change is
// still rejected when its fields are inconsistent.
//
// Version rule: the major version changes when existing fields change meaning, move, or get
// new values (a new level or member state). Readers reject a newer major version. The minor
// version changes when a new field is stored in space that was reserved. Readers accept a newer
// minor version and ignore the fields they do not know. A writer always stores its own version
// and writes reserved space as zeros, so a newer reader sees an older minor version and knows
// that the newer fields are absent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "layout/geometry.h"
#include "meta/member_layout.h"
#include "meta/uuid.h"

namespace ecraid {

inline constexpr std::array<uint8_t, 8> kSuperblockMagic = {'E', 'C', 'R', 'A', 'I', 'D', 'S', 'B'};
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 0;

// Array name field: up to 63 bytes of [A-Za-z0-9._-], NUL padded to 64 bytes.
inline constexpr size_t kArrayNameBytes = 64;
inline constexpr size_t kArrayNameLengthMax = kArrayNameBytes - 1;

// Entries in the member table: every role 0..member_count-1, then the spares.
inline constexpr uint32_t kMemberEntriesMax = 64;
// The `role` of a spare member, and the `rebuild_role` when no rebuild is in progress.
inline constexpr uint32_t kRoleSpare = 0xffffffff;
inline constexpr uint32_t kRoleNone = 0xffffffff;

// Byte offsets of the fixed fields within one superblock copy.
namespace superblock_offsets {
inline constexpr size_t kMagic = 0;
inline constexpr size_t kFormatMajor = 8;
inline constexpr size_t kFormatMinor = 10;
inline constexpr size_t kCoveredBytes = 12;
inline constexpr size_t kChecksum = 16;
inline constexpr size_t kSequence = 24;
inline constexpr size_t kEventCounter = 32;
inline constexpr size_t kArrayUuid = 40;
inline constexpr size_t kMemberUuid = 56;
inline constexpr size_t kArrayName = 72;
inline constexpr size_t kCreatedUnixSeconds = 136;
inline constexpr size_t kLevel = 144;
inline constexpr size_t kShutdownState = 145;
inline constexpr size_t kReserved146 = 146;  // 2 bytes.
inline constexpr size_t kMemberCount = 148;
inline constexpr size_t kDataCount = 152;
inline constexpr size_t kParityCount = 156;
inline constexpr size_t kRole = 160;
inline constexpr size_t kMemberEntryCount = 164;
inline constexpr size_t kChunkBytes = 168;
inline constexpr size_t kCapacityBytes = 176;
inline constexpr size_t kMemberDataBytesUsed = 184;
inline constexpr size_t kMemberBytes = 192;
inline constexpr size_t kRegionBytes = 200;
inline constexpr size_t kBitmapOffset = 208;
inline constexpr size_t kBitmapBytes = 216;
inline constexpr size_t kChecksumTableOffset = 224;
inline constexpr size_t kChecksumTableBytes = 232;
inline constexpr size_t kDataOffset = 240;
inline constexpr size_t kDataBytes = 248;
inline constexpr size_t kRebuildRole = 256;
inline constexpr size_t kScrubState = 260;
inline constexpr size_t kRebuildPositionStripes = 264;
inline constexpr size_t kScrubPositionStripes = 272;
inline constexpr size_t kReserved280 = 280;  // Up to the member table.
inline constexpr size_t kMemberTable = 512;
inline constexpr size_t kMemberEntryBytes = 32;
inline constexpr size_t kMemberTableEnd = kMemberTable + kMemberEntriesMax * kMemberEntryBytes;
// Within one member table entry.
inline constexpr size_t kEntryUuid = 0;
inline constexpr size_t kEntryState = 16;
inline constexpr size_t kEntryReserved = 17;  // 7 bytes.
inline constexpr size_t kEntryRebuiltUpToStripe = 24;
}  // namespace superblock_offsets

static_assert(superblock_offsets::kArrayName + kArrayNameBytes ==
              superblock_offsets::kCreatedUnixSeconds);
static_assert(superblock_offsets::kScrubPositionStripes + 8 == superblock_offsets::kReserved280);
static_assert(superblock_offsets::kEntryRebuiltUpToStripe + 8 ==
              superblock_offsets::kMemberEntryBytes);
static_assert(superblock_offsets::kMemberTableEnd == 2560);
static_assert(superblock_offsets::kMemberTableEnd <= kSuperblockBytes);
static_assert(kSuperblockOffsetA + kSuperblockBytes <= kSuperblockOffsetB);
static_assert(kSuperblockOffsetB + kSuperblockBytes <= kBitmapOffset);

enum class ShutdownState : uint8_t {
    kClean = 0,  // Stopped cleanly: parity matches data everywhere.
    kDirty = 1,  // Running, or stopped without a clean shutdown: resync the dirty regions.
};

enum class ScrubState : uint32_t {
    kIdle = 0,     // No scrub in progress; the position is 0.
    kRunning = 1,  // A scrub was running; resume it at the position.
    kPaused = 2,   // A scrub was paused by the operator at the position.
};

// State of one member table entry. 0 marks an unused entry, which is all zeros on disk.
enum class MemberState : uint8_t {
    kActive = 1,      // In sync and serving.
    kFaulty = 2,      // Failed; its data is never trusted again.
    kRebuilding = 3,  // Being rebuilt; valid below rebuilt_up_to_stripe.
    kSpare = 4,       // A spare waiting for a rebuild.
    kMissing = 5,     // Known to the array but absent when it was last assembled.
};

std::string_view shutdown_state_name(ShutdownState state);
std::string_view scrub_state_name(ScrubState state);
std::string_view member_state_name(MemberState state);

struct MemberEntry {
    Uuid uuid;
    MemberState state = MemberState::kActive;
    // Stripes below this one hold valid data on the member. Equal to the stripe count for an
    // active member that is fully in sync.
    uint64_t rebuilt_up_to_stripe = 0;

    friend bool operator==(const MemberEntry&, const MemberEntry&) = default;
};

struct Superblock {
    uint16_t format_major = kFormatMajor;
    uint16_t format_minor = kFormatMinor;
    uint64_t sequence = 0;       // Incremented on every superblock write; its parity is the copy.
    uint64_t event_counter = 0;  // Incremented on every member state change in the array.
    Uuid array_uuid;
    Uuid member_uuid;
    std::string array_name;  // Up to kArrayNameLengthMax bytes; see validate_array_name().
    uint64_t created_unix_seconds = 0;
    Level level = Level::kRaid5;
    ShutdownState shutdown_state = ShutdownState::kClean;
    uint32_t member_count = 0;  // n: members with a role.
    uint32_t data_count = 0;    // k per group, as in Geometry.
    uint32_t parity_count = 0;  // m per group, as in Geometry.
    uint32_t role = 0;          // This member's index 0..n-1, or kRoleSpare.
    uint64_t chunk_bytes = 0;
    uint64_t capacity_bytes = 0;          // Size of the virtual disk.
    uint64_t member_data_bytes_used = 0;  // Stripe count * chunk bytes, on every member.
    MemberLayout layout;                  // This member's regions.
    uint32_t rebuild_role = kRoleNone;    // Role being rebuilt, or kRoleNone.
    uint64_t rebuild_position_stripes = 0;
    ScrubState scrub_state = ScrubState::kIdle;
    uint64_t scrub_position_stripes = 0;
    // Entries 0..member_count-1 are the roles; entries after them are spares.
    std::vector<MemberEntry> members;

    uint64_t stripe_count() const {
        return chunk_bytes == 0 ? 0 : member_data_bytes_used / chunk_bytes;
    }

    friend bool operator==(const Superblock&, const Superblock&) = default;
};

using SuperblockBytes = std::array<uint8_t, kSuperblockBytes>;

// Checks an array name: up to 63 bytes of ASCII letters, digits, '.', '_' and '-', not
// starting with '-'. The empty name is allowed. Errors are kInvalidArgument.
Status validate_array_name(std::string_view name);

// Checks every field and the relations between them (geometry, layout, roles, member table,
// checkpoints). Errors are kCorruption naming the field; a newer major version is
// kUnsupported.
Status validate_superblock(const Superblock& superblock);

// Encodes a superblock, computing its checksum.
// Requires: validate_superblock(superblock) is ok (asserted in debug builds).
SuperblockBytes encode_superblock(const Superblock& superblock);

// Decodes and validates one copy. Errors: kCorruption for a foreign block ("not an ecraid
// member"), fewer than 4096 bytes, a checksum mismatch or an invalid field; kUnsupported for
// a newer major version.
Result<Superblock> decode_superblock(std::span<const uint8_t> bytes);

// XXH3-64 of a 4096-byte copy with its checksum field read as zeros.
uint64_t compute_superblock_checksum(std::span<const uint8_t, kSuperblockBytes> bytes);

}  // namespace ecraid
