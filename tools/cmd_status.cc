// SPDX-License-Identifier: Apache-2.0
// `ecraid status`: prints the state of a served array, its members' error counters and the
// progress of rebuild and scrub, as text or as one JSON object.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "control/status_format.h"
#include "tools/commands.h"
#include "tools/control_command.h"

namespace ecraid {
namespace {

struct StatusArguments {
    std::string control_path;
    bool json = false;
};

void run_status(const StatusArguments& arguments) {
    nlohmann::ordered_json response =
        run_control_request("status", arguments.control_path, {{"command", "status"}});
    const nlohmann::ordered_json& object = response["status"];
    if (!object.is_object()) {
        fail_command("status", "invalid response from the server: no status object", kExitError);
    }
    if (arguments.json) {
        std::cout << object.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                  << "\n";
        return;
    }
    Result<ArrayStatusView> status = status_from_json(object);
    if (!status.ok()) fail_command("status", status.status().message(), kExitError);
    std::cout << format_status_text(status.value());
}

}  // namespace

void add_status_command(CLI::App& app) {
    auto arguments = std::make_shared<StatusArguments>();
    CLI::App* command = app.add_subcommand(
        "status", "Print the state of a served array: members, error counters, rebuild and "
                  "scrub progress");
    add_control_option(*command, arguments->control_path);
    command->add_flag("--json", arguments->json, "Print the status as one JSON object");
    command->callback([arguments] { run_status(*arguments); });
}

}  // namespace ecraid
