// SPDX-License-Identifier: Apache-2.0
#include "meta/superblock_io.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>

#include <fmt/format.h>

namespace ecraid {
namespace {

struct DecodedCopy {
    SuperblockCopy copy;
    Result<Superblock> superblock;
};

DecodedCopy decode_copy(SuperblockCopy copy, std::span<const uint8_t> bytes) {
    Result<Superblock> superblock = decode_superblock(bytes);
    if (superblock.ok() && superblock_copy_for_sequence(superblock->sequence) != copy) {
        Status misplaced = Status::error(
            Code::kCorruption,
            fmt::format("sequence {} belongs in copy {}: a misdirected superblock write",
                        superblock->sequence,
                        superblock_copy_name(superblock_copy_for_sequence(superblock->sequence))));
        return {copy, Result<Superblock>(std::move(misplaced))};
    }
    return {copy, std::move(superblock)};
}

Status describe_copy_error(const DecodedCopy& decoded) {
    return decoded.superblock.status().with_context(
        fmt::format("copy {}", superblock_copy_name(decoded.copy)));
}

bool is_foreign(const Status& status) {
    return status.code() == Code::kCorruption &&
           status.message().starts_with("not an ecraid member");
}

Status both_copies_invalid(const DecodedCopy& a, const DecodedCopy& b) {
    const Status& status_a = a.superblock.status();
    const Status& status_b = b.superblock.status();
    if (is_foreign(status_a) && is_foreign(status_b)) {
        return Status::error(Code::kCorruption,
                             "not an ecraid member: no superblock magic at byte 0 or 4096");
    }
    Code code = status_a.code() == Code::kUnsupported || status_b.code() == Code::kUnsupported
                    ? Code::kUnsupported
                    : Code::kCorruption;
    return Status::error(code, fmt::format("no valid superblock copy: {}; {}",
                                           describe_copy_error(a).message(),
                                           describe_copy_error(b).message()));
}

// Ok when two valid copies describe the same member of the same array.
Status compare_copies(const Superblock& winner, const Superblock& other,
                      SuperblockCopy other_copy) {
    if (winner.array_uuid == other.array_uuid && winner.member_uuid == other.member_uuid) {
        return Status::ok_status();
    }
    return Status::error(Code::kCorruption,
                         fmt::format("copy {} describes member {} of array {}, but the newer "
                                     "copy describes member {} of array {}",
                                     superblock_copy_name(other_copy),
                                     other.member_uuid.to_string(), other.array_uuid.to_string(),
                                     winner.member_uuid.to_string(),
                                     winner.array_uuid.to_string()));
}

}  // namespace

std::string_view superblock_copy_name(SuperblockCopy copy) {
    return copy == SuperblockCopy::kA ? "A" : "B";
}

uint64_t superblock_copy_offset(SuperblockCopy copy) {
    return copy == SuperblockCopy::kA ? kSuperblockOffsetA : kSuperblockOffsetB;
}

SuperblockCopy superblock_copy_for_sequence(uint64_t sequence) {
    return sequence % 2 == 0 ? SuperblockCopy::kA : SuperblockCopy::kB;
}

SuperblockCopy other_superblock_copy(SuperblockCopy copy) {
    return copy == SuperblockCopy::kA ? SuperblockCopy::kB : SuperblockCopy::kA;
}

Result<SuperblockPair> select_superblock(std::span<const uint8_t> copy_a,
                                         std::span<const uint8_t> copy_b) {
    DecodedCopy a = decode_copy(SuperblockCopy::kA, copy_a);
    DecodedCopy b = decode_copy(SuperblockCopy::kB, copy_b);
    if (!a.superblock.ok() && !b.superblock.ok()) return both_copies_invalid(a, b);

    bool a_wins = false;
    if (a.superblock.ok() && b.superblock.ok()) {
        a_wins = std::tie(a.superblock->event_counter, a.superblock->sequence) >
                 std::tie(b.superblock->event_counter, b.superblock->sequence);
    } else {
        a_wins = a.superblock.ok();
    }
    DecodedCopy& winner = a_wins ? a : b;
    DecodedCopy& other = a_wins ? b : a;

    SuperblockPair pair;
    pair.superblock = std::move(winner.superblock.value());
    pair.used = winner.copy;
    if (other.superblock.ok()) {
        pair.other_status = compare_copies(pair.superblock, other.superblock.value(), other.copy);
        pair.other = std::move(other.superblock.value());
    } else {
        pair.other_status = describe_copy_error(other);
    }
    return pair;
}

Result<SuperblockPair> read_superblock_pair(const MemberFile& file) {
    // Read whole blocks only, so that the reads stay aligned for O_DIRECT; a member shorter
    // than a copy leaves that copy empty, which decodes as truncated.
    constexpr uint64_t kPairBytes = kSuperblockOffsetB + kSuperblockBytes;
    uint64_t readable = std::min(file.size(), kPairBytes) / kSuperblockBytes * kSuperblockBytes;
    AlignedBuffer buffer(kPairBytes);
    if (readable > 0) {
        Status status = file.pread_full(buffer.data(), readable, 0);
        if (!status.ok()) return status;
    }

    std::span<const uint8_t> bytes(buffer.data(), readable);
    auto slot = [&](SuperblockCopy copy) {
        uint64_t offset = superblock_copy_offset(copy);
        if (offset >= bytes.size()) {
            // Keep the real length of a partial copy so the error reports it.
            uint64_t present = file.size() > offset ? file.size() - offset : 0;
            return std::span<const uint8_t>(buffer.data() + offset, present);
        }
        return bytes.subspan(offset, kSuperblockBytes);
    };
    Result<SuperblockPair> pair = select_superblock(slot(SuperblockCopy::kA),
                                                    slot(SuperblockCopy::kB));
    if (!pair.ok()) return pair.status().with_context(file.path());
    return pair;
}

Status write_superblock(MemberFile& file, Superblock* superblock) {
    Superblock next = *superblock;
    next.sequence += 1;
    next.format_major = kFormatMajor;
    next.format_minor = kFormatMinor;
    Status valid = validate_superblock(next);
    if (!valid.ok()) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("{}: refusing to write an invalid superblock: {}",
                                         file.path(), valid.message()));
    }

    SuperblockBytes bytes = encode_superblock(next);
    AlignedBuffer buffer(kSuperblockBytes);
    std::copy(bytes.begin(), bytes.end(), buffer.data());
    uint64_t offset = superblock_copy_offset(superblock_copy_for_sequence(next.sequence));
    ECRAID_RETURN_IF_ERROR(file.pwrite_full(buffer.data(), kSuperblockBytes, offset));
    ECRAID_RETURN_IF_ERROR(file.sync());
    *superblock = std::move(next);
    return Status::ok_status();
}

Status write_superblock_pair(MemberFile& file, Superblock* superblock) {
    ECRAID_RETURN_IF_ERROR(write_superblock(file, superblock));
    return write_superblock(file, superblock);
}

Status validate_member_size(const Superblock& superblock, uint64_t member_bytes) {
    uint64_t data_end = superblock.layout.data_offset + superblock.layout.data_bytes;
    if (member_bytes < data_end) {
        return Status::error(Code::kCorruption,
                             fmt::format("member is {} bytes, but its superblock records a data "
                                         "area ending at byte {} (formatted size {} bytes): the "
                                         "member was truncated or replaced",
                                         member_bytes, data_end, superblock.layout.member_bytes));
    }
    return Status::ok_status();
}

}  // namespace ecraid
