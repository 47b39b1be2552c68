// SPDX-License-Identifier: Apache-2.0
#include "array/served_array.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "array/group_io.h"
#include "array/scrub.h"
#include "array/stripe_window.h"
#include "meta/superblock_io.h"

namespace ecraid {
namespace {

// A checksum table entry for blocks a rebuild could not reconstruct: it never verifies
// (a block whose XXH3 is exactly this value is misreported, with chance 2^-64).
constexpr uint64_t kUnrecoverableChecksum = 1;

// Member data a rebuild or scrub window reads at once, and the bounds on its stripe count.
// Narrow stripes take more stripes per window, so small chunks still keep members busy.
constexpr uint64_t kWindowBytes = 16u << 20;
constexpr uint64_t kWindowStripesMin = 8;
constexpr uint64_t kWindowStripesMax = 256;
// Windows a rebuild or scrub keeps in flight: the next one starts while the last stripes of
// the previous one finish.
constexpr size_t kWindowsInFlight = 2;
// How often the checkpoint is written.
constexpr auto kCheckpointInterval = std::chrono::seconds(1);
// Pause after a window during which clients issued requests.
constexpr uint64_t kYieldPauseNs = 2'000'000;

uint64_t now_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return uint64_t(now.tv_sec) * 1'000'000'000ull + uint64_t(now.tv_nsec);
}

std::string_view state_word(MemberState state) { return member_state_name(state); }

// Stripes in one rebuild or scrub window: about kWindowBytes of member data.
uint64_t window_stripes(const Geometry& geometry) {
    uint64_t stripe_bytes = geometry.chunk_bytes() * geometry.member_count();
    return std::clamp(kWindowBytes / stripe_bytes, kWindowStripesMin, kWindowStripesMax);
}

}  // namespace

struct ServedArray::RebuildProgress {
    std::atomic<uint32_t> role{0};
    std::atomic<bool> healthy{false};
    std::atomic<uint64_t> start_stripe{0};
    std::atomic<uint64_t> done_stripes{0};  // Checkpoint: stripes below it are rebuilt.
    std::atomic<uint64_t> started_ns{0};
    std::string target_path;  // Guarded by ServedArray::mutex_.
};

ServedArray::ServedArray(Assembly& assembly, MetadataWriter& metadata, Array& array,
                         WorkerPool& workers, ServedArrayOptions options)
    : assembly_(assembly),
      metadata_(metadata),
      array_(array),
      workers_(workers),
      options_(std::move(options)),
      progress_(std::make_unique<RebuildProgress>()) {
    admin_thread_ = std::thread([this] { admin_thread_main(); });
}

ServedArray::~ServedArray() {
    stop();
    {
        std::lock_guard lock(admin_mutex_);
        admin_stop_ = true;
    }
    admin_changed_.notify_all();
    if (admin_thread_.joinable()) admin_thread_.join();
}

void ServedArray::run_admin(std::function<void()> job) {
    {
        std::lock_guard lock(admin_mutex_);
        admin_jobs_.push_back(std::move(job));
    }
    admin_changed_.notify_all();
}

void ServedArray::admin_thread_main() {
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lock(admin_mutex_);
            admin_changed_.wait(lock, [&] { return admin_stop_ || !admin_jobs_.empty(); });
            if (admin_jobs_.empty()) return;
            job = std::move(admin_jobs_.front());
            admin_jobs_.pop_front();
        }
        job();
    }
}

void ServedArray::start() {
    std::lock_guard lock(mutex_);
    scrub_rate_.store(options_.scrub_rate_bytes_per_second);
    Superblock reference = metadata_.reference();
    if (reference.scrub_state == ScrubState::kRunning) {
        spdlog::info("{}: resuming the scrub at stripe {} of {}", array_.name(),
                     reference.scrub_position_stripes, array_.geometry().stripe_count());
        launch_scrub(reference.scrub_position_stripes);
    } else if (reference.scrub_state == ScrubState::kPaused) {
        scrub_state_.store(uint32_t(ScrubState::kPaused));
        scrub_position_.store(reference.scrub_position_stripes);
    }
    if (options_.scrub_interval_seconds > 0) {
        scrub_timer_ = std::thread([this] { scrub_timer_main(); });
    }
    for (uint32_t role = 0; role < assembly_.roles.size(); ++role) {
        AssembledRole& slot = assembly_.roles[role];
        if (!slot.incoming.file.has_value()) continue;
        bool healthy = array_.member(role).active();
        progress_->target_path = slot.incoming.path;
        spdlog::info("{}: resuming the rebuild of member {} onto {} at stripe {} of {}",
                     array_.name(), role, slot.incoming.path, slot.incoming_rebuilt_up_to,
                     array_.geometry().stripe_count());
        launch_rebuild(role, slot.incoming_rebuilt_up_to, healthy);
        return;
    }
    Status status = start_rebuild_from_spare_locked();
    if (!status.ok()) spdlog::error("{}: {}", array_.name(), status.to_string());
}

