// SPDX-License-Identifier: Apache-2.0
#include "meta/superblock.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>

#include <fmt/format.h>

#include "common/units.h"

namespace ecraid {
namespace {

namespace offsets = superblock_offsets;

// Little-endian field access, one byte at a time so that host byte order never matters.
template <typename T>
void put(SuperblockBytes& bytes, size_t offset, T value) {
    static_assert(std::is_unsigned_v<T>);
    for (size_t i = 0; i < sizeof(T); ++i) {
        bytes[offset + i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
    }
}

template <typename T>
T get(std::span<const uint8_t> bytes, size_t offset) {
    static_assert(std::is_unsigned_v<T>);
    uint64_t value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
        value |= static_cast<uint64_t>(bytes[offset + i]) << (8 * i);
    }
    return static_cast<T>(value);
}

void put_uuid(SuperblockBytes& bytes, size_t offset, const Uuid& uuid) {
    std::copy(uuid.bytes.begin(), uuid.bytes.end(), bytes.begin() + static_cast<ptrdiff_t>(offset));
}

Uuid get_uuid(std::span<const uint8_t> bytes, size_t offset) {
    Uuid uuid;
    std::copy_n(bytes.begin() + static_cast<ptrdiff_t>(offset), uuid.bytes.size(),
                uuid.bytes.begin());
    return uuid;
}

bool all_zero(std::span<const uint8_t> bytes, size_t offset, size_t length) {
    return std::all_of(bytes.begin() + static_cast<ptrdiff_t>(offset),
                       bytes.begin() + static_cast<ptrdiff_t>(offset + length),
                       [](uint8_t byte) { return byte == 0; });
}

Status corruption(std::string message) {
    return Status::error(Code::kCorruption, "invalid superblock: " + std::move(message));
}

bool is_known_level(Level level) {
    switch (level) {
        case Level::kRaid0:
        case Level::kRaid1:
        case Level::kRaid10:
        case Level::kRaid5:
        case Level::kRaid6:
        case Level::kRs:
            return true;
    }
    return false;
}

bool is_name_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

Status validate_version(uint16_t major, uint16_t minor) {
    if (major == 0) return corruption("format major version 0 was never written");
    if (major > kFormatMajor) {
        return Status::error(Code::kUnsupported,
                             fmt::format("superblock format version {}.{} is newer than this "
                                         "build reads ({}.x); use a newer ecraid",
                                         major, minor, kFormatMajor));
    }
    if (major < kFormatMajor) {
        return Status::error(Code::kUnsupported,
                             fmt::format("superblock format version {}.{} is older than this build "
                                         "reads ({}.x)", major, minor, kFormatMajor));
    }
    return Status::ok_status();
}

Status validate_geometry(const Superblock& superblock) {
    if (!is_known_level(superblock.level)) {
        return corruption(fmt::format("unknown level value {}",
                                      static_cast<unsigned>(superblock.level)));
    }
    GeometryConfig config;
    config.level = superblock.level;
    config.member_count = superblock.member_count;
    config.data_count = superblock.data_count;
    config.parity_count = superblock.parity_count;
    config.chunk_bytes = superblock.chunk_bytes;
    config.member_data_bytes = superblock.member_data_bytes_used;
    Result<Geometry> geometry = Geometry::create(config);
    if (!geometry.ok()) return corruption(geometry.status().message());

    if (geometry->data_per_group() != superblock.data_count ||
        geometry->parity_per_group() != superblock.parity_count) {
        return corruption(fmt::format("{} with {} members has k+m = {}+{}, but the superblock "
                                      "stores {}+{}",
                                      level_name(superblock.level), superblock.member_count,
                                      geometry->data_per_group(), geometry->parity_per_group(),
                                      superblock.data_count, superblock.parity_count));
    }
    if (superblock.member_data_bytes_used % superblock.chunk_bytes != 0) {
        return corruption(fmt::format("member data bytes used {} is not a multiple of the chunk "
                                      "size {}",
                                      superblock.member_data_bytes_used, superblock.chunk_bytes));
    }
    if (geometry->capacity_bytes() != superblock.capacity_bytes) {
        return corruption(fmt::format("capacity {} bytes does not match the geometry ({} stripes "
                                      "of {} data bytes = {} bytes)",
                                      superblock.capacity_bytes, geometry->stripe_count(),
                                      geometry->stripe_data_bytes(), geometry->capacity_bytes()));
    }
    return Status::ok_status();
}

Status validate_member_entry(const Superblock& superblock, size_t index) {
    const MemberEntry& entry = superblock.members[index];
    bool has_role = index < superblock.member_count;
    bool state_fits = false;
    switch (entry.state) {
        case MemberState::kActive:
            state_fits = has_role;
            break;
        case MemberState::kRebuilding:
            // A role's own entry while it is rebuilt onto a new member, or an entry after the
            // roles for a copy of a healthy member that stays active meanwhile.
            state_fits = true;
            break;
        case MemberState::kSpare:
            state_fits = !has_role;
            break;
        case MemberState::kFaulty:
        case MemberState::kMissing:
            state_fits = true;
            break;
    }
    if (!state_fits) {
        return corruption(fmt::format("member table entry {} ({}) has state value {}, which is "
                                      "invalid for {}",
                                      index, entry.uuid.to_string(),
                                      static_cast<unsigned>(entry.state),
                                      has_role ? "a role" : "a spare"));
    }
    if (entry.uuid.is_zero()) {
        return corruption(fmt::format("member table entry {} has a zero member UUID", index));
    }
    if (entry.rebuilt_up_to_stripe > superblock.stripe_count()) {
        return corruption(fmt::format("member table entry {} is rebuilt up to stripe {}, beyond "
                                      "the {} stripes of the array",
                                      index, entry.rebuilt_up_to_stripe,
                                      superblock.stripe_count()));
    }
    for (size_t other = 0; other < index; ++other) {
        if (superblock.members[other].uuid == entry.uuid) {
            return corruption(fmt::format("member table entries {} and {} have the same UUID {}",
                                          other, index, entry.uuid.to_string()));
        }
    }
    return Status::ok_status();
}

Status validate_member_table(const Superblock& superblock) {
    size_t entry_count = superblock.members.size();
    if (entry_count < superblock.member_count || entry_count > kMemberEntriesMax) {
        return corruption(fmt::format("member table has {} entries, expected {} to {}",
                                      entry_count, superblock.member_count, kMemberEntriesMax));
    }
    for (size_t index = 0; index < entry_count; ++index) {
        ECRAID_RETURN_IF_ERROR(validate_member_entry(superblock, index));
    }

    if (superblock.role != kRoleSpare) {
        if (superblock.role >= superblock.member_count) {
            return corruption(fmt::format("role {} is not below the member count {}",
                                          superblock.role, superblock.member_count));
        }
        if (superblock.members[superblock.role].uuid != superblock.member_uuid) {
            return corruption(fmt::format("member UUID {} differs from the UUID {} of its role {} "
                                          "in the member table",
                                          superblock.member_uuid.to_string(),
                                          superblock.members[superblock.role].uuid.to_string(),
                                          superblock.role));
        }
        return Status::ok_status();
    }
    auto spares = std::span(superblock.members).subspan(superblock.member_count);
    bool listed = std::any_of(spares.begin(), spares.end(), [&](const MemberEntry& entry) {
        return entry.uuid == superblock.member_uuid;
    });
    if (!listed) {
        return corruption(fmt::format("spare member {} is missing from the spare entries of the "
                                      "member table", superblock.member_uuid.to_string()));
    }
    return Status::ok_status();
}

Status validate_checkpoints(const Superblock& superblock) {
    uint64_t stripe_count = superblock.stripe_count();
    if (superblock.rebuild_role == kRoleNone) {
        if (superblock.rebuild_position_stripes != 0) {
            return corruption(fmt::format("rebuild position {} is set with no rebuild in progress",
                                          superblock.rebuild_position_stripes));
        }
    } else {
        if (superblock.rebuild_role >= superblock.member_count) {
            return corruption(fmt::format("rebuild role {} is not below the member count {}",
                                          superblock.rebuild_role, superblock.member_count));
        }
        auto copies = std::span(superblock.members).subspan(superblock.member_count);
        bool copy_listed = std::any_of(copies.begin(), copies.end(), [](const MemberEntry& entry) {
            return entry.state == MemberState::kRebuilding;
        });
        MemberState role_state = superblock.members[superblock.rebuild_role].state;
        if (role_state != MemberState::kRebuilding &&
            !(role_state == MemberState::kActive && copy_listed)) {
            return corruption(fmt::format("rebuild role {} is not in the rebuilding state and no "
                                          "copy of it is being made",
                                          superblock.rebuild_role));
        }
        if (superblock.rebuild_position_stripes > stripe_count) {
            return corruption(fmt::format("rebuild position {} is beyond the {} stripes",
                                          superblock.rebuild_position_stripes, stripe_count));
        }
    }

    switch (superblock.scrub_state) {
        case ScrubState::kIdle:
            if (superblock.scrub_position_stripes != 0) {
                return corruption(fmt::format("scrub position {} is set with no scrub in progress",
                                              superblock.scrub_position_stripes));
            }
            break;
        case ScrubState::kRunning:
        case ScrubState::kPaused:
            if (superblock.scrub_position_stripes > stripe_count) {
                return corruption(fmt::format("scrub position {} is beyond the {} stripes",
                                              superblock.scrub_position_stripes, stripe_count));
            }
            break;
        default:
            return corruption(fmt::format("unknown scrub state {}",
                                          static_cast<unsigned>(superblock.scrub_state)));
    }
    return Status::ok_status();
}

// Checks the bytes that decode_fields() does not read: reserved space and unused table
// entries must be zero in this version or an older one.
Status validate_reserved(std::span<const uint8_t> bytes, uint32_t entry_count) {
    if (!all_zero(bytes, offsets::kReserved146, 2)) {
        return corruption("reserved bytes 146..147 are not zero");
    }
    if (!all_zero(bytes, offsets::kReserved280, offsets::kMemberTable - offsets::kReserved280)) {
        return corruption("reserved bytes 280..511 are not zero");
    }
    for (uint32_t index = 0; index < kMemberEntriesMax; ++index) {
        size_t entry = offsets::kMemberTable + index * offsets::kMemberEntryBytes;
        if (index >= entry_count && !all_zero(bytes, entry, offsets::kMemberEntryBytes)) {
            return corruption(fmt::format("unused member table entry {} is not zero", index));
        }
        if (!all_zero(bytes, entry + offsets::kEntryReserved, 7)) {
            return corruption(fmt::format("reserved bytes of member table entry {} are not zero",
                                          index));
        }
    }
    if (!all_zero(bytes, offsets::kMemberTableEnd, kSuperblockBytes - offsets::kMemberTableEnd)) {
        return corruption("reserved bytes 2560..4095 are not zero");
    }
    return Status::ok_status();
}

Result<std::string> decode_name(std::span<const uint8_t> bytes) {
    auto field = bytes.subspan(offsets::kArrayName, kArrayNameBytes);
    auto nul = std::find(field.begin(), field.end(), uint8_t{0});
    if (nul == field.end()) return corruption("array name is not NUL-terminated");
    if (!std::all_of(nul, field.end(), [](uint8_t byte) { return byte == 0; })) {
        return corruption("array name has bytes after its terminating NUL");
    }
    std::string name(field.begin(), nul);
    Status status = validate_array_name(name);
    if (!status.ok()) return corruption(status.message());
    return name;
}

void decode_fields(std::span<const uint8_t> bytes, Superblock* superblock) {
    Superblock& sb = *superblock;
    sb.format_major = get<uint16_t>(bytes, offsets::kFormatMajor);
    sb.format_minor = get<uint16_t>(bytes, offsets::kFormatMinor);
    sb.sequence = get<uint64_t>(bytes, offsets::kSequence);
    sb.event_counter = get<uint64_t>(bytes, offsets::kEventCounter);
    sb.array_uuid = get_uuid(bytes, offsets::kArrayUuid);
    sb.member_uuid = get_uuid(bytes, offsets::kMemberUuid);
    sb.created_unix_seconds = get<uint64_t>(bytes, offsets::kCreatedUnixSeconds);
    sb.level = static_cast<Level>(get<uint8_t>(bytes, offsets::kLevel));
    sb.shutdown_state = static_cast<ShutdownState>(get<uint8_t>(bytes, offsets::kShutdownState));
    sb.member_count = get<uint32_t>(bytes, offsets::kMemberCount);
    sb.data_count = get<uint32_t>(bytes, offsets::kDataCount);
    sb.parity_count = get<uint32_t>(bytes, offsets::kParityCount);
    sb.role = get<uint32_t>(bytes, offsets::kRole);
    sb.chunk_bytes = get<uint64_t>(bytes, offsets::kChunkBytes);
    sb.capacity_bytes = get<uint64_t>(bytes, offsets::kCapacityBytes);
    sb.member_data_bytes_used = get<uint64_t>(bytes, offsets::kMemberDataBytesUsed);
    sb.layout.member_bytes = get<uint64_t>(bytes, offsets::kMemberBytes);
    sb.layout.region_bytes = get<uint64_t>(bytes, offsets::kRegionBytes);
    sb.layout.bitmap_offset = get<uint64_t>(bytes, offsets::kBitmapOffset);
    sb.layout.bitmap_bytes = get<uint64_t>(bytes, offsets::kBitmapBytes);
    sb.layout.checksum_table_offset = get<uint64_t>(bytes, offsets::kChecksumTableOffset);
    sb.layout.checksum_table_bytes = get<uint64_t>(bytes, offsets::kChecksumTableBytes);
    sb.layout.data_offset = get<uint64_t>(bytes, offsets::kDataOffset);
    sb.layout.data_bytes = get<uint64_t>(bytes, offsets::kDataBytes);
    sb.rebuild_role = get<uint32_t>(bytes, offsets::kRebuildRole);
    sb.scrub_state = static_cast<ScrubState>(get<uint32_t>(bytes, offsets::kScrubState));
    sb.rebuild_position_stripes = get<uint64_t>(bytes, offsets::kRebuildPositionStripes);
    sb.scrub_position_stripes = get<uint64_t>(bytes, offsets::kScrubPositionStripes);
}

void decode_member_table(std::span<const uint8_t> bytes, uint32_t entry_count,
                         Superblock* superblock) {
    superblock->members.resize(entry_count);
    for (uint32_t index = 0; index < entry_count; ++index) {
        size_t entry = offsets::kMemberTable + index * offsets::kMemberEntryBytes;
        MemberEntry& member = superblock->members[index];
        member.uuid = get_uuid(bytes, entry + offsets::kEntryUuid);
        member.state = static_cast<MemberState>(get<uint8_t>(bytes, entry + offsets::kEntryState));
        member.rebuilt_up_to_stripe = get<uint64_t>(bytes, entry + offsets::kEntryRebuiltUpToStripe);
    }
}

std::string describe_magic(std::span<const uint8_t> bytes) {
    std::string text;
    for (size_t i = 0; i < kSuperblockMagic.size(); ++i) {
        text += fmt::format("{}{:02x}", i == 0 ? "" : " ", bytes[offsets::kMagic + i]);
    }
    return text;
}

}  // namespace

std::string_view shutdown_state_name(ShutdownState state) {
    switch (state) {
        case ShutdownState::kClean: return "clean";
        case ShutdownState::kDirty: return "dirty";
    }
    return "unknown";
}

std::string_view scrub_state_name(ScrubState state) {
    switch (state) {
        case ScrubState::kIdle: return "idle";
        case ScrubState::kRunning: return "running";
        case ScrubState::kPaused: return "paused";
    }
    return "unknown";
}

std::string_view member_state_name(MemberState state) {
    switch (state) {
        case MemberState::kActive: return "active";
        case MemberState::kFaulty: return "faulty";
        case MemberState::kRebuilding: return "rebuilding";
        case MemberState::kSpare: return "spare";
        case MemberState::kMissing: return "missing";
    }
    return "unknown";
}

Status validate_array_name(std::string_view name) {
    if (name.size() > kArrayNameLengthMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("array name '{}' is {} bytes long; the maximum is {}",
                                         name, name.size(), kArrayNameLengthMax));
    }
    if (!name.empty() && name.front() == '-') {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("array name '{}' must not start with '-'", name));
    }
    auto bad = std::find_if_not(name.begin(), name.end(), is_name_character);
    if (bad != name.end()) {
        std::string printable(name);
        for (char& c : printable) {
            if (c < 0x20 || c > 0x7e) c = '?';
        }
        return Status::error(Code::kInvalidArgument,
                             fmt::format("array name '{}' contains the invalid byte 0x{:02x} at "
                                         "position {}; use only letters, digits, '.', '_' and '-'",
                                         printable, static_cast<unsigned char>(*bad),
                                         bad - name.begin()));
    }
    return Status::ok_status();
}

