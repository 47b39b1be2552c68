// SPDX-License-Identifier: Apache-2.0
// `ecraid inspect`: prints a member's superblock, as text or as one JSON object.
//
// Inspect opens the member read-only and never repairs it. It reports which copy it used and
// whether the other copy is damaged, so an operator can see a torn superblock before
// assembling the array rewrites it.
#include <ctime>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/units.h"
#include "io/member_file.h"
#include "meta/superblock.h"
#include "meta/superblock_io.h"
#include "tools/commands.h"

namespace ecraid {
namespace {

struct InspectArguments {
    std::string member;
    bool json = false;
};

// Fields of the copy in use that decoding checks but does not keep.
struct RawHeader {
    std::string magic;
    uint32_t covered_bytes = 0;
    uint64_t checksum = 0;
};

[[noreturn]] void fail(const std::string& message) {
    std::cerr << "ecraid inspect: error: " << message << "\n";
    throw CLI::RuntimeError(kExitError);
}

uint64_t read_le(const uint8_t* bytes, size_t width) {
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= uint64_t{bytes[i]} << (8 * i);
    return value;
}

Result<RawHeader> read_raw_header(const MemberFile& file, SuperblockCopy copy) {
    AlignedBuffer buffer(kSuperblockBytes);
    Status status = file.pread_full(buffer.data(), kSuperblockBytes, superblock_copy_offset(copy));
    if (!status.ok()) return status;
    RawHeader header;
    header.magic.assign(buffer.data(), buffer.data() + kSuperblockMagic.size());
    header.covered_bytes =
        static_cast<uint32_t>(read_le(buffer.data() + superblock_offsets::kCoveredBytes, 4));
    header.checksum = read_le(buffer.data() + superblock_offsets::kChecksum, 8);
    return header;
}

std::string format_role(uint32_t role) {
    return role == kRoleSpare ? std::string("spare") : std::to_string(role);
}

std::string format_time(uint64_t unix_seconds) {
    return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC",
                       fmt::gmtime(static_cast<std::time_t>(unix_seconds)));
}

std::string describe_other_copy(const SuperblockPair& pair) {
    std::string name(superblock_copy_name(other_superblock_copy(pair.used)));
    // The status message already starts with "copy A" or "copy B".
    if (!pair.other_status.ok()) return pair.other_status.message();
    return fmt::format("copy {} is valid (sequence {})", name, pair.other->sequence);
}

nlohmann::json layout_json(const MemberLayout& layout) {
    return {
        {"member_bytes", layout.member_bytes},
        {"superblock_a_offset", kSuperblockOffsetA},
        {"superblock_b_offset", kSuperblockOffsetB},
        {"superblock_bytes", kSuperblockBytes},
        {"region_bytes", layout.region_bytes},
        {"region_count", layout.region_count()},
        {"bitmap_offset", layout.bitmap_offset},
        {"bitmap_bytes", layout.bitmap_bytes},
        {"checksum_table_offset", layout.checksum_table_offset},
        {"checksum_table_bytes", layout.checksum_table_bytes},
        {"data_offset", layout.data_offset},
        {"data_bytes", layout.data_bytes},
        {"data_block_count", layout.data_block_count()},
    };
}

nlohmann::json superblock_json(const Superblock& sb, const RawHeader& header) {
    nlohmann::json members = nlohmann::json::array();
    for (size_t index = 0; index < sb.members.size(); ++index) {
        const MemberEntry& entry = sb.members[index];
        members.push_back({{"index", index},
                           {"uuid", entry.uuid.to_string()},
                           {"state", member_state_name(entry.state)},
                           {"rebuilt_up_to_stripe", entry.rebuilt_up_to_stripe}});
    }
    nlohmann::json rebuild = {{"position_stripes", sb.rebuild_position_stripes}};
    rebuild["role"] = sb.rebuild_role == kRoleNone ? nlohmann::json(nullptr)
                                                   : nlohmann::json(sb.rebuild_role);
    return {
        {"magic", header.magic},
        {"format_version", fmt::format("{}.{}", sb.format_major, sb.format_minor)},
        {"covered_bytes", header.covered_bytes},
        {"checksum", fmt::format("{:#018x}", header.checksum)},
        {"sequence", sb.sequence},
        {"event_counter", sb.event_counter},
        {"array_uuid", sb.array_uuid.to_string()},
        {"member_uuid", sb.member_uuid.to_string()},
        {"array_name", sb.array_name},
        {"created_unix_seconds", sb.created_unix_seconds},
        {"level", level_name(sb.level)},
        {"shutdown_state", shutdown_state_name(sb.shutdown_state)},
        {"member_count", sb.member_count},
        {"data_count", sb.data_count},
        {"parity_count", sb.parity_count},
        {"role", sb.role == kRoleSpare ? nlohmann::json("spare") : nlohmann::json(sb.role)},
        {"chunk_bytes", sb.chunk_bytes},
        {"capacity_bytes", sb.capacity_bytes},
        {"member_data_bytes_used", sb.member_data_bytes_used},
        {"stripe_count", sb.stripe_count()},
        {"layout", layout_json(sb.layout)},
        {"rebuild", rebuild},
        {"scrub", {{"state", scrub_state_name(sb.scrub_state)},
                   {"position_stripes", sb.scrub_position_stripes}}},
        {"members", members},
    };
}

void print_json(const MemberFile& file, const SuperblockPair& pair, const RawHeader& header,
                const Status& size_status) {
    nlohmann::json other = {
        {"copy", superblock_copy_name(other_superblock_copy(pair.used))},
        {"valid", pair.other_status.ok()},
    };
    if (pair.other_status.ok()) other["sequence"] = pair.other->sequence;
    if (!pair.other_status.ok()) other["error"] = pair.other_status.message();
    nlohmann::json output = {
        {"path", file.path()},
        {"size_bytes", file.size()},
        {"block_device", file.is_block_device()},
        {"copy_used", superblock_copy_name(pair.used)},
        {"other_copy", other},
        {"size_error", size_status.ok() ? nlohmann::json(nullptr)
                                        : nlohmann::json(size_status.message())},
        {"superblock", superblock_json(pair.superblock, header)},
    };
    std::cout << output.dump(2) << "\n";
}

void print_layout(const MemberLayout& layout) {
    std::cout << "Layout (byte offsets on the member, little-endian metadata):\n";
    std::cout << fmt::format("  superblock A       offset {:>14}  {:>14} bytes\n",
                             kSuperblockOffsetA, kSuperblockBytes);
    std::cout << fmt::format("  superblock B       offset {:>14}  {:>14} bytes\n",
                             kSuperblockOffsetB, kSuperblockBytes);
    std::cout << fmt::format("  bitmap             offset {:>14}  {:>14} bytes  ({} regions of {})\n",
                             layout.bitmap_offset, layout.bitmap_bytes, layout.region_count(),
                             format_size(layout.region_bytes));
    std::cout << fmt::format("  checksum table     offset {:>14}  {:>14} bytes  ({} entries)\n",
                             layout.checksum_table_offset, layout.checksum_table_bytes,
                             layout.data_block_count());
    std::cout << fmt::format("  data area          offset {:>14}  {:>14} bytes  ({})\n",
                             layout.data_offset, layout.data_bytes, format_size(layout.data_bytes));
    std::cout << fmt::format("  member size when formatted   {} bytes ({})\n", layout.member_bytes,
                             format_size(layout.member_bytes));
}

void print_member_table(const Superblock& sb) {
    std::cout << fmt::format("Member table ({} entries):\n", sb.members.size());
    std::cout << "  index  role   state        rebuilt up to stripe  member UUID\n";
    for (size_t index = 0; index < sb.members.size(); ++index) {
        const MemberEntry& entry = sb.members[index];
        std::string role = index < sb.member_count ? std::to_string(index) : "spare";
        std::string marker = entry.uuid == sb.member_uuid ? "  (this member)" : "";
        std::cout << fmt::format("  {:<5}  {:<5}  {:<11}  {:>20}  {}{}\n", index, role,
                                 member_state_name(entry.state), entry.rebuilt_up_to_stripe,
                                 entry.uuid.to_string(), marker);
    }
}

void print_checkpoints(const Superblock& sb) {
    if (sb.rebuild_role == kRoleNone) {
        std::cout << "Rebuild              none\n";
    } else {
        std::cout << fmt::format("Rebuild              role {} at stripe {} of {}\n",
                                 sb.rebuild_role, sb.rebuild_position_stripes, sb.stripe_count());
    }
    if (sb.scrub_state == ScrubState::kIdle) {
        std::cout << "Scrub                idle\n";
    } else {
        std::cout << fmt::format("Scrub                {} at stripe {} of {}\n",
                                 scrub_state_name(sb.scrub_state), sb.scrub_position_stripes,
                                 sb.stripe_count());
    }
}

void print_text(const MemberFile& file, const SuperblockPair& pair, const RawHeader& header,
                const Status& size_status) {
    const Superblock& sb = pair.superblock;
    std::cout << fmt::format("Member {} ({} bytes, {})\n", file.path(), file.size(),
                             file.is_block_device() ? "block device" : "regular file");
    std::cout << fmt::format("Superblock copy {} used (sequence {}); {}\n",
                             superblock_copy_name(pair.used), sb.sequence,
                             describe_other_copy(pair));
    if (!size_status.ok()) std::cout << "WARNING: " << size_status.message() << "\n";
    std::cout << fmt::format("Magic                {}\n", header.magic);
    std::cout << fmt::format("Format version       {}.{}\n", sb.format_major, sb.format_minor);
    std::cout << fmt::format("Covered length       {} bytes\n", header.covered_bytes);
    std::cout << fmt::format("Checksum             {:#018x} (XXH3-64)\n", header.checksum);
    std::cout << fmt::format("Sequence             {}\n", sb.sequence);
    std::cout << fmt::format("Event counter        {}\n", sb.event_counter);
    std::cout << fmt::format("Array UUID           {}\n", sb.array_uuid.to_string());
    std::cout << fmt::format("Array name           {}\n",
                             sb.array_name.empty() ? "(none)" : sb.array_name);
    std::cout << fmt::format("Created              {} ({})\n", format_time(sb.created_unix_seconds),
                             sb.created_unix_seconds);
    std::cout << fmt::format("Level                {} (k={}, m={} per group)\n",
                             level_name(sb.level), sb.data_count, sb.parity_count);
    std::cout << fmt::format("Members              {}\n", sb.member_count);
    std::cout << fmt::format("Role                 {}\n", format_role(sb.role));
    std::cout << fmt::format("Member UUID          {}\n", sb.member_uuid.to_string());
    std::cout << fmt::format("Chunk                {} bytes ({})\n", sb.chunk_bytes,
                             format_size(sb.chunk_bytes));
    std::cout << fmt::format("Capacity             {} bytes ({})\n", sb.capacity_bytes,
                             format_size(sb.capacity_bytes));
    std::cout << fmt::format("Member data used     {} bytes ({} stripes)\n",
                             sb.member_data_bytes_used, sb.stripe_count());
    std::cout << fmt::format("Shutdown             {}\n", shutdown_state_name(sb.shutdown_state));
    print_checkpoints(sb);
    print_layout(sb.layout);
    print_member_table(sb);
}

void run_inspect(const InspectArguments& arguments) {
    MemberOpenOptions options;
    options.read_only = true;
    Result<MemberFile> file = MemberFile::open(arguments.member, options);
    if (!file.ok()) fail(file.status().message());

    Result<SuperblockPair> pair = read_superblock_pair(file.value());
    if (!pair.ok()) fail(pair.status().message());
    if (!pair->other_status.ok()) {
        spdlog::warn("{}: inspect: {}; the next superblock write on this member rewrites it",
                     arguments.member, describe_other_copy(pair.value()));
    }
    Result<RawHeader> header = read_raw_header(file.value(), pair->used);
    if (!header.ok()) fail(header.status().message());
    Status size_status = validate_member_size(pair->superblock, file->size());

    if (arguments.json) {
        print_json(file.value(), pair.value(), header.value(), size_status);
    } else {
        print_text(file.value(), pair.value(), header.value(), size_status);
    }
}

}  // namespace

void add_inspect_command(CLI::App& app) {
    auto arguments = std::make_shared<InspectArguments>();
    CLI::App* command = app.add_subcommand(
        "inspect", "Print the superblock of one member (read-only; the array must not be served "
                   "from it at the same time for the output to be current).");
    command->add_option("member", arguments->member, "member path (file or block device)")
        ->required();
    command->add_flag("--json", arguments->json, "print one JSON object instead of text");
    command->callback([arguments] { run_inspect(*arguments); });
}

}  // namespace ecraid