void ServedArray::stop() {
    if (stopping_.exchange(true)) return;
    rebuild_abort_.store(true);
    timer_changed_.notify_all();
    if (scrub_timer_.joinable()) scrub_timer_.join();
    while (rebuild_loop_active_.load() || scrub_loop_active_.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// ---- Member resolution and device preparation ----

Result<uint32_t> ServedArray::resolve_role(const std::string& member) const {
    uint32_t count = array_.geometry().member_count();
    bool numeric = !member.empty() && std::all_of(member.begin(), member.end(), ::isdigit);
    if (numeric) {
        unsigned long role = std::stoul(member);
        if (role >= count) {
            return Status::error(Code::kInvalidArgument,
                                 fmt::format("member {} does not exist: roles are 0 to {}", member,
                                             count - 1));
        }
        return uint32_t(role);
    }
    for (uint32_t role = 0; role < count; ++role) {
        const ArrayMember& slot = array_.member(role);
        MemberDevice* device = slot.device.load();
        MemberDevice* incoming = slot.incoming.load();
        if ((device != nullptr && device->path == member) ||
            (incoming != nullptr && incoming->path == member) ||
            assembly_.roles[role].path == member) {
            return role;
        }
    }
    return Status::error(Code::kNotFound,
                         fmt::format("{} is not a member of array {}; give a member path as "
                                     "shown by `ecraid status`, or a role number",
                                     member, array_.name()));
}

Result<AssembledDevice> ServedArray::prepare_device(const std::string& path) {
    MemberOpenOptions open_options;
    open_options.try_direct = options_.try_direct;
    auto file = MemberFile::open(path, open_options);
    if (!file.ok()) return file.status();
    for (uint32_t role = 0; role < assembly_.roles.size(); ++role) {
        const AssembledRole& slot = assembly_.roles[role];
        bool in_use = (slot.file.has_value() && slot.file->same_storage(*file)) ||
                      (slot.incoming.file.has_value() && slot.incoming.file->same_storage(*file));
        if (in_use) {
            return Status::error(Code::kExists,
                                 fmt::format("{} is already member {} of array {}", path, role,
                                             array_.name()));
        }
    }
    for (const AssembledDevice& spare : assembly_.spares) {
        if (spare.file.has_value() && spare.file->same_storage(*file)) {
            return Status::error(Code::kExists, fmt::format("{} is already a spare", path));
        }
    }
    Superblock reference = metadata_.reference();
    auto existing = read_superblock_pair(*file);
    if (existing.ok() && existing->superblock.array_uuid != reference.array_uuid) {
        return Status::error(Code::kExists,
                             fmt::format("{} belongs to another array ({} '{}'); erase its first "
                                         "8 KiB to reuse it",
                                         path, existing->superblock.array_uuid.to_string(),
                                         existing->superblock.array_name));
    }
    auto layout = compute_member_layout(file->size(), reference.chunk_bytes,
                                        reference.layout.region_bytes);
    if (!layout.ok()) return layout.status().with_context(path);
    if (layout->data_bytes < reference.member_data_bytes_used) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("{} is too small: its data area would hold {} bytes, the "
                                         "array needs {} per member; use a device of at least "
                                         "{} bytes",
                                         path, layout->data_bytes, reference.member_data_bytes_used,
                                         file->size() + (reference.member_data_bytes_used -
                                                         layout->data_bytes)));
    }
    // Zero the bitmap and checksum table so no stale entry survives from earlier use.
    Status zeroed = file->zero_range(layout->bitmap_offset,
                                     layout->data_offset - layout->bitmap_offset);
    if (!zeroed.ok()) return zeroed.with_context(path);
    auto uuid = Uuid::generate();
    if (!uuid.ok()) return uuid.status();
    AssembledDevice device;
    device.path = path;
    device.superblock = reference;
    device.superblock.member_uuid = uuid.value();
    device.superblock.layout = layout.value();
    device.superblock.sequence = 0;
    device.file.emplace(std::move(file).value());
    return device;
}

// ---- Rebuild ----

Status ServedArray::start_rebuild(uint32_t role, AssembledDevice device, bool healthy) {
    if (rebuild_running_.load()) {
        return Status::error(Code::kExists,
                             "a rebuild is already running; wait for it to finish (see "
                             "`ecraid status`)");
    }
    uint64_t stripe_count = array_.geometry().stripe_count();
    Uuid uuid = device.superblock.member_uuid;
    std::string path = device.path;
    Status status = metadata_.update_assembly(
        [&](Assembly& assembly) {
            Superblock& reference = assembly.reference;
            if (healthy) {
                reference.members.push_back(MemberEntry{uuid, MemberState::kRebuilding, 0});
            } else {
                reference.members[role] = MemberEntry{uuid, MemberState::kRebuilding, 0};
            }
            reference.rebuild_role = role;
            reference.rebuild_position_stripes = 0;
            AssembledRole& slot = assembly.roles[role];
            slot.incoming = std::move(device);
            slot.incoming_rebuilt_up_to = 0;
        },
        true);
    if (!status.ok()) return status;
    AssembledRole& slot = assembly_.roles[role];
    MemberDevice* incoming = array_.adopt_device(
        role, slot.incoming.path, slot.incoming.file->fd(), slot.incoming.file->is_direct(),
        slot.incoming.superblock.layout.data_offset,
        slot.incoming.superblock.layout.checksum_table_offset,
        slot.incoming.superblock.layout.bitmap_offset);
    // Publish the target before its checkpoint moves, so every later write reaches it.
    array_.member(role).rebuilt_up_to.store(0);
    array_.member(role).incoming.store(incoming);
    progress_->target_path = path;
    spdlog::info("{}: rebuilding member {} onto {} ({} stripes{})", array_.name(), role, path,
                 stripe_count, healthy ? ", copying the member while it stays in service" : "");
    launch_rebuild(role, 0, healthy);
    return Status();
}

