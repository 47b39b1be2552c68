// SPDX-License-Identifier: Apache-2.0
// Admin: what the control socket asks of a served array, and the status it reports.
//
// The serve command implements Admin over the running array; the control server turns
// JSON-lines requests into these calls. Every call is thread-safe and returns quickly: long
// work (rebuild, scrub) runs in the background and shows up in status().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ecraid {

struct MemberErrorsView {
    uint64_t read = 0;
    uint64_t write = 0;
    uint64_t checksum = 0;
    uint64_t repaired = 0;  // Blocks rewritten from redundancy.
};

struct MemberStatusView {
    std::string path;
    // "0".."n-1" for members of the layout, "spare" for spares.
    std::string role;
    // One of: active, faulty, rebuilding, spare, missing.
    std::string state;
    MemberErrorsView errors;
};

struct RebuildStatusView {
    std::string member;          // Path of the member being written.
    uint32_t role = 0;
    bool replacing_healthy = false;  // Copy of a member that stays in service meanwhile.
    double progress = 0;         // 0 to 1.
    uint64_t rate_bytes_per_second = 0;
    uint64_t eta_seconds = 0;
    uint64_t done_bytes = 0;
    uint64_t total_bytes = 0;
};

struct ScrubStatusView {
    std::string state = "idle";  // idle, running, paused.
    double progress = 0;         // 0 to 1 of the current or last pass.
    uint64_t checked_bytes = 0;
    uint64_t repaired = 0;       // Blocks repaired by scrub since the server started.
    uint64_t unrecoverable = 0;  // Blocks scrub found and could not repair.
    uint64_t rate_bytes_per_second = 0;
    uint64_t eta_seconds = 0;
    std::string last_completed;  // UTC time of the last completed pass, or empty.
};

struct ArrayStatusView {
    std::string name;
    std::string uuid;
    std::string level;        // raid0, raid1, raid10, raid5, raid6, rs.
    std::string geometry;     // "rs 4+2, 6 members, 64 KiB chunks, 1.0 GiB".
    // One of: optimal, degraded, rebuilding, failed.
    std::string state;
    uint64_t size = 0;        // Bytes of the virtual disk.
    uint64_t chunk_bytes = 0;
    uint32_t data_count = 0;
    uint32_t parity_count = 0;
    uint32_t failures_tolerated = 0;
    uint64_t event_counter = 0;
    std::string listen;       // The NBD URI clients connect to.
    std::vector<MemberStatusView> members;  // Layout roles in order, then spares.
    std::optional<RebuildStatusView> rebuild;
    ScrubStatusView scrub;
};

class Admin {
public:
    virtual ~Admin() = default;

    virtual ArrayStatusView status() = 0;
    // `member` is a member's path as given to serve, or its role number.
    virtual Status fail(const std::string& member) = 0;
    // Rebuilds onto `new_path`: at once for a faulty or missing member, or by copying a
    // healthy member that stays in service until the copy is complete.
    virtual Status replace(const std::string& member, const std::string& new_path) = 0;
    virtual Status add_spare(const std::string& path) = 0;
    // Removes a spare, or a faulty or missing member from the array's view.
    virtual Status remove(const std::string& member) = 0;
    // Scrub control. A rate of 0 keeps the current rate (unlimited by default).
    virtual Status scrub_start(uint64_t rate_bytes_per_second) = 0;
    virtual Status scrub_pause() = 0;
    virtual Status scrub_resume() = 0;
};

}  // namespace ecraid
