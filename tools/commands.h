// SPDX-License-Identifier: Apache-2.0
// The ecraid subcommands. Each command file registers its subcommand, with its options and
// callback, on the top-level CLI11 app; each adds its declaration here.
#pragma once

#include <CLI/CLI.hpp>

namespace ecraid {

void add_create_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_status_command(CLI::App& app);
// fail, replace, add-spare and remove.
void add_admin_commands(CLI::App& app);
void add_scrub_command(CLI::App& app);
void add_check_command(CLI::App& app);

// Exit codes shared by the commands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

}  // namespace ecraid