Status ServedArray::start_rebuild_from_spare_locked() {
    if (rebuild_running_.load() || stopping_.load()) return Status();
    for (uint32_t role = 0; role < array_.geometry().member_count(); ++role) {
        if (array_.member(role).active()) continue;
        if (assembly_.spares.empty()) {
            spdlog::warn("{}: member {} is down and no spare is available; add one with "
                         "`ecraid add-spare` or use `ecraid replace`",
                         array_.name(), role);
            return Status();
        }
        AssembledDevice spare = std::move(assembly_.spares.front());
        assembly_.spares.erase(assembly_.spares.begin());
        Uuid spare_uuid = spare.superblock.member_uuid;
        Status removed = metadata_.update(
            [&](Superblock& reference) {
                auto& entries = reference.members;
                entries.erase(std::remove_if(entries.begin() + reference.member_count,
                                             entries.end(),
                                             [&](const MemberEntry& entry) {
                                                 return entry.uuid == spare_uuid;
                                             }),
                              entries.end());
            },
            false);
        if (!removed.ok()) return removed;
        spdlog::info("{}: using spare {} for member {}", array_.name(), spare.path, role);
        return start_rebuild(role, std::move(spare), false);
    }
    return Status();
}

void ServedArray::launch_rebuild(uint32_t role, uint64_t from_stripe, bool healthy) {
    rebuild_running_.store(true);
    rebuild_loop_active_.store(true);
    rebuild_abort_.store(false);
    progress_->role.store(role);
    progress_->healthy.store(healthy);
    progress_->start_stripe.store(from_stripe);
    progress_->done_stripes.store(from_stripe);
    progress_->started_ns.store(now_ns());
    // The last worker coordinates the rebuild, and its windows run on every worker.
    Ring& ring = workers_.ring(workers_.size() - 1);
    ring.post([this, role, from_stripe, healthy] { spawn(rebuild_loop(role, from_stripe, healthy)); });
}

Task<bool> ServedArray::rebuild_stripe(uint32_t role, uint64_t stripe) {
    const Geometry& geometry = array_.geometry();
    StripeLocks::Guard guard = co_await array_.stripe_locks().lock(stripe, stripe + 1, true);
    uint32_t group = 0;
    uint32_t position = 0;
    geometry.position_of(stripe, role, &group, &position);
    uint32_t rows = uint32_t(geometry.chunk_bytes() / kBlockBytes);
    GroupIo io(array_, stripe, group, 0, rows);
    co_await io.pin_tables();
    MemberDevice* incoming = array_.member(role).incoming.load();
    if (incoming == nullptr || incoming->failed.load()) {
        io.unpin_tables();
        co_return false;
    }
    // Never read the target position from the incoming device itself.
    if (io.readers[position] == incoming) io.readers[position] = nullptr;
    bool needed[kGroupWidthMax] = {};
    needed[position] = true;
    co_await io.load(&position, 1, 0, rows);
    uint32_t lost = co_await io.repair_rows(0, rows, needed);
    int failed = co_await io.store_incoming(position, 0, rows);
    if (lost > 0 && failed == 0) {
        for (uint32_t row = 0; row < rows; ++row) {
            if (io.state(position, row) != BlockState::kLost) continue;
            incoming->table->set(io.first_block + row, kUnrecoverableChecksum);
        }
        spdlog::error("{}: rebuild of member {}: stripe {}: {} block(s) cannot be reconstructed "
                      "and will read as errors",
                      array_.name(), role, stripe, lost);
    }
    co_await io.write_back_repairs();
    io.unpin_tables();
    co_return failed == 0;
}

