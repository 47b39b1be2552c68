// SPDX-License-Identifier: Apache-2.0
// Assembly: find an array's members among the given paths and decide which to trust.
//
// Paths may come in any order. Each is opened and its superblock pair read; paths that do
// not exist or hold no valid superblock are noted. The members of one array (by array UUID)
// are ordered by role, and the superblock with the highest event counter is the reference.
// A member is trusted only when its own event counter equals the reference's, its member UUID
// is the one the reference records for its role, and the reference records it as active: a
// member that failed or was absent while the array changed is stale and never read.
//
// MetadataWriter then keeps the superblocks of the trusted members up to date: every member
// state change bumps the event counter on all of them.
#pragma once

#include <cstdint>
#include <memory>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "array/array.h"
#include "common/status.h"
#include "io/member_file.h"
#include "layout/geometry.h"
#include "meta/superblock.h"

namespace ecraid {

// A device with its own superblock: a member, a rebuild target or a spare.
struct AssembledDevice {
    std::optional<MemberFile> file;
    std::string path;
    Superblock superblock;  // The device's own superblock.
};

struct AssembledRole {
    std::optional<MemberFile> file;  // Empty when the role is missing or stale.
    std::string path;                // The path that claimed the role, if any.
    std::string missing_reason;      // Why the role is not usable, for messages.
    Superblock superblock;           // The member's own superblock, when present.
    // A rebuild target for this role found at assembly (the rebuild resumes).
    AssembledDevice incoming;
    uint64_t incoming_rebuilt_up_to = 0;
};

struct Assembly {
    Superblock reference;
    Geometry geometry;
    std::vector<AssembledRole> roles;  // By role.
    std::vector<AssembledDevice> spares;
    std::vector<std::string> ignored;  // Paths that are not part of this array, with reasons.
    bool was_unclean = false;          // The reference says the array was not stopped cleanly.

    uint32_t missing_count() const;
};

struct AssembleOptions {
    bool read_only = false;
    bool try_direct = true;
};

// Errors: kNotFound when no path holds a valid member; kInvalidArgument when the paths hold
// members of more than one array (the message lists them).
Result<Assembly> assemble(const std::vector<std::string>& paths, const AssembleOptions& options);

// Opens the array over the assembly's trusted members. The assembly must outlive the array,
// which uses its members' descriptors.
Result<std::unique_ptr<Array>> open_array(Assembly& assembly, ArrayOptions options);

// The union of the write-intent bitmaps of every trusted member (after an unclean stop).
std::vector<uint8_t> read_write_intent_bits(const Assembly& assembly);

// The array-level state for status output and logs.
std::string_view array_state_name(const Array& array);

// Writes member state changes and the clean/dirty flag to every trusted member's superblock.
// Thread-safe; writes are synchronous (pwrite + fdatasync) and rare.
class MetadataWriter {
public:
    explicit MetadataWriter(Assembly* assembly) : assembly_(assembly) {}

    // Records `state` for `role`, bumps the event counter and writes every trusted member.
    void set_member_state(uint32_t role, MemberState state);
    // Marks the array dirty (serving) or clean (stopped after a flush) on every member.
    Status set_shutdown_state(ShutdownState state);
    // Records roles found missing or stale at assembly, bumping the event counter once.
    Status record_missing_roles();
    // Runs `change` on the reference superblock under the writer's lock, bumps the event
    // counter when `bump_event` is set, and writes every device.
    Status update(const std::function<void(Superblock&)>& change, bool bump_event);
    // The same, with the assembly itself (to move devices between roles and spares).
    Status update_assembly(const std::function<void(Assembly&)>& change, bool bump_event);
    // A copy of the reference superblock.
    Superblock reference();

private:
    Status write_all_locked();

    std::mutex mutex_;
    Assembly* assembly_;
};

}  // namespace ecraid