Status validate_superblock(const Superblock& superblock) {
    ECRAID_RETURN_IF_ERROR(validate_version(superblock.format_major, superblock.format_minor));
    if (superblock.array_uuid.is_zero()) return corruption("array UUID is zero");
    if (superblock.member_uuid.is_zero()) return corruption("member UUID is zero");
    Status name_status = validate_array_name(superblock.array_name);
    if (!name_status.ok()) return corruption(name_status.message());
    if (superblock.shutdown_state != ShutdownState::kClean &&
        superblock.shutdown_state != ShutdownState::kDirty) {
        return corruption(fmt::format("unknown shutdown state {}",
                                      static_cast<unsigned>(superblock.shutdown_state)));
    }

    ECRAID_RETURN_IF_ERROR(validate_geometry(superblock));
    Status layout_status = validate_member_layout(superblock.layout, superblock.chunk_bytes);
    if (!layout_status.ok()) return corruption(layout_status.message());
    if (superblock.member_data_bytes_used > superblock.layout.data_bytes) {
        return corruption(fmt::format("member data bytes used {} exceed the data area of {} bytes",
                                      superblock.member_data_bytes_used,
                                      superblock.layout.data_bytes));
    }

    ECRAID_RETURN_IF_ERROR(validate_member_table(superblock));
    return validate_checkpoints(superblock);
}

