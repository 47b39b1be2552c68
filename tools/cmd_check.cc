// SPDX-License-Identifier: Apache-2.0
// `ecraid check`: verify an array that is not being served, and optionally repair it.
//
// Exit codes: 0 when everything is consistent, 1 when damage was found (and, with --repair,
// repaired), 2 when some data is unrecoverable.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "array/array.h"
#include "array/assemble.h"
#include "array/scrub.h"
#include "common/units.h"
#include "io/worker_pool.h"
#include "tools/commands.h"

namespace ecraid {
namespace {

constexpr int kExitDamage = 1;
constexpr int kExitUnrecoverable = 2;
constexpr uint64_t kCheckWindowStripes = 8;

struct CheckOptions {
    std::vector<std::string> members;
    bool repair = false;
    bool json = false;
    bool buffered = false;
};

int check(const CheckOptions& options) {
    AssembleOptions assemble_options;
    assemble_options.read_only = !options.repair;
    assemble_options.try_direct = !options.buffered;
    auto assembled = assemble(options.members, assemble_options);
    if (!assembled.ok()) {
        fmt::print(stderr, "ecraid check: {}\n", assembled.status().to_string());
        return kExitUnrecoverable;
    }
    auto assembly = std::make_unique<Assembly>(std::move(assembled).value());
    for (const auto& reason : assembly->ignored) spdlog::warn("check: ignored {}", reason);
    ArrayOptions array_options;
    array_options.read_only = !options.repair;
    auto opened = open_array(*assembly, array_options);
    if (!opened.ok()) {
        fmt::print(stderr, "ecraid check: {}\n", opened.status().to_string());
        return kExitUnrecoverable;
    }
    std::unique_ptr<Array> array = std::move(opened).value();
    auto pool = WorkerPool::start(0);
    if (!pool.ok()) {
        fmt::print(stderr, "ecraid check: {}\n", pool.status().to_string());
        return kExitUnrecoverable;
    }

    const Geometry& geometry = array->geometry();
    uint64_t stripe_count = geometry.stripe_count();
    ScrubCounts total;
    auto started = std::chrono::steady_clock::now();
    auto last_report = started;
    spdlog::info("check: array {} ({}), {} stripes{}", array->name(), geometry.describe(),
                 stripe_count, options.repair ? ", repairing" : "");
    int flushed = pool.value()->run_and_wait(0, [&]() -> Task<int> {
        for (uint64_t stripe = 0; stripe < stripe_count; stripe += kCheckWindowStripes) {
            uint64_t end = std::min(stripe + kCheckWindowStripes, stripe_count);
            std::vector<ScrubCounts> counts(end - stripe);
            WaitGroup group;
            group.add(uint32_t(end - stripe));
            for (uint64_t s = stripe; s < end; ++s) {
                spawn([](Array* target, uint64_t st, bool repair, ScrubCounts* out,
                         WaitGroup* wait) -> Task<void> {
                    co_await scrub_stripe(*target, st, repair, out);
                    wait->done();
                }(array.get(), s, options.repair, &counts[s - stripe], &group));
            }
            co_await group.wait();
            for (const ScrubCounts& count : counts) total.add(count);
            auto now = std::chrono::steady_clock::now();
            if (now - last_report >= std::chrono::seconds(2)) {
                double seconds = std::chrono::duration<double>(now - started).count();
                double rate = double(total.checked_bytes) / seconds;
                double left = double(stripe_count - end) * double(geometry.stripe_data_bytes());
                spdlog::info("check: {:.1f}% ({} of {}), {}/s, {:.0f} s left",
                             100.0 * double(end) / double(stripe_count),
                             format_size(total.checked_bytes),
                             format_size(geometry.capacity_bytes()),
                             format_size(uint64_t(rate)), rate > 0 ? left / rate : 0.0);
                last_report = now;
            }
        }
        if (!options.repair) co_return 0;
        co_return co_await array->flush();
    });
    pool.value()->stop();

    bool damage = total.bad_blocks > 0 || total.parity_mismatches > 0;
    bool unrecoverable = total.unrecoverable_blocks > 0 || array->lost_data();
    int code = unrecoverable ? kExitUnrecoverable : (damage ? kExitDamage : kExitOk);
    if (options.json) {
        nlohmann::ordered_json out;
        out["array"] = array->name();
        out["checked_bytes"] = total.checked_bytes;
        out["bad_blocks"] = total.bad_blocks;
        out["repaired_blocks"] = options.repair ? total.repaired_blocks : 0;
        out["repairable_blocks"] = total.repaired_blocks;
        out["unrecoverable_blocks"] = total.unrecoverable_blocks;
        out["parity_mismatches"] = total.parity_mismatches;
        out["parity_rewritten"] = total.parity_rewritten;
        out["missing_members"] = assembly->missing_count();
        out["repair"] = options.repair;
        out["result"] = unrecoverable ? "unrecoverable" : (damage ? "damaged" : "consistent");
        fmt::print("{}\n", out.dump(2));
    } else {
        fmt::print("array {}: checked {}\n", array->name(), format_size(total.checked_bytes));
        fmt::print("  bad blocks:            {}\n", total.bad_blocks);
        fmt::print("  {} {}\n", options.repair ? "repaired blocks:      " : "repairable blocks:    ",
                   total.repaired_blocks);
        fmt::print("  unrecoverable blocks:  {}\n", total.unrecoverable_blocks);
        fmt::print("  parity mismatches:     {}{}\n", total.parity_mismatches,
                   options.repair && total.parity_rewritten > 0 ? " (parity rewritten)" : "");
        if (assembly->missing_count() > 0) {
            fmt::print("  missing members:       {}\n", assembly->missing_count());
        }
        fmt::print("result: {}\n", unrecoverable ? "some data is unrecoverable"
                                   : damage      ? (options.repair ? "damage found and repaired"
                                                                   : "damage found; run with --repair")
                                                 : "consistent");
    }
    if (flushed < 0) {
        fmt::print(stderr, "ecraid check: flushing the repairs failed: {}\n", strerror(-flushed));
        return kExitUnrecoverable;
    }
    return code;
}

}  // namespace

void add_check_command(CLI::App& app) {
    auto options = std::make_shared<CheckOptions>();
    CLI::App* command = app.add_subcommand(
        "check",
        "Verify an array that is not being served: every block checksum and the parity of "
        "every stripe. Exits 0 when consistent, 1 when damage was found (and repaired with "
        "--repair), 2 when some data is unrecoverable");
    command->add_flag("--repair", options->repair,
                      "Rewrite bad blocks from redundancy and recompute stale parity");
    command->add_flag("--json", options->json, "Print the result as one JSON object");
    command->add_flag("--buffered", options->buffered, "Open members without O_DIRECT");
    command->add_option("members", options->members, "Member files or block devices, any order")
        ->required();
    command->callback([options] {
        int code = check(*options);
        if (code != kExitOk) throw CLI::RuntimeError(code);
    });
}

}  // namespace ecraid
