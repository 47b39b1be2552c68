// SPDX-License-Identifier: Apache-2.0
// The ecraid command: create, serve and administer arrays.
#include <cstdio>

#include <CLI/CLI.hpp>
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "tools/commands.h"

int main(int argc, char** argv) {
    // Log lines go to stderr so that command output on stdout stays machine-readable.
    auto logger = spdlog::stderr_color_mt("ecraid");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug turns on per-request logs.

    CLI::App app{"ecraid: software RAID and erasure-coded block storage served over NBD"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "ecraid 0.1.0");
    ecraid::add_create_command(app);
    ecraid::add_inspect_command(app);
    ecraid::add_serve_command(app);
    ecraid::add_status_command(app);
    ecraid::add_admin_commands(app);
    ecraid::add_scrub_command(app);
    ecraid::add_check_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& error) {
        int code = app.exit(error);
        // CLI11 numbers its usage errors from 100 up (for example 106 for a missing argument);
        // ecraid reports them all as kExitUsage. Commands end with CLI::RuntimeError and their
        // own code.
        bool from_command = dynamic_cast<const CLI::RuntimeError*>(&error) != nullptr;
        if (code != ecraid::kExitOk && !from_command) return ecraid::kExitUsage;
        return code;
    }
    return ecraid::kExitOk;
}
