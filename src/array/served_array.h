// SPDX-License-Identifier: Apache-2.0
// ServedArray: a running array with its administration: member failures, spares, online
// rebuild and replace, and the status the control socket reports.
//
// Rebuild writes one role's data onto an incoming device, stripe by stripe, each stripe
// under its exclusive stripe lock: the target position is read from the role's active device
// (replacing a healthy member, which stays in service) or rebuilt from the rest of its group
// (a failed or missing member). Client writes reach the incoming device all along, so once
// the checkpoint passes a stripe the device holds current data for it. The checkpoint is
// persisted in every superblock about once a second and a restarted server resumes from it.
// When the last stripe is done the incoming device takes the role.
//
// Rows that cannot be rebuilt (more erasures than the level tolerates) are stored with a
// checksum that never verifies, so the new member returns EIO there instead of wrong data.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "array/admin.h"
#include "array/array.h"
#include "array/assemble.h"
#include "io/worker_pool.h"

namespace ecraid {

struct ServedArrayOptions {
    // Bytes per second written to a rebuild target; 0 means no limit.
    uint64_t rebuild_rate_bytes_per_second = 0;
    // Pause the rebuild briefly whenever clients issued requests since its last step.
    bool rebuild_yields_to_clients = true;
    bool try_direct = true;
    std::string listen_uri;
    // Start a scrub this long after the last one finished (or after start); 0 = never.
    uint64_t scrub_interval_seconds = 0;
    // Default scrub rate in bytes per second of array data; 0 means no limit.
    uint64_t scrub_rate_bytes_per_second = 0;
};

class ServedArray : public Admin {
public:
    ServedArray(Assembly& assembly, MetadataWriter& metadata, Array& array, WorkerPool& workers,
                ServedArrayOptions options);
    ~ServedArray() override;

    // Resumes a rebuild found at assembly, or starts one onto a spare if a role is down.
    void start();
    // Stops background work, persisting the rebuild checkpoint. Call before stopping the pool.
    void stop();

    // Array::on_member_state_change lands here.
    void member_state_changed(uint32_t role, MemberState state, const std::string& reason);
    void incoming_failed(uint32_t role, const std::string& reason);

    ArrayStatusView status() override;
    Status fail(const std::string& member) override;
    Status replace(const std::string& member, const std::string& new_path) override;
    Status add_spare(const std::string& path) override;
    Status remove(const std::string& member) override;
    Status scrub_start(uint64_t rate_bytes_per_second) override;
    Status scrub_pause() override;
    Status scrub_resume() override;

    bool rebuild_running() const { return rebuild_running_.load(); }
    bool scrub_running() const { return scrub_loop_active_.load(); }

private:
    struct RebuildProgress;

    Result<uint32_t> resolve_role(const std::string& member) const;
    Result<AssembledDevice> prepare_device(const std::string& path);
    Status start_rebuild(uint32_t role, AssembledDevice device, bool healthy);
    Status start_rebuild_from_spare_locked();
    void launch_rebuild(uint32_t role, uint64_t from_stripe, bool healthy);
    Task<void> rebuild_loop(uint32_t role, uint64_t from_stripe, bool healthy);
    Task<bool> rebuild_stripe(uint32_t role, uint64_t stripe);
    void finish_rebuild(uint32_t role, bool healthy);
    void abandon_rebuild(uint32_t role, const std::string& reason);
    Task<void> persist_checkpoint(uint32_t role, uint64_t stripe);
    void run_admin(std::function<void()> job);
    void launch_scrub(uint64_t from_stripe);
    Task<void> scrub_loop(uint64_t from_stripe);
    void persist_scrub(ScrubState state, uint64_t stripe);
    void scrub_timer_main();
    void admin_thread_main();

    Assembly& assembly_;
    MetadataWriter& metadata_;
    Array& array_;
    WorkerPool& workers_;
    ServedArrayOptions options_;

    std::mutex mutex_;  // Serializes administrative changes.
    std::atomic<bool> stopping_{false};
    std::atomic<bool> rebuild_running_{false};
    std::atomic<bool> rebuild_abort_{false};
    std::atomic<bool> rebuild_loop_active_{false};  // The rebuild coroutine has not exited.
    std::vector<MemberFile> retired_;  // Devices that left the array; kept open. Guarded by mutex_.
    std::unique_ptr<RebuildProgress> progress_;

    std::mutex admin_mutex_;
    std::condition_variable admin_changed_;
    std::deque<std::function<void()>> admin_jobs_;
    bool admin_stop_ = false;
    std::thread admin_thread_;

    // Scrub state. scrub_state_ holds a ScrubState value.
    std::atomic<uint32_t> scrub_state_{0};
    std::atomic<bool> scrub_loop_active_{false};
    std::atomic<bool> scrub_pause_requested_{false};
    std::atomic<uint64_t> scrub_position_{0};
    std::atomic<uint64_t> scrub_rate_{0};
    std::atomic<uint64_t> scrub_started_ns_{0};
    std::atomic<uint64_t> scrub_start_stripe_{0};
    std::atomic<uint64_t> scrub_checked_bytes_{0};
    std::atomic<uint64_t> scrub_repaired_{0};
    std::atomic<uint64_t> scrub_unrecoverable_{0};
    std::string scrub_last_completed_;  // Guarded by mutex_.
    std::mutex timer_mutex_;
    std::condition_variable timer_changed_;
    std::thread scrub_timer_;
};

}  // namespace ecraid