Task<void> ServedArray::rebuild_loop(uint32_t role, uint64_t from_stripe, bool healthy) {
    uint64_t stripe_count = array_.geometry().stripe_count();
    uint64_t chunk_bytes = array_.geometry().chunk_bytes();
    uint64_t stripe = from_stripe;  // Every stripe below it is rebuilt.
    uint64_t next = from_stripe;    // The first stripe no window has taken yet.
    uint64_t started = now_ns();
    uint64_t written_bytes = 0;
    uint64_t client_requests = array_.client_request_count();
    auto last_checkpoint = std::chrono::steady_clock::now();
    bool ok = true;
    bool clients_active = false;
    using Window = StripeWindow<int>;
    std::deque<std::unique_ptr<Window>> in_flight;
    for (;;) {
        // While clients are active and the rebuild yields to them, one window at a time.
        size_t window_limit = clients_active ? 1 : kWindowsInFlight;
        while (ok && in_flight.size() < window_limit && next < stripe_count &&
               !rebuild_abort_.load() && !stopping_.load()) {
            uint64_t end = std::min(next + window_stripes(array_.geometry()), stripe_count);
            in_flight.push_back(std::make_unique<Window>(
                workers_, next, end, [this, role](uint64_t s) -> Task<int> {
                    co_return co_await rebuild_stripe(role, s) ? 1 : 0;
                }));
            in_flight.back()->start();
            next = end;
        }
        if (in_flight.empty()) break;
        std::unique_ptr<Window> window = std::move(in_flight.front());
        in_flight.pop_front();
        co_await window->finished();
        // After a failure the windows still in flight are drained but not counted.
        if (!ok) continue;
        const std::vector<int>& results = window->results();
        ok = std::all_of(results.begin(), results.end(), [](int result) { return result == 1; });
        if (!ok) continue;
        written_bytes += (window->end() - stripe) * chunk_bytes;
        stripe = window->end();
        array_.member(role).rebuilt_up_to.store(stripe);
        progress_->done_stripes.store(stripe);

        if (std::chrono::steady_clock::now() - last_checkpoint >= kCheckpointInterval) {
            co_await persist_checkpoint(role, stripe);
            last_checkpoint = std::chrono::steady_clock::now();
        }
        uint64_t pause_ns = 0;
        if (options_.rebuild_rate_bytes_per_second > 0) {
            uint64_t due_ns = uint64_t(double(written_bytes) * 1e9 /
                                       double(options_.rebuild_rate_bytes_per_second));
            uint64_t elapsed = now_ns() - started;
            if (due_ns > elapsed) pause_ns = due_ns - elapsed;
        }
        uint64_t requests = array_.client_request_count();
        clients_active = options_.rebuild_yields_to_clients && requests != client_requests;
        if (clients_active) pause_ns = std::max(pause_ns, kYieldPauseNs);
        client_requests = requests;
        if (pause_ns > 0) co_await Ring::current()->sleep_ns(std::min<uint64_t>(pause_ns, 1'000'000'000));
    }
    if (ok && stripe >= stripe_count) {
        co_await array_.quiesce([&] {
            ArrayMember& member = array_.member(role);
            MemberDevice* incoming = member.incoming.load();
            member.device.store(incoming);
            member.incoming.store(nullptr);
            member.rebuilt_up_to.store(0);
            member.state.store(MemberState::kActive);
        });
        run_admin([this, role, healthy] { finish_rebuild(role, healthy); });
    } else if (ok) {
        co_await persist_checkpoint(role, stripe);
        spdlog::info("{}: rebuild of member {} paused at stripe {} of {}", array_.name(), role,
                     stripe, stripe_count);
        rebuild_running_.store(false);
    }
    // A failed rebuild is cleaned up by abandon_rebuild, which waits for this flag.
    rebuild_loop_active_.store(false);
}

Task<void> ServedArray::persist_checkpoint(uint32_t role, uint64_t stripe) {
    // The checkpoint promises that the new member holds its stripes below it, checksums
    // included, so those must be durable first.
    MemberDevice* incoming = array_.member(role).incoming.load();
    if (incoming == nullptr) co_return;
    int result = co_await incoming->table->write_back();
    if (result == 0) result = co_await Ring::current()->fdatasync(incoming->fd, &incoming->io);
    if (result < 0) {
        array_.fail_device(role, incoming,
                           std::string("making the rebuilt data durable failed: ") + strerror(-result));
        co_return;
    }
    Status status = metadata_.update(
        [&](Superblock& reference) {
            reference.rebuild_position_stripes = stripe;
            for (auto& entry : reference.members) {
                if (entry.state == MemberState::kRebuilding) entry.rebuilt_up_to_stripe = stripe;
            }
        },
        false);
    if (!status.ok()) {
        spdlog::error("{}: persisting the rebuild checkpoint of member {} failed: {}",
                      array_.name(), role, status.to_string());
    }
}

void ServedArray::finish_rebuild(uint32_t role, bool healthy) {
    std::lock_guard lock(mutex_);
    uint64_t stripe_count = array_.geometry().stripe_count();
    Status status = metadata_.update_assembly(
        [&](Assembly& assembly) {
            Superblock& reference = assembly.reference;
            AssembledRole& slot = assembly.roles[role];
            Uuid uuid = slot.incoming.superblock.member_uuid;
            auto& entries = reference.members;
            entries.erase(std::remove_if(entries.begin() + reference.member_count, entries.end(),
                                         [&](const MemberEntry& entry) { return entry.uuid == uuid; }),
                          entries.end());
            reference.members[role] = MemberEntry{uuid, MemberState::kActive, stripe_count};
            reference.rebuild_role = kRoleNone;
            reference.rebuild_position_stripes = 0;
            // The old device keeps its descriptor open (the array may still hold it), but is
            // no longer written.
            if (slot.file.has_value()) retired_.push_back(std::move(*slot.file));
            slot.file = std::move(slot.incoming.file);
            slot.path = slot.incoming.path;
            slot.superblock = slot.incoming.superblock;
            slot.superblock.role = role;
            slot.incoming = AssembledDevice{};
            slot.missing_reason.clear();
        },
        true);
    if (!status.ok()) {
        spdlog::error("{}: recording the end of the rebuild of member {} failed: {}",
                      array_.name(), role, status.to_string());
    }
    double seconds = double(now_ns() - progress_->started_ns.load()) / 1e9;
    spdlog::info("{}: member {} rebuilt onto {} in {:.1f} s{}", array_.name(), role,
                 assembly_.roles[role].path, seconds, healthy ? " (replaced a healthy member)" : "");
    rebuild_running_.store(false);
    Status next = start_rebuild_from_spare_locked();
    if (!next.ok()) spdlog::error("{}: {}", array_.name(), next.to_string());
}

void ServedArray::abandon_rebuild(uint32_t role, const std::string& reason) {
    std::lock_guard lock(mutex_);
    rebuild_abort_.store(true);
    while (rebuild_loop_active_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ArrayMember& member = array_.member(role);
    if (member.incoming.load() == nullptr) return;  // Finished or abandoned already.
    rebuild_running_.store(false);
    MemberDevice* incoming = member.incoming.exchange(nullptr);
    if (incoming != nullptr) incoming->failed.store(true);
    member.rebuilt_up_to.store(0);
    Status status = metadata_.update_assembly(
        [&](Assembly& assembly) {
            Superblock& reference = assembly.reference;
            AssembledRole& slot = assembly.roles[role];
            Uuid uuid = slot.incoming.superblock.member_uuid;
            auto& entries = reference.members;
            entries.erase(std::remove_if(entries.begin() + reference.member_count, entries.end(),
                                         [&](const MemberEntry& entry) { return entry.uuid == uuid; }),
                          entries.end());
            if (reference.members[role].uuid == uuid) reference.members[role].state = MemberState::kFaulty;
            reference.rebuild_role = kRoleNone;
            reference.rebuild_position_stripes = 0;
            if (slot.incoming.file.has_value()) retired_.push_back(std::move(*slot.incoming.file));
            slot.incoming = AssembledDevice{};
        },
        true);
    spdlog::error("{}: rebuild of member {} abandoned: {}", array_.name(), role, reason);
    if (!status.ok()) spdlog::error("{}: {}", array_.name(), status.to_string());
}

// ---- Events from the array ----

void ServedArray::member_state_changed(uint32_t role, MemberState state,
                                       const std::string& reason) {
    run_admin([this, role, state, reason] {
        std::lock_guard lock(mutex_);
        Status status = metadata_.update(
            [&](Superblock& reference) {
                if (reference.members[role].state == MemberState::kActive) {
                    reference.members[role].state = state;
                }
            },
            true);
        spdlog::info("{}: member {} is {} ({})", array_.name(), role, state_word(state), reason);
        if (!status.ok()) spdlog::error("{}: {}", array_.name(), status.to_string());
        if (state == MemberState::kFaulty) {
            Status next = start_rebuild_from_spare_locked();
            if (!next.ok()) spdlog::error("{}: {}", array_.name(), next.to_string());
        }
    });
}

void ServedArray::incoming_failed(uint32_t role, const std::string& reason) {
    run_admin([this, role, reason] { abandon_rebuild(role, reason); });
}

// ---- Admin ----

Status ServedArray::fail(const std::string& member) {
    auto role = resolve_role(member);
    if (!role.ok()) return role.status();
    ArrayMember& slot = array_.member(role.value());
    MemberDevice* incoming = slot.incoming.load();
    if (incoming != nullptr && incoming->path == member) {
        array_.fail_device(role.value(), incoming, "failed by the administrator");
        return Status();
    }
    if (!slot.active()) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("member {} is already {}", member,
                                         state_word(slot.state.load())));
    }
    array_.fail_member(role.value(), "failed by the administrator");
    return Status();
}

Status ServedArray::replace(const std::string& member, const std::string& new_path) {
    std::lock_guard lock(mutex_);
    auto role = resolve_role(member);
    if (!role.ok()) return role.status();
    if (rebuild_running_.load()) {
        return Status::error(Code::kExists,
                             "a rebuild is already running; wait for it to finish (see "
                             "`ecraid status`)");
    }
    if (array_.member(role.value()).incoming.load() != nullptr) {
        return Status::error(Code::kExists,
                             fmt::format("member {} already has a rebuild target", member));
    }
    auto device = prepare_device(new_path);
    if (!device.ok()) return device.status();
    bool healthy = array_.member(role.value()).active();
    return start_rebuild(role.value(), std::move(device).value(), healthy);
}

Status ServedArray::add_spare(const std::string& path) {
    std::lock_guard lock(mutex_);
    auto device = prepare_device(path);
    if (!device.ok()) return device.status();
    if (metadata_.reference().members.size() >= kMemberEntriesMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("the member table is full ({} entries)", kMemberEntriesMax));
    }
    Uuid uuid = device->superblock.member_uuid;
    AssembledDevice spare = std::move(device).value();
    Status status = metadata_.update_assembly(
        [&](Assembly& assembly) {
            assembly.reference.members.push_back(MemberEntry{uuid, MemberState::kSpare, 0});
            assembly.spares.push_back(std::move(spare));
        },
        true);
    if (!status.ok()) return status;
    spdlog::info("{}: added spare {}", array_.name(), path);
    return start_rebuild_from_spare_locked();
}