uint64_t compute_superblock_checksum(std::span<const uint8_t, kSuperblockBytes> bytes) {
    SuperblockBytes copy;
    std::copy(bytes.begin(), bytes.end(), copy.begin());
    std::fill_n(copy.begin() + offsets::kChecksum, 8, uint8_t{0});
    return XXH3_64bits(copy.data(), copy.size());
}

SuperblockBytes encode_superblock(const Superblock& superblock) {
    assert(validate_superblock(superblock).ok());
    assert(superblock.members.size() <= kMemberEntriesMax);
    assert(superblock.array_name.size() <= kArrayNameLengthMax);

    SuperblockBytes bytes{};
    std::copy(kSuperblockMagic.begin(), kSuperblockMagic.end(), bytes.begin());
    put<uint16_t>(bytes, offsets::kFormatMajor, superblock.format_major);
    put<uint16_t>(bytes, offsets::kFormatMinor, superblock.format_minor);
    put<uint32_t>(bytes, offsets::kCoveredBytes, kSuperblockBytes);
    put<uint64_t>(bytes, offsets::kSequence, superblock.sequence);
    put<uint64_t>(bytes, offsets::kEventCounter, superblock.event_counter);
    put_uuid(bytes, offsets::kArrayUuid, superblock.array_uuid);
    put_uuid(bytes, offsets::kMemberUuid, superblock.member_uuid);
    std::copy(superblock.array_name.begin(), superblock.array_name.end(),
              bytes.begin() + offsets::kArrayName);
    put<uint64_t>(bytes, offsets::kCreatedUnixSeconds, superblock.created_unix_seconds);
    put<uint8_t>(bytes, offsets::kLevel, static_cast<uint8_t>(superblock.level));
    put<uint8_t>(bytes, offsets::kShutdownState, static_cast<uint8_t>(superblock.shutdown_state));
    put<uint32_t>(bytes, offsets::kMemberCount, superblock.member_count);
    put<uint32_t>(bytes, offsets::kDataCount, superblock.data_count);
    put<uint32_t>(bytes, offsets::kParityCount, superblock.parity_count);
    put<uint32_t>(bytes, offsets::kRole, superblock.role);
    put<uint32_t>(bytes, offsets::kMemberEntryCount, static_cast<uint32_t>(superblock.members.size()));
    put<uint64_t>(bytes, offsets::kChunkBytes, superblock.chunk_bytes);
    put<uint64_t>(bytes, offsets::kCapacityBytes, superblock.capacity_bytes);
    put<uint64_t>(bytes, offsets::kMemberDataBytesUsed, superblock.member_data_bytes_used);
    put<uint64_t>(bytes, offsets::kMemberBytes, superblock.layout.member_bytes);
    put<uint64_t>(bytes, offsets::kRegionBytes, superblock.layout.region_bytes);
    put<uint64_t>(bytes, offsets::kBitmapOffset, superblock.layout.bitmap_offset);
    put<uint64_t>(bytes, offsets::kBitmapBytes, superblock.layout.bitmap_bytes);
    put<uint64_t>(bytes, offsets::kChecksumTableOffset, superblock.layout.checksum_table_offset);
    put<uint64_t>(bytes, offsets::kChecksumTableBytes, superblock.layout.checksum_table_bytes);
    put<uint64_t>(bytes, offsets::kDataOffset, superblock.layout.data_offset);
    put<uint64_t>(bytes, offsets::kDataBytes, superblock.layout.data_bytes);
    put<uint32_t>(bytes, offsets::kRebuildRole, superblock.rebuild_role);
    put<uint32_t>(bytes, offsets::kScrubState, static_cast<uint32_t>(superblock.scrub_state));
    put<uint64_t>(bytes, offsets::kRebuildPositionStripes, superblock.rebuild_position_stripes);
    put<uint64_t>(bytes, offsets::kScrubPositionStripes, superblock.scrub_position_stripes);

    for (size_t index = 0; index < superblock.members.size(); ++index) {
        const MemberEntry& member = superblock.members[index];
        size_t entry = offsets::kMemberTable + index * offsets::kMemberEntryBytes;
        put_uuid(bytes, entry + offsets::kEntryUuid, member.uuid);
        put<uint8_t>(bytes, entry + offsets::kEntryState, static_cast<uint8_t>(member.state));
        put<uint64_t>(bytes, entry + offsets::kEntryRebuiltUpToStripe, member.rebuilt_up_to_stripe);
    }

    put<uint64_t>(bytes, offsets::kChecksum, compute_superblock_checksum(bytes));
    return bytes;
}

