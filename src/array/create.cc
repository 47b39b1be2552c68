// SPDX-License-Identifier: Apache-2.0
#include "array/create.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/units.h"
#include "io/member_file.h"
#include "meta/superblock.h"
#include "meta/superblock_io.h"

namespace ecraid {
namespace {

// Removes the member files that this call created unless the call succeeds.
class CreatedFilesGuard {
public:
    CreatedFilesGuard() = default;
    CreatedFilesGuard(const CreatedFilesGuard&) = delete;
    CreatedFilesGuard& operator=(const CreatedFilesGuard&) = delete;
    ~CreatedFilesGuard() {
        if (committed_) return;
        for (const std::string& path : paths_) {
            if (::unlink(path.c_str()) != 0) {
                spdlog::warn("{}: create: removing the member file created by this failed "
                             "create failed: errno={}", path, errno);
            }
        }
    }

    void add(const std::string& path) { paths_.push_back(path); }
    void commit() { committed_ = true; }

private:
    std::vector<std::string> paths_;
    bool committed_ = false;
};

struct OpenMember {
    MemberFile file;
    MemberLayout layout;
    bool overwritten = false;
};

// Checks what can be checked before touching any member: the array name, the geometry shape
// (level, member count, k, m, chunk size), the region size and the create size.
Status validate_options(const CreateOptions& options) {
    if (options.member_paths.empty()) {
        return Status::error(Code::kInvalidArgument, "no members given");
    }
    ECRAID_RETURN_IF_ERROR(validate_array_name(options.name));

    GeometryConfig config;
    config.level = options.level;
    config.member_count = static_cast<uint32_t>(options.member_paths.size());
    config.data_count = options.data_count;
    config.parity_count = options.parity_count;
    config.chunk_bytes = options.chunk_bytes;
    config.member_data_bytes = options.chunk_bytes;  // Any size of at least one chunk.
    Result<Geometry> shape = Geometry::create(config);
    if (!shape.ok()) return shape.status();

    ECRAID_RETURN_IF_ERROR(validate_region_bytes(options.region_bytes, options.chunk_bytes));
    if (options.create_size_bytes != 0) {
        Result<MemberLayout> layout = compute_member_layout(
            options.create_size_bytes, options.chunk_bytes, options.region_bytes);
        if (!layout.ok()) return layout.status().with_context("--size");
    }
    return Status::ok_status();
}

// Rejects a member that already holds an ecraid superblock, valid or damaged, unless forced.
// Sets *overwritten when force lets it through.
Status check_not_in_use(const MemberFile& file, bool force, bool* overwritten) {
    *overwritten = false;
    if (file.was_created()) return Status::ok_status();

    Result<SuperblockPair> pair = read_superblock_pair(file);
    if (pair.ok()) {
        const Superblock& superblock = pair->superblock;
        std::string role = superblock.role == kRoleSpare ? std::string("a spare")
                                                         : fmt::format("member {}", superblock.role);
        if (!force) {
            return Status::error(Code::kExists,
                                 fmt::format("{}: already {} of array '{}' (UUID {}); pass "
                                             "--force to overwrite it",
                                             file.path(), role, superblock.array_name,
                                             superblock.array_uuid.to_string()));
        }
        spdlog::warn("{}: create: overwriting {} of array '{}' (UUID {}) because of --force",
                     file.path(), role, superblock.array_name, superblock.array_uuid.to_string());
        *overwritten = true;
        return Status::ok_status();
    }

    const Status& status = pair.status();
    if (status.code() == Code::kIoError) return status;
    if (status.message().find("not an ecraid member") != std::string::npos) {
        return Status::ok_status();
    }
    // A newer format version or damaged superblocks: still a member of some array.
    if (!force) {
        return Status::error(Code::kExists,
                             fmt::format("{}; pass --force to overwrite it", status.message()));
    }
    spdlog::warn("{}; overwriting it because of --force", status.message());
    *overwritten = true;
    return Status::ok_status();
}

Result<OpenMember> open_member(const std::string& path, const CreateOptions& options,
                               CreatedFilesGuard* created_files) {
    MemberOpenOptions open_options;
    open_options.try_direct = options.try_direct;
    open_options.create_size_bytes = options.create_size_bytes;
    Result<MemberFile> file = MemberFile::open(path, open_options);
    if (!file.ok()) {
        if (file.status().code() == Code::kNotFound) {
            return Status::error(Code::kNotFound,
                                 fmt::format("member {} does not exist; pass --size to create it "
                                             "as a sparse file",
                                             path));
        }
        return file.status();
    }
    if (file->was_created()) {
        created_files->add(path);
        spdlog::info("{}: create: created a sparse member file of {}", path,
                     format_size(file->size()));
    }

    OpenMember member;
    Result<MemberLayout> layout =
        compute_member_layout(file->size(), options.chunk_bytes, options.region_bytes);
    if (!layout.ok()) return layout.status().with_context(path);
    member.layout = layout.value();
    member.file = std::move(file.value());
    return member;
}

Status check_duplicates(const std::vector<OpenMember>& members) {
    for (size_t later = 1; later < members.size(); ++later) {
        for (size_t earlier = 0; earlier < later; ++earlier) {
            if (members[later].file.same_storage(members[earlier].file)) {
                return Status::error(Code::kInvalidArgument,
                                     fmt::format("{} and {} are the same member (same device and "
                                                 "inode); give each member once",
                                                 members[earlier].file.path(),
                                                 members[later].file.path()));
            }
        }
    }
    return Status::ok_status();
}

Superblock build_superblock(const CreateOptions& options, const Geometry& geometry,
                            const CreateSummary& summary, const std::vector<Uuid>& member_uuids) {
    Superblock superblock;
    superblock.array_uuid = summary.array_uuid;
    superblock.array_name = options.name;
    superblock.created_unix_seconds = summary.created_unix_seconds;
    superblock.level = geometry.level();
    superblock.shutdown_state = ShutdownState::kClean;
    superblock.member_count = geometry.member_count();
    superblock.data_count = geometry.data_per_group();
    superblock.parity_count = geometry.parity_per_group();
    superblock.chunk_bytes = geometry.chunk_bytes();
    superblock.capacity_bytes = geometry.capacity_bytes();
    superblock.member_data_bytes_used = geometry.stripe_count() * geometry.chunk_bytes();
    for (const Uuid& uuid : member_uuids) {
        superblock.members.push_back(
            MemberEntry{uuid, MemberState::kActive, geometry.stripe_count()});
    }
    return superblock;
}

// Zeroes everything from byte 0 to the end of the data area: old superblocks, bitmap,
// checksum table and data. Files created by this call are already all zeros.
Status zero_member(OpenMember& member) {
    if (member.file.was_created()) return Status::ok_status();
    uint64_t data_end = member.layout.data_offset + member.layout.data_bytes;
    spdlog::info("{}: create: zeroing {} of metadata and data", member.file.path(),
                 format_size(data_end));
    ECRAID_RETURN_IF_ERROR(member.file.zero_range(0, data_end));
    return member.file.sync();
}

}  // namespace

Result<CreateSummary> create_array(const CreateOptions& options) {
    ECRAID_RETURN_IF_ERROR(validate_options(options));

    CreatedFilesGuard created_files;
    std::vector<OpenMember> members;
    for (const std::string& path : options.member_paths) {
        Result<OpenMember> member = open_member(path, options, &created_files);
        if (!member.ok()) return member.status();
        members.push_back(std::move(member.value()));
    }
    ECRAID_RETURN_IF_ERROR(check_duplicates(members));
    for (OpenMember& member : members) {
        ECRAID_RETURN_IF_ERROR(check_not_in_use(member.file, options.force, &member.overwritten));
    }

    // The smallest data area sets the stripe count; larger members leave their tail unused.
    GeometryConfig config;
    config.level = options.level;
    config.member_count = static_cast<uint32_t>(members.size());
    config.data_count = options.data_count;
    config.parity_count = options.parity_count;
    config.chunk_bytes = options.chunk_bytes;
    config.member_data_bytes = UINT64_MAX;
    for (const OpenMember& member : members) {
        config.member_data_bytes = std::min(config.member_data_bytes, member.layout.data_bytes);
    }
    Result<Geometry> geometry = Geometry::create(config);
    if (!geometry.ok()) return geometry.status();

    CreateSummary summary;
    Result<Uuid> array_uuid = Uuid::generate();
    if (!array_uuid.ok()) return array_uuid.status();
    summary.array_uuid = array_uuid.value();
    summary.created_unix_seconds = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    std::vector<Uuid> member_uuids;
    for (size_t role = 0; role < members.size(); ++role) {
        Result<Uuid> uuid = Uuid::generate();
        if (!uuid.ok()) return uuid.status();
        member_uuids.push_back(uuid.value());
    }
    Superblock base = build_superblock(options, geometry.value(), summary, member_uuids);

    for (OpenMember& member : members) ECRAID_RETURN_IF_ERROR(zero_member(member));
    for (size_t role = 0; role < members.size(); ++role) {
        Superblock superblock = base;
        superblock.member_uuid = member_uuids[role];
        superblock.role = static_cast<uint32_t>(role);
        superblock.layout = members[role].layout;
        ECRAID_RETURN_IF_ERROR(write_superblock_pair(members[role].file, &superblock));
    }

    summary.name = options.name;
    summary.level = geometry->level();
    summary.member_count = geometry->member_count();
    summary.data_count = geometry->data_per_group();
    summary.parity_count = geometry->parity_per_group();
    summary.chunk_bytes = geometry->chunk_bytes();
    summary.region_bytes = options.region_bytes;
    summary.capacity_bytes = geometry->capacity_bytes();
    summary.member_data_bytes_used = base.member_data_bytes_used;
    summary.geometry_description = geometry->describe();
    for (size_t role = 0; role < members.size(); ++role) {
        OpenMember& member = members[role];
        CreatedMember created;
        created.path = member.file.path();
        created.role = static_cast<uint32_t>(role);
        created.uuid = member_uuids[role];
        created.layout = member.layout;
        created.created = member.file.was_created();
        created.direct = member.file.is_direct();
        created.overwritten = member.overwritten;
        ECRAID_RETURN_IF_ERROR(member.file.close());
        summary.members.push_back(std::move(created));
    }
    created_files.commit();
    spdlog::info("{}: create: formatted {} members: {}", summary.array_uuid.to_string(),
                 summary.member_count, summary.geometry_description);
    return summary;
}

}  // namespace ecraid
