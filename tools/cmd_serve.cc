// SPDX-License-Identifier: Apache-2.0
// `ecraid serve`: assemble an array from its members and serve it over NBD until SIGINT or
// SIGTERM, then flush it and mark it clean.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "array/array.h"
#include "array/assemble.h"
#include "array/served_array.h"
#include "control/control_client.h"
#include "control/control_server.h"
#include "common/units.h"
#include "io/worker_pool.h"
#include "nbd/server.h"
#include "tools/commands.h"

namespace ecraid {
namespace {

struct ServeOptions {
    std::vector<std::string> members;
    std::string socket_path;
    std::string listen;
    std::string control_path;
    std::string export_name;
    bool read_only = false;
    uint32_t workers = 0;
    std::string table_cache = "64M";
    bool buffered = false;
    std::vector<std::string> spares;
    double rebuild_rate_mb = 0;
    bool rebuild_no_yield = false;
    std::string scrub_interval;
    double io_timeout_seconds = 30;
};

std::string runtime_directory() {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (runtime != nullptr && runtime[0] != '\0') return runtime;
    return "/tmp";
}

std::string describe_missing(const Assembly& assembly) {
    std::string text;
    for (uint32_t role = 0; role < assembly.roles.size(); ++role) {
        const AssembledRole& slot = assembly.roles[role];
        if (slot.file.has_value()) continue;
        text += fmt::format("\n  member {}: {}", role, slot.missing_reason);
    }
    return text;
}

// Where clients connect, as an NBD URI.
std::string nbd_uri(const nbd::Server& server, const ServeOptions& options,
                    const std::string& export_name) {
    if (options.listen.empty()) {
        return fmt::format("nbd+unix:///{}?socket={}", export_name, options.socket_path);
    }
    std::string host = options.listen.substr(0, options.listen.rfind(':'));
    if (host.empty() || options.listen.find(':') == std::string::npos) host = "127.0.0.1";
    return fmt::format("nbd://{}:{}/{}", host, server.tcp_port(), export_name);
}

int serve(ServeOptions options) {
    // Block the stop signals before any thread starts, so only sigwait below sees them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto table_cache_bytes = parse_size(options.table_cache);
    if (!table_cache_bytes.ok()) {
        fmt::print(stderr, "ecraid serve: --table-cache: {}\n", table_cache_bytes.status().to_string());
        return kExitUsage;
    }

    AssembleOptions assemble_options;
    assemble_options.read_only = options.read_only;
    assemble_options.try_direct = !options.buffered;
    auto assembled = assemble(options.members, assemble_options);
    if (!assembled.ok()) {
        fmt::print(stderr, "ecraid serve: {}\n", assembled.status().to_string());
        return kExitError;
    }
    auto assembly = std::make_unique<Assembly>(std::move(assembled).value());
    for (const auto& reason : assembly->ignored) spdlog::warn("serve: ignored {}", reason);

    MetadataWriter metadata(assembly.get());
    // The served array exists only once the array does; until then failures are recorded
    // directly.
    std::atomic<ServedArray*> served_pointer{nullptr};
    ArrayOptions array_options;
    array_options.read_only = options.read_only;
    array_options.table_cache_bytes = table_cache_bytes.value();
    array_options.io_timeout_ns = uint64_t(options.io_timeout_seconds * 1e9);
    array_options.on_member_state_change = [&](uint32_t role, MemberState state,
                                               const std::string& reason) {
        if (ServedArray* served = served_pointer.load()) {
            served->member_state_changed(role, state, reason);
        } else {
            metadata.set_member_state(role, state);
        }
    };
    array_options.on_incoming_failed = [&](uint32_t role, const std::string& reason) {
        if (ServedArray* served = served_pointer.load()) served->incoming_failed(role, reason);
    };
    auto opened = open_array(*assembly, array_options);
    if (!opened.ok()) {
        fmt::print(stderr, "ecraid serve: {}\n", opened.status().to_string());
        return kExitError;
    }
    std::unique_ptr<Array> array = std::move(opened).value();
    const Geometry& geometry = array->geometry();
    if (array->lost_data()) {
        fmt::print(stderr,
                   "ecraid serve: cannot serve array {}: {} of {} members are missing and {} "
                   "tolerates {}{}:{}\nGive the missing members' paths, or restore them.\n",
                   array->name(), assembly->missing_count(), geometry.member_count(),
                   level_name(geometry.level()), geometry.failures_tolerated(),
                   geometry.group_count() > 1 ? " per mirrored pair" : "",
                   describe_missing(*assembly));
        return kExitError;
    }
    if (assembly->missing_count() > 0) {
        spdlog::warn("serve: array {} is degraded:{}", array->name(), describe_missing(*assembly));
    }
    if (!options.read_only) {
        Status status = metadata.record_missing_roles();
        if (status.ok()) status = metadata.set_shutdown_state(ShutdownState::kDirty);
        if (!status.ok()) {
            fmt::print(stderr, "ecraid serve: cannot update superblocks: {}\n", status.to_string());
            return kExitError;
        }
    }
    if (assembly->was_unclean) {
        spdlog::warn("serve: array {} was not stopped cleanly", array->name());
    }

    auto pool = WorkerPool::start(options.workers);
    if (!pool.ok()) {
        fmt::print(stderr, "ecraid serve: {}\n", pool.status().to_string());
        return kExitError;
    }
    array->spread_over(pool.value().get());
    if (!options.read_only) {
        // After an unclean stop, make the regions that were being written consistent again.
        std::vector<uint8_t> bits;
        if (assembly->was_unclean) bits = read_write_intent_bits(*assembly);
        array->write_intent().load(bits);
        std::vector<uint64_t> dirty = array->write_intent().dirty_regions();
        if (!dirty.empty()) {
            spdlog::warn("serve: array {} was not stopped cleanly; resyncing {} of {} regions",
                         array->name(), dirty.size(), array->write_intent().region_count());
            Array::ResyncReport report;
            pool.value()->run_and_wait(0, [&]() -> Task<int> {
                report = co_await array->resync(dirty);
                co_return 0;
            });
            spdlog::info("serve: resync done: {} regions, {} stripes, {} block checksums "
                         "rewritten, {} degraded stripes left as found",
                         report.regions, report.stripes, report.checksums_rewritten,
                         report.unverifiable_stripes);
        }
    }
    std::string export_name = options.export_name.empty() ? array->name() : options.export_name;
    if (options.socket_path.empty() && options.listen.empty()) {
        options.socket_path = fmt::format("{}/ecraid-{}.sock", runtime_directory(), array->name());
    }
    nbd::ServerOptions server_options;
    server_options.export_name = export_name;
    server_options.export_description = geometry.describe();
    server_options.unix_socket_path = options.socket_path;
    server_options.tcp_address = options.listen;
    auto server = nbd::Server::start(*array, *pool.value(), server_options);
    if (!server.ok()) {
        fmt::print(stderr, "ecraid serve: {}\n", server.status().to_string());
        pool.value()->stop();
        return kExitError;
    }
    std::string uri = nbd_uri(*server.value(), options, export_name);

    ServedArrayOptions served_options;
    served_options.rebuild_rate_bytes_per_second = uint64_t(options.rebuild_rate_mb * 1e6);
    served_options.rebuild_yields_to_clients = !options.rebuild_no_yield;
    served_options.try_direct = !options.buffered;
    served_options.listen_uri = uri;
    if (!options.scrub_interval.empty()) {
        auto interval = parse_duration_seconds(options.scrub_interval);
        if (!interval.ok() || interval.value() == 0) {
            fmt::print(stderr, "ecraid serve: --scrub-interval: {}\n",
                       interval.ok() ? "must be more than 0 (for example 7d)"
                                     : interval.status().to_string());
            server.value()->stop();
            pool.value()->stop();
            return kExitUsage;
        }
        served_options.scrub_interval_seconds = interval.value();
    }
    ServedArray served(*assembly, metadata, *array, *pool.value(), served_options);
    served_pointer.store(&served);
    std::unique_ptr<ControlServer> control;
    if (!options.read_only) {
        ControlServerOptions control_options;
        control_options.socket_path =
            options.control_path.empty() ? control_path_for_array(array->name()) : options.control_path;
        auto started = ControlServer::start(served, control_options);
        if (!started.ok()) {
            fmt::print(stderr, "ecraid serve: control socket: {}\n", started.status().to_string());
            server.value()->stop();
            pool.value()->stop();
            return kExitError;
        }
        control = std::move(started).value();
        spdlog::info("serve: control socket at {}", control->socket_path());
    }
    served.start();
    for (const std::string& spare : options.spares) {
        bool known = false;
        for (const auto& device : assembly->spares) known = known || device.path == spare;
        if (known) continue;
        Status status = served.add_spare(spare);
        if (!status.ok()) spdlog::error("serve: --spare {}: {}", spare, status.to_string());
    }
    spdlog::info("serve: array {} ({}) is {}, serving at {}", array->name(), geometry.describe(),
                 served.status().state, uri);
    fmt::print("{}\n", uri);
    std::fflush(stdout);

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    spdlog::info("serve: received {}, stopping", strsignal(signal_number));

    if (control) control->stop();
    server.value()->stop();
    served.stop();
    int flushed = pool.value()->run_and_wait(0, [&]() { return array->flush(); });
    pool.value()->stop();
    if (flushed < 0 && array->lost_data()) {
        // A failed array cannot be made whole by a flush; what could be synced was synced.
        spdlog::error("serve: array {} stopped with data lost: more members failed than {} "
                      "tolerates; it stays marked dirty",
                      array->name(), level_name(geometry.level()));
        return kExitError;
    }
    if (flushed < 0) {
        spdlog::error("serve: final flush failed: {}; the array stays marked dirty",
                      strerror(-flushed));
        return kExitError;
    }
    if (!options.read_only) {
        Status status = metadata.set_shutdown_state(ShutdownState::kClean);
        if (!status.ok()) {
            spdlog::error("serve: marking the array clean failed: {}", status.to_string());
            return kExitError;
        }
    }
    spdlog::info("serve: array {} stopped cleanly", array->name());
    return kExitOk;
}

}  // namespace

void add_serve_command(CLI::App& app) {
    auto options = std::make_shared<ServeOptions>();
    CLI::App* command = app.add_subcommand(
        "serve", "Assemble an array from its members and serve it over NBD until SIGINT or "
                 "SIGTERM");
    command->add_option("--socket", options->socket_path,
                        "Unix socket to listen on (default: $XDG_RUNTIME_DIR or /tmp, "
                        "ecraid-NAME.sock)");
    command->add_option("--listen", options->listen,
                        "Listen on TCP HOST:PORT instead of a unix socket (a bare PORT listens "
                        "on 127.0.0.1)");
    command->add_option("--control", options->control_path,
                        "Control socket for status and administration commands");
    command->add_option("--name", options->export_name,
                        "NBD export name (default: the array's name)");
    command->add_flag("--read-only", options->read_only,
                      "Serve read-only: writes, trims and write-zeroes get EPERM");
    command->add_option("--workers", options->workers,
                        "Worker threads, each with its own io_uring (default: one per CPU)");
    command->add_option("--table-cache", options->table_cache,
                        "Memory for cached checksum table pages (K, M, G suffixes; default 64M)");
    command->add_flag("--buffered", options->buffered,
                      "Open members without O_DIRECT (through the page cache)");
    command->add_option("--spare", options->spares,
                        "A spare device, used for a rebuild when a member fails (repeatable)")
        ->allow_extra_args(false);
    command->add_option("--rebuild-rate", options->rebuild_rate_mb,
                        "Rebuild speed limit in MB/s (10^6 bytes) written to the new member; "
                        "0 means no limit")
        ->check(CLI::NonNegativeNumber);
    command->add_flag("--rebuild-no-yield", options->rebuild_no_yield,
                      "Do not pause the rebuild while clients issue requests");
    command->add_option("--io-timeout", options->io_timeout_seconds,
                        "Seconds a member's read, write or flush may wait while the member "
                        "completes nothing before it is marked faulty; 0 means no limit "
                        "(default 30)")
        ->check(CLI::NonNegativeNumber);
    command->add_option("--scrub-interval", options->scrub_interval,
                        "Start a scrub this long after the last one (for example 7d, 12h); "
                        "off by default");
    command->add_option("members", options->members, "Member files or block devices, any order")
        ->required();
    command->callback([options] {
        int code = serve(*options);
        if (code != kExitOk) throw CLI::RuntimeError(code);
    });
}

}  // namespace ecraid
