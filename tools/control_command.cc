// SPDX-License-Identifier: Apache-2.0
#include "tools/control_command.h"

#include <iostream>

#include "control/control_client.h"
#include "tools/commands.h"

namespace ecraid {

void add_control_option(CLI::App& command, std::string& path) {
    command
        .add_option("--control", path,
                    "Control socket of the ecraid serve to talk to (default: "
                    "$ECRAID_CONTROL, else $XDG_RUNTIME_DIR/ecraid.ctl, else /tmp/ecraid.ctl)")
        ->type_name("PATH");
}

void fail_command(std::string_view command_name, std::string_view message, int exit_code) {
    std::cerr << "ecraid " << command_name << ": error: " << message << "\n";
    throw CLI::RuntimeError(exit_code);
}

nlohmann::ordered_json run_control_request(std::string_view command_name,
                                           const std::string& control_path,
                                           const nlohmann::ordered_json& request) {
    std::string path = control_path.empty() ? default_control_path() : control_path;
    Result<nlohmann::ordered_json> response = send_control_request(path, request);
    if (!response.ok()) fail_command(command_name, response.status().message(), kExitError);
    return std::move(response).value();
}

}  // namespace ecraid