Status ServedArray::remove(const std::string& member) {
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < assembly_.spares.size(); ++i) {
        if (assembly_.spares[i].path != member) continue;
        Uuid uuid = assembly_.spares[i].superblock.member_uuid;
        Status status = metadata_.update_assembly(
            [&](Assembly& assembly) {
                auto& entries = assembly.reference.members;
                entries.erase(std::remove_if(entries.begin() + assembly.reference.member_count,
                                             entries.end(),
                                             [&](const MemberEntry& entry) { return entry.uuid == uuid; }),
                              entries.end());
                if (assembly.spares[i].file.has_value()) {
                    retired_.push_back(std::move(*assembly.spares[i].file));
                }
                assembly.spares.erase(assembly.spares.begin() + long(i));
            },
            true);
        if (status.ok()) spdlog::info("{}: removed spare {}", array_.name(), member);
        return status;
    }
    auto role = resolve_role(member);
    if (!role.ok()) return role.status();
    ArrayMember& slot = array_.member(role.value());
    if (slot.active()) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("member {} is active; fail it first with `ecraid fail {}`",
                                         member, member));
    }
    if (slot.incoming.load() != nullptr) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("member {} is being rebuilt; fail the rebuild target "
                                         "first",
                                         member));
    }
    Status status = metadata_.update_assembly(
        [&](Assembly& assembly) {
            assembly.reference.members[role.value()].state = MemberState::kMissing;
            AssembledRole& role_slot = assembly.roles[role.value()];
            if (role_slot.file.has_value()) retired_.push_back(std::move(*role_slot.file));
            role_slot.file.reset();
            role_slot.missing_reason = "removed by the administrator";
        },
        true);
    if (status.ok()) {
        slot.state.store(MemberState::kMissing);
        spdlog::info("{}: removed member {} ({})", array_.name(), role.value(), member);
    }
    return status;
}

