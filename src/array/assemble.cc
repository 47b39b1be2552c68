// SPDX-License-Identifier: Apache-2.0
#include "array/assemble.h"

#include <sys/stat.h>

#include <map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "meta/superblock_io.h"

namespace ecraid {

uint32_t Assembly::missing_count() const {
    uint32_t count = 0;
    for (const auto& role : roles) count += role.file.has_value() ? 0 : 1;
    return count;
}

namespace {

struct Candidate {
    std::string path;
    MemberFile file;
    Superblock superblock;
};

}  // namespace

Result<Assembly> assemble(const std::vector<std::string>& paths, const AssembleOptions& options) {
    std::vector<Candidate> candidates;
    std::vector<std::string> ignored;
    for (const std::string& path : paths) {
        struct stat info {};
        if (stat(path.c_str(), &info) != 0) {
            ignored.push_back(fmt::format("{}: does not exist", path));
            continue;
        }
        MemberOpenOptions open_options;
        open_options.read_only = options.read_only;
        open_options.try_direct = options.try_direct;
        auto file = MemberFile::open(path, open_options);
        if (!file.ok()) {
            ignored.push_back(fmt::format("{}: {}", path, file.status().to_string()));
            continue;
        }
        auto pair = read_superblock_pair(*file);
        if (!pair.ok()) {
            ignored.push_back(fmt::format("{}: {}", path, pair.status().to_string()));
            continue;
        }
        if (!pair->other_status.ok()) {
            spdlog::warn("assemble: {}: superblock copy {} is damaged ({}); using copy {}", path,
                         superblock_copy_name(other_superblock_copy(pair->used)),
                         pair->other_status.to_string(), superblock_copy_name(pair->used));
        }
        Status size_status = validate_member_size(pair->superblock, file->size());
        if (!size_status.ok()) {
            ignored.push_back(fmt::format("{}: {}", path, size_status.to_string()));
            continue;
        }
        candidates.push_back(Candidate{path, std::move(file).value(), pair->superblock});
    }
    if (candidates.empty()) {
        std::string reasons;
        for (const auto& reason : ignored) reasons += "\n  " + reason;
        return Status::error(Code::kNotFound,
                             "no valid ecraid member among the given paths:" + reasons);
    }

    // All candidates must belong to one array.
    std::map<std::string, std::vector<std::string>> arrays;
    for (const auto& candidate : candidates) {
        arrays[candidate.superblock.array_uuid.to_string()].push_back(candidate.path);
    }
    if (arrays.size() > 1) {
        std::string listing;
        for (const auto& [uuid, members] : arrays) {
            listing += fmt::format("\n  array {}: {}", uuid, fmt::join(members, ", "));
        }
        return Status::error(Code::kInvalidArgument,
                             "the members belong to more than one array; give the members of "
                             "one array only:" + listing);
    }

    // The reference is the superblock with the highest event counter.
    const Candidate* reference = &candidates.front();
    for (const auto& candidate : candidates) {
        if (candidate.superblock.event_counter > reference->superblock.event_counter) {
            reference = &candidate;
        }
    }
    Assembly assembly;
    assembly.reference = reference->superblock;
    assembly.ignored = std::move(ignored);
    const Superblock& ref = assembly.reference;
    assembly.was_unclean = ref.shutdown_state != ShutdownState::kClean;

    GeometryConfig config;
    config.level = ref.level;
    config.member_count = ref.member_count;
    config.data_count = ref.data_count;
    config.parity_count = ref.parity_count;
    config.chunk_bytes = ref.chunk_bytes;
    config.member_data_bytes = ref.member_data_bytes_used;
    auto geometry = Geometry::create(config);
    if (!geometry.ok()) return geometry.status().with_context("superblock geometry");
    assembly.geometry = geometry.value();
    assembly.roles.resize(ref.member_count);
    for (uint32_t role = 0; role < ref.member_count; ++role) {
        assembly.roles[role].missing_reason = "no member given for this role";
    }

    for (auto& candidate : candidates) {
        const Superblock& own = candidate.superblock;
        if (own.role >= ref.member_count) {
            spdlog::info("assemble: {}: a spare of the array; not used yet", candidate.path);
            continue;
        }
        AssembledRole& slot = assembly.roles[own.role];
        const MemberEntry& entry = ref.members[own.role];
        std::string reason;
        if (own.member_uuid != entry.uuid) {
            reason = fmt::format("{}: member {} was replaced by member {}", candidate.path,
                                 own.member_uuid.to_string(), entry.uuid.to_string());
        } else if (own.event_counter < ref.event_counter) {
            reason = fmt::format("{}: stale (event counter {} behind the array's {}); it needs "
                                 "a rebuild",
                                 candidate.path, own.event_counter, ref.event_counter);
        } else if (entry.state != MemberState::kActive) {
            reason = fmt::format("{}: recorded as {} by the array", candidate.path,
                                 member_state_name(entry.state));
        } else if (slot.file.has_value()) {
            reason = fmt::format("{}: role {} is already held by {}", candidate.path, own.role,
                                 slot.path);
        }
        if (!reason.empty()) {
            spdlog::warn("assemble: {}", reason);
            if (!slot.file.has_value()) {
                slot.missing_reason = reason;
                slot.path = candidate.path;
            }
            continue;
        }
        slot.path = candidate.path;
        slot.superblock = own;
        slot.missing_reason.clear();
        slot.file.emplace(std::move(candidate.file));
    }
    return assembly;
}

Result<std::unique_ptr<Array>> open_array(Assembly& assembly, ArrayOptions options) {
    std::vector<ArrayMemberSpec> specs(assembly.roles.size());
    for (uint32_t role = 0; role < assembly.roles.size(); ++role) {
        AssembledRole& slot = assembly.roles[role];
        ArrayMemberSpec& spec = specs[role];
        spec.path = slot.path;
        if (!slot.file.has_value()) continue;
        spec.fd = slot.file->fd();
        spec.direct = slot.file->is_direct();
        spec.data_offset = slot.superblock.layout.data_offset;
        spec.table_offset = slot.superblock.layout.checksum_table_offset;
        spec.state = MemberState::kActive;
    }
    if (options.name.empty()) options.name = assembly.reference.array_name;
    if (options.name.empty()) options.name = assembly.reference.array_uuid.to_string().substr(0, 8);
    return Array::open(assembly.geometry, std::move(specs), std::move(options));
}

std::string_view array_state_name(const Array& array) {
    if (array.lost_data()) return "failed";
    if (array.unusable_count() > 0) return "degraded";
    return "optimal";
}

Status MetadataWriter::write_all_locked() {
    Status first_error;
    for (uint32_t role = 0; role < assembly_->roles.size(); ++role) {
        AssembledRole& slot = assembly_->roles[role];
        if (!slot.file.has_value()) continue;
        if (assembly_->reference.members[role].state != MemberState::kActive) continue;
        Superblock copy = assembly_->reference;
        copy.member_uuid = slot.superblock.member_uuid;
        copy.role = role;
        copy.layout = slot.superblock.layout;
        copy.sequence = slot.superblock.sequence;
        Status status = write_superblock(*slot.file, &copy);
        if (!status.ok()) {
            spdlog::error("metadata: member {} ({}): superblock write failed: {}", role,
                          slot.path, status.to_string());
            if (first_error.ok()) first_error = status;
            continue;
        }
        slot.superblock = copy;
    }
    return first_error;
}

void MetadataWriter::set_member_state(uint32_t role, MemberState state) {
    std::lock_guard lock(mutex_);
    MemberEntry& entry = assembly_->reference.members[role];
    if (entry.state == state) return;
    entry.state = state;
    ++assembly_->reference.event_counter;
    spdlog::info("metadata: member {} is now {}; event counter {}", role,
                 member_state_name(state), assembly_->reference.event_counter);
    (void)write_all_locked();
}

Status MetadataWriter::set_shutdown_state(ShutdownState state) {
    std::lock_guard lock(mutex_);
    assembly_->reference.shutdown_state = state;
    return write_all_locked();
}

Status MetadataWriter::record_missing_roles() {
    std::lock_guard lock(mutex_);
    bool changed = false;
    for (uint32_t role = 0; role < assembly_->roles.size(); ++role) {
        MemberEntry& entry = assembly_->reference.members[role];
        if (assembly_->roles[role].file.has_value() || entry.state != MemberState::kActive) {
            continue;
        }
        entry.state = MemberState::kMissing;
        changed = true;
        spdlog::warn("metadata: member {} is missing: {}", role,
                     assembly_->roles[role].missing_reason);
    }
    if (!changed) return Status();
    ++assembly_->reference.event_counter;
    return write_all_locked();
}

}  // namespace ecraid
