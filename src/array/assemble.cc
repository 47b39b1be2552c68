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
            ignored.push_back(file.status().to_string());
            continue;
        }
        auto pair = read_superblock_pair(*file);
        if (!pair.ok()) {
            ignored.push_back(pair.status().to_string());
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
        for (const Candidate& earlier : candidates) {
            if (earlier.file.same_storage(*file)) {
                return Status::error(Code::kInvalidArgument,
                                     fmt::format("{} and {} are the same member; give each "
                                                 "member once",
                                                 earlier.path, path));
            }
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
            // A spare, or a copy of a healthy member that was being made.
            const MemberEntry* entry = nullptr;
            for (size_t i = ref.member_count; i < ref.members.size(); ++i) {
                if (ref.members[i].uuid == own.member_uuid) entry = &ref.members[i];
            }
            if (entry == nullptr || own.event_counter < ref.event_counter) {
                spdlog::warn("assemble: {}: no longer part of the array; ignored", candidate.path);
                continue;
            }
            if (entry->state == MemberState::kRebuilding && ref.rebuild_role < ref.member_count) {
                AssembledRole& target = assembly.roles[ref.rebuild_role];
                target.incoming = AssembledDevice{std::move(candidate.file), candidate.path, own};
                target.incoming_rebuilt_up_to = entry->rebuilt_up_to_stripe;
                continue;
            }
            if (entry->state == MemberState::kSpare) {
                assembly.spares.push_back(
                    AssembledDevice{std::move(candidate.file), candidate.path, own});
            }
            continue;
        }
        AssembledRole& slot = assembly.roles[own.role];
        const MemberEntry& entry = ref.members[own.role];
        std::string reason;
        if (own.member_uuid == entry.uuid && entry.state == MemberState::kRebuilding &&
            own.event_counter == ref.event_counter) {
            // The new member of a role that is being rebuilt: resume the rebuild.
            slot.incoming = AssembledDevice{std::move(candidate.file), candidate.path, own};
            slot.incoming_rebuilt_up_to = entry.rebuilt_up_to_stripe;
            slot.missing_reason = "being rebuilt onto " + candidate.path;
            continue;
        }
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
        if (slot.incoming.file.has_value()) {
            spec.incoming_fd = slot.incoming.file->fd();
            spec.incoming_path = slot.incoming.path;
            spec.incoming_direct = slot.incoming.file->is_direct();
            spec.incoming_data_offset = slot.incoming.superblock.layout.data_offset;
            spec.incoming_table_offset = slot.incoming.superblock.layout.checksum_table_offset;
            spec.incoming_bitmap_offset = slot.incoming.superblock.layout.bitmap_offset;
            spec.incoming_rebuilt_up_to = slot.incoming_rebuilt_up_to;
        }
        if (!slot.file.has_value()) continue;
        spec.fd = slot.file->fd();
        spec.direct = slot.file->is_direct();
        spec.data_offset = slot.superblock.layout.data_offset;
        spec.table_offset = slot.superblock.layout.checksum_table_offset;
        spec.bitmap_offset = slot.superblock.layout.bitmap_offset;
        spec.state = MemberState::kActive;
    }
    options.region_bytes = assembly.reference.layout.region_bytes;
    // Every member's bitmap covers the array's stripes; the smallest one is enough.
    options.bitmap_bytes = UINT64_MAX;
    for (const AssembledRole& slot : assembly.roles) {
        if (slot.file.has_value()) {
            options.bitmap_bytes = std::min(options.bitmap_bytes, slot.superblock.layout.bitmap_bytes);
        }
    }
    if (options.bitmap_bytes == UINT64_MAX) options.bitmap_bytes = assembly.reference.layout.bitmap_bytes;
    if (options.name.empty()) options.name = assembly.reference.array_name;
    if (options.name.empty()) options.name = assembly.reference.array_uuid.to_string().substr(0, 8);
    return Array::open(assembly.geometry, std::move(specs), std::move(options));
}