// ---- Scrub ----

void ServedArray::scrub_timer_main() {
    auto interval = std::chrono::seconds(options_.scrub_interval_seconds);
    std::unique_lock lock(timer_mutex_);
    while (!stopping_.load()) {
        if (timer_changed_.wait_for(lock, interval, [&] { return stopping_.load(); })) return;
        if (scrub_state_.load() == uint32_t(ScrubState::kIdle)) {
            Status status = scrub_start(0);
            if (status.ok()) spdlog::info("{}: periodic scrub started", array_.name());
        }
    }
}

void ServedArray::persist_scrub(ScrubState state, uint64_t stripe) {
    Status status = metadata_.update(
        [&](Superblock& reference) {
            reference.scrub_state = state;
            reference.scrub_position_stripes = state == ScrubState::kIdle ? 0 : stripe;
        },
        false);
    if (!status.ok()) {
        spdlog::error("{}: persisting the scrub checkpoint failed: {}", array_.name(),
                      status.to_string());
    }
}

void ServedArray::launch_scrub(uint64_t from_stripe) {
    scrub_loop_active_.store(true);
    scrub_pause_requested_.store(false);
    scrub_state_.store(uint32_t(ScrubState::kRunning));
    scrub_position_.store(from_stripe);
    scrub_start_stripe_.store(from_stripe);
    scrub_started_ns_.store(now_ns());
    // The last worker coordinates the scrub, and its windows run on every worker.
    Ring& ring = workers_.ring(workers_.size() - 1);
    ring.post([this, from_stripe] { spawn(scrub_loop(from_stripe)); });
}