Result<Superblock> decode_superblock(std::span<const uint8_t> bytes) {
    if (bytes.size() < kSuperblockBytes) {
        return corruption(fmt::format("truncated: {} bytes, a superblock copy is {} bytes",
                                      bytes.size(), kSuperblockBytes));
    }
    bytes = bytes.first(kSuperblockBytes);
    if (!std::equal(kSuperblockMagic.begin(), kSuperblockMagic.end(), bytes.begin())) {
        return Status::error(Code::kCorruption,
                             fmt::format("not an ecraid member: no superblock magic (found {})",
                                         describe_magic(bytes)));
    }

    // The version comes before the checksum because a newer major version may checksum
    // differently; its copies must read as unsupported, not as damaged.
    uint16_t major = get<uint16_t>(bytes, offsets::kFormatMajor);
    uint16_t minor = get<uint16_t>(bytes, offsets::kFormatMinor);
    ECRAID_RETURN_IF_ERROR(validate_version(major, minor));
    uint32_t covered_bytes = get<uint32_t>(bytes, offsets::kCoveredBytes);
    if (covered_bytes != kSuperblockBytes) {
        return corruption(fmt::format("covered length {} bytes, expected {}", covered_bytes,
                                      kSuperblockBytes));
    }
    uint64_t stored = get<uint64_t>(bytes, offsets::kChecksum);
    uint64_t computed = compute_superblock_checksum(bytes.first<kSuperblockBytes>());
    if (stored != computed) {
        return corruption(fmt::format("checksum mismatch: stored {:#018x}, computed {:#018x}",
                                      stored, computed));
    }

    uint32_t entry_count = get<uint32_t>(bytes, offsets::kMemberEntryCount);
    if (entry_count > kMemberEntriesMax) {
        return corruption(fmt::format("member table entry count {} is above the maximum {}",
                                      entry_count, kMemberEntriesMax));
    }
    // A newer minor version may store fields in reserved space; this build ignores them.
    if (minor <= kFormatMinor) ECRAID_RETURN_IF_ERROR(validate_reserved(bytes, entry_count));

    Superblock superblock;
    decode_fields(bytes, &superblock);
    decode_member_table(bytes, entry_count, &superblock);
    Result<std::string> name = decode_name(bytes);
    if (!name.ok()) return name.status();
    superblock.array_name = std::move(name.value());

    ECRAID_RETURN_IF_ERROR(validate_superblock(superblock));
    return superblock;
}

}  // namespace ecraid