std::vector<uint8_t> read_write_intent_bits(const Assembly& assembly) {
    std::vector<uint8_t> bits;
    auto merge = [&](const AssembledDevice& device) {
        const MemberLayout& layout = device.superblock.layout;
        AlignedBuffer buffer(layout.bitmap_bytes);
        Status status = device.file->pread_full(buffer.data(), layout.bitmap_bytes,
                                                layout.bitmap_offset);
        if (!status.ok()) {
            spdlog::warn("assemble: {}: reading the write-intent bitmap failed: {}", device.path,
                         status.to_string());
            return;
        }
        if (bits.size() < layout.bitmap_bytes) bits.resize(layout.bitmap_bytes, 0);
        for (size_t i = 0; i < layout.bitmap_bytes; ++i) bits[i] |= buffer.data()[i];
    };
    for (const AssembledRole& slot : assembly.roles) {
        if (!slot.file.has_value()) continue;
        const MemberLayout& layout = slot.superblock.layout;
        AlignedBuffer buffer(layout.bitmap_bytes);
        Status status = slot.file->pread_full(buffer.data(), layout.bitmap_bytes,
                                              layout.bitmap_offset);
        if (!status.ok()) {
            spdlog::warn("assemble: {}: reading the write-intent bitmap failed: {}", slot.path,
                         status.to_string());
            continue;
        }
        if (bits.size() < layout.bitmap_bytes) bits.resize(layout.bitmap_bytes, 0);
        for (size_t i = 0; i < layout.bitmap_bytes; ++i) bits[i] |= buffer.data()[i];
    }
    for (const AssembledRole& slot : assembly.roles) {
        if (slot.incoming.file.has_value()) merge(slot.incoming);
    }
    return bits;
}

std::string_view array_state_name(const Array& array) {
    if (array.lost_data()) return "failed";
    if (array.unusable_count() > 0) return "degraded";
    return "optimal";
}

// Writes the reference, adapted to one device, to that device.
static Status write_device(const Superblock& reference, AssembledDevice& device, uint32_t role) {
    Superblock copy = reference;
    copy.member_uuid = device.superblock.member_uuid;
    copy.role = role;
    copy.layout = device.superblock.layout;
    copy.sequence = device.superblock.sequence;
    Status status = write_superblock(*device.file, &copy);
    if (status.ok()) device.superblock = copy;
    return status.with_context(device.path);
}

// NOTE: these writes are synchronous and have no I/O timeout, so a member that hangs before
// it is marked faulty blocks the calling thread here until the member completes the write.
Status MetadataWriter::write_all_locked() {
    Status first_error;
    const Superblock& reference = assembly_->reference;
    auto note = [&](const Status& status) {
        if (status.ok()) return;
        spdlog::error("metadata: superblock write failed: {}", status.to_string());
        if (first_error.ok()) first_error = status;
    };
    for (uint32_t role = 0; role < assembly_->roles.size(); ++role) {
        AssembledRole& slot = assembly_->roles[role];
        MemberState state = reference.members[role].state;
        if (slot.file.has_value() &&
            (state == MemberState::kActive ||
             (state == MemberState::kRebuilding &&
              reference.members[role].uuid == slot.superblock.member_uuid))) {
            AssembledDevice device{std::move(slot.file), slot.path, slot.superblock};
            note(write_device(reference, device, role));
            slot.file = std::move(device.file);
            slot.superblock = device.superblock;
        }
        if (slot.incoming.file.has_value()) {
            bool has_role = reference.members[role].uuid == slot.incoming.superblock.member_uuid;
            note(write_device(reference, slot.incoming, has_role ? role : kRoleSpare));
        }
    }
    for (AssembledDevice& spare : assembly_->spares) {
        if (spare.file.has_value()) note(write_device(reference, spare, kRoleSpare));
    }
    return first_error;
}

Status MetadataWriter::update(const std::function<void(Superblock&)>& change, bool bump_event) {
    std::lock_guard lock(mutex_);
    change(assembly_->reference);
    if (bump_event) ++assembly_->reference.event_counter;
    return write_all_locked();
}

Status MetadataWriter::update_assembly(const std::function<void(Assembly&)>& change,
                                       bool bump_event) {
    std::lock_guard lock(mutex_);
    change(*assembly_);
    if (bump_event) ++assembly_->reference.event_counter;
    return write_all_locked();
}

Superblock MetadataWriter::reference() {
    std::lock_guard lock(mutex_);
    return assembly_->reference;
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