Task<void> ServedArray::scrub_loop(uint64_t from_stripe) {
    uint64_t stripe_count = array_.geometry().stripe_count();
    uint64_t stripe = from_stripe;
    uint64_t started = now_ns();
    uint64_t checked = 0;
    uint64_t client_requests = array_.client_request_count();
    auto last_checkpoint = std::chrono::steady_clock::now();
    persist_scrub(ScrubState::kRunning, stripe);
    uint64_t next = stripe;
    bool clients_active = false;
    using Window = StripeWindow<ScrubCounts>;
    std::deque<std::unique_ptr<Window>> in_flight;
    for (;;) {
        // While clients are active, one window at a time.
        size_t window_limit = clients_active ? 1 : kWindowsInFlight;
        while (in_flight.size() < window_limit && next < stripe_count && !stopping_.load() &&
               !scrub_pause_requested_.load()) {
            uint64_t end = std::min(next + window_stripes(array_.geometry()), stripe_count);
            in_flight.push_back(std::make_unique<Window>(
                workers_, next, end, [this](uint64_t s) -> Task<ScrubCounts> {
                    ScrubCounts count;
                    co_await scrub_stripe(array_, s, true, &count);
                    co_return count;
                }));
            in_flight.back()->start();
            next = end;
        }
        if (in_flight.empty()) break;
        std::unique_ptr<Window> window = std::move(in_flight.front());
        in_flight.pop_front();
        co_await window->finished();
        for (const ScrubCounts& count : window->results()) {
            checked += count.checked_bytes;
            scrub_checked_bytes_.fetch_add(count.checked_bytes);
            scrub_repaired_.fetch_add(count.repaired_blocks + count.parity_rewritten);
            scrub_unrecoverable_.fetch_add(count.unrecoverable_blocks);
        }
        stripe = window->end();
        scrub_position_.store(stripe);
        if (std::chrono::steady_clock::now() - last_checkpoint >= kCheckpointInterval) {
            persist_scrub(ScrubState::kRunning, stripe);
            last_checkpoint = std::chrono::steady_clock::now();
        }
        uint64_t pause_ns = 0;
        uint64_t rate = scrub_rate_.load();
        if (rate > 0) {
            uint64_t due_ns = uint64_t(double(checked) * 1e9 / double(rate));
            uint64_t elapsed = now_ns() - started;
            if (due_ns > elapsed) pause_ns = due_ns - elapsed;
        }
        uint64_t requests = array_.client_request_count();
        clients_active = requests != client_requests;
        if (clients_active) pause_ns = std::max(pause_ns, kYieldPauseNs);
        client_requests = requests;
        if (pause_ns > 0) co_await Ring::current()->sleep_ns(std::min<uint64_t>(pause_ns, 1'000'000'000));
    }
    // The new state is stored after the completion time and the log line, so a status that
    // reports "idle" also reports the completed pass.
    // NOTE: a resume that arrives after the loop has stopped for a pause, but before it ends
    // here, clears the request, so the loop ends as if the server were stopping. Status then
    // shows a running scrub that does not run until the next restart.
    if (stripe >= stripe_count) {
        persist_scrub(ScrubState::kIdle, 0);
        char when[64] = {};
        time_t now = time(nullptr);
        tm utc{};
        gmtime_r(&now, &utc);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &utc);
        {
            std::lock_guard lock(mutex_);
            scrub_last_completed_ = when;
        }
        spdlog::info("{}: scrub finished: {} checked, {} blocks repaired, {} unrecoverable",
                     array_.name(), scrub_checked_bytes_.load(), scrub_repaired_.load(),
                     scrub_unrecoverable_.load());
        scrub_state_.store(uint32_t(ScrubState::kIdle));
    } else if (scrub_pause_requested_.load()) {
        persist_scrub(ScrubState::kPaused, stripe);
        spdlog::info("{}: scrub paused at stripe {} of {}", array_.name(), stripe, stripe_count);
        scrub_state_.store(uint32_t(ScrubState::kPaused));
    } else {
        // Stopping: the persisted state stays "running", so the next serve resumes here.
        persist_scrub(ScrubState::kRunning, stripe);
    }
    scrub_loop_active_.store(false);
}

Status ServedArray::scrub_start(uint64_t rate_bytes_per_second) {
    std::lock_guard lock(mutex_);
    // A rejected start changes nothing, so the rate is stored only once the start is accepted.
    if (scrub_loop_active_.load()) {
        return Status::error(Code::kExists, "a scrub is already running; see `ecraid scrub status`");
    }
    if (scrub_state_.load() == uint32_t(ScrubState::kPaused)) {
        return Status::error(Code::kExists,
                             "a scrub is paused; continue it with `ecraid scrub resume`");
    }
    if (rate_bytes_per_second > 0) scrub_rate_.store(rate_bytes_per_second);
    scrub_checked_bytes_.store(0);
    scrub_repaired_.store(0);
    scrub_unrecoverable_.store(0);
    spdlog::info("{}: scrub started", array_.name());
    launch_scrub(0);
    return Status();
}

Status ServedArray::scrub_pause() {
    std::lock_guard lock(mutex_);
    if (!scrub_loop_active_.load()) {
        return Status::error(Code::kInvalidArgument, "no scrub is running");
    }
    scrub_pause_requested_.store(true);
    return Status();
}

Status ServedArray::scrub_resume() {
    std::lock_guard lock(mutex_);
    if (scrub_loop_active_.load()) {
        if (scrub_pause_requested_.exchange(false)) return Status();
        return Status::error(Code::kInvalidArgument, "the scrub is already running");
    }
    if (scrub_state_.load() != uint32_t(ScrubState::kPaused)) {
        return Status::error(Code::kInvalidArgument,
                             "no scrub is paused; start one with `ecraid scrub start`");
    }
    spdlog::info("{}: scrub resumed at stripe {}", array_.name(), scrub_position_.load());
    launch_scrub(scrub_position_.load());
    return Status();
}

// ---- Status ----

ArrayStatusView ServedArray::status() {
    const Geometry& geometry = array_.geometry();
    Superblock reference = metadata_.reference();
    ArrayStatusView view;
    view.name = array_.name();
    view.uuid = reference.array_uuid.to_string();
    view.level = std::string(level_name(geometry.level()));
    view.geometry = geometry.describe();
    view.size = geometry.capacity_bytes();
    view.chunk_bytes = geometry.chunk_bytes();
    view.data_count = geometry.data_per_group();
    view.parity_count = geometry.parity_per_group();
    view.failures_tolerated = geometry.failures_tolerated();
    view.event_counter = reference.event_counter;
    view.listen = options_.listen_uri;

    auto counters = [](const MemberDevice* device) {
        MemberErrorsView errors;
        if (device == nullptr) return errors;
        errors.read = device->errors.read.load();
        errors.write = device->errors.write.load();
        errors.checksum = device->errors.checksum.load();
        errors.repaired = device->errors.repaired.load();
        return errors;
    };
    bool rebuilding = rebuild_running_.load();
    for (uint32_t role = 0; role < geometry.member_count(); ++role) {
        const ArrayMember& slot = array_.member(role);
        MemberDevice* device = slot.device.load();
        MemberDevice* incoming = slot.incoming.load();
        MemberStatusView member;
        member.role = std::to_string(role);
        if (slot.active()) {
            member.path = device->path;
            member.state = "active";
            member.errors = counters(device);
            view.members.push_back(member);
            if (incoming != nullptr) {
                MemberStatusView copy;
                copy.role = std::to_string(role);
                copy.path = incoming->path;
                copy.state = "rebuilding";
                copy.errors = counters(incoming);
                view.members.push_back(copy);
            }
            continue;
        }
        if (incoming != nullptr) {
            member.path = incoming->path;
            member.state = "rebuilding";
            member.errors = counters(incoming);
        } else {
            member.path = device != nullptr ? device->path : assembly_.roles[role].path;
            if (member.path.empty()) member.path = "(none)";
            MemberState state = slot.state.load();
            member.state = state == MemberState::kFaulty ? "faulty" : "missing";
            member.errors = counters(device);
        }
        view.members.push_back(member);
    }
    {
        std::lock_guard lock(mutex_);
        for (const AssembledDevice& spare : assembly_.spares) {
            MemberStatusView member;
            member.role = "spare";
            member.path = spare.path;
            member.state = "spare";
            view.members.push_back(member);
        }
    }
    if (array_.lost_data()) {
        view.state = "failed";
    } else if (rebuilding) {
        view.state = "rebuilding";
    } else if (array_.unusable_count() > 0) {
        view.state = "degraded";
    } else {
        view.state = "optimal";
    }
    {
        ScrubStatusView& scrub = view.scrub;
        ScrubState state = ScrubState(scrub_state_.load());
        scrub.state = std::string(scrub_state_name(state));
        uint64_t stripe_count = geometry.stripe_count();
        uint64_t position = scrub_position_.load();
        scrub.progress = state == ScrubState::kIdle || stripe_count == 0
                             ? 0.0
                             : double(position) / double(stripe_count);
        scrub.checked_bytes = scrub_checked_bytes_.load();
        scrub.repaired = scrub_repaired_.load();
        scrub.unrecoverable = scrub_unrecoverable_.load();
        double seconds = double(now_ns() - scrub_started_ns_.load()) / 1e9;
        uint64_t done = position - std::min(position, scrub_start_stripe_.load());
        if (state == ScrubState::kRunning && seconds > 0 && done > 0) {
            scrub.rate_bytes_per_second =
                uint64_t(double(done * geometry.stripe_data_bytes()) / seconds);
            scrub.eta_seconds = (stripe_count - position) * geometry.stripe_data_bytes() /
                                std::max<uint64_t>(scrub.rate_bytes_per_second, 1);
        }
        std::lock_guard lock(mutex_);
        scrub.last_completed = scrub_last_completed_;
    }
    if (rebuilding) {
        RebuildStatusView rebuild;
        uint32_t role = progress_->role.load();
        uint64_t stripe_count = geometry.stripe_count();
        uint64_t done = progress_->done_stripes.load();
        uint64_t start = progress_->start_stripe.load();
        MemberDevice* incoming = array_.member(role).incoming.load();
        rebuild.member = incoming != nullptr ? incoming->path : "";
        rebuild.role = role;
        rebuild.replacing_healthy = progress_->healthy.load();
        rebuild.total_bytes = stripe_count * geometry.chunk_bytes();
        rebuild.done_bytes = done * geometry.chunk_bytes();
        rebuild.progress = stripe_count == 0 ? 1.0 : double(done) / double(stripe_count);
        double seconds = double(now_ns() - progress_->started_ns.load()) / 1e9;
        if (seconds > 0 && done > start) {
            rebuild.rate_bytes_per_second =
                uint64_t(double((done - start) * geometry.chunk_bytes()) / seconds);
        }
        if (rebuild.rate_bytes_per_second > 0) {
            rebuild.eta_seconds = (rebuild.total_bytes - rebuild.done_bytes) /
                                  rebuild.rate_bytes_per_second;
        }
        view.rebuild = rebuild;
    }
    return view;
}

}  // namespace ecraid
