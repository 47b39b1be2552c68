// SPDX-License-Identifier: Apache-2.0
// Helpers for the commands that use a served array's control socket: the --control option,
// and sending one request with errors reported the same way.
#pragma once

#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace ecraid {

// Adds `--control PATH` to `command`, stored in `path`. An empty path means
// default_control_path().
void add_control_option(CLI::App& command, std::string& path);

// Prints "ecraid COMMAND: error: MESSAGE" to stderr and ends the command with `exit_code`.
[[noreturn]] void fail_command(std::string_view command_name, std::string_view message,
                               int exit_code);

// Sends `request` to the control socket and returns the response, whose "ok" is true. When
// the server cannot be reached or returns an error, fails the command with kExitError.
nlohmann::ordered_json run_control_request(std::string_view command_name,
                                           const std::string& control_path,
                                           const nlohmann::ordered_json& request);

}  // namespace ecraid
