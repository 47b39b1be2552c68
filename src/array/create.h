// SPDX-License-Identifier: Apache-2.0
// Formatting members into a new array (`ecraid create`).
//
// Create validates everything before it writes anything: the geometry (capacity follows from
// the smallest member), each member's size, that no member already belongs to an ecraid array
// (unless forced) and that no member is given twice under different paths. It then zeroes
// every member from byte 0 to the end of its data area, punching holes in files. After that
// the bitmap is clean, every checksum table entry means "all-zero block", and every stripe's
// parity matches its data. The superblocks are written last, on every member, so a member is
// only recognized once it is fully formatted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "layout/geometry.h"
#include "meta/member_layout.h"
#include "meta/uuid.h"

namespace ecraid {

struct CreateOptions {
    Level level = Level::kRaid5;
    uint32_t data_count = 0;    // rs only: k.
    uint32_t parity_count = 0;  // rs only: m.
    uint64_t chunk_bytes = kChunkBytesDefault;
    uint64_t region_bytes = kRegionBytesDefault;
    // Size of the member files to create when a path does not exist; 0 means a missing path
    // is an error. Existing members keep their size.
    uint64_t create_size_bytes = 0;
    std::string name;
    // Overwrite members that already hold an ecraid superblock.
    bool force = false;
    // Try O_DIRECT when opening members (tests turn it off on filesystems without it).
    bool try_direct = true;
    std::vector<std::string> member_paths;  // In role order.
};

struct CreatedMember {
    std::string path;
    uint32_t role = 0;
    Uuid uuid;
    MemberLayout layout;
    bool created = false;  // The file did not exist and was created sparse.
    bool direct = false;   // Opened with O_DIRECT.
    bool overwritten = false;  // Held a superblock of another array (with force).
};

struct CreateSummary {
    Uuid array_uuid;
    std::string name;
    Level level = Level::kRaid5;
    uint32_t member_count = 0;
    uint32_t data_count = 0;
    uint32_t parity_count = 0;
    uint64_t chunk_bytes = 0;
    uint64_t region_bytes = 0;
    uint64_t capacity_bytes = 0;
    uint64_t member_data_bytes_used = 0;
    uint64_t created_unix_seconds = 0;
    std::string geometry_description;  // Geometry::describe().
    std::vector<CreatedMember> members;
};

// Formats `options.member_paths` into a new array. Errors name the member path, the value at
// fault and the fix. The codes are:
//   kExists           a member of an existing array, without force
//   kInvalidArgument  a duplicate member, an invalid geometry or a member that is too small
//   kNotFound         a missing member when no create size is given
//   kIoError          a failed system call
// Member files created by this call are removed when it fails. A failure before the zeroing
// step leaves existing members unchanged, and a later one leaves them without a superblock.
Result<CreateSummary> create_array(const CreateOptions& options);

}  // namespace ecraid
