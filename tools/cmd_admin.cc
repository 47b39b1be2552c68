// SPDX-License-Identifier: Apache-2.0
// `ecraid fail`, `replace`, `add-spare` and `remove`: change the members of a served array
// through its control socket. Long work such as a rebuild runs in the server, and
// `ecraid status` shows its progress.
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/control_command.h"

namespace ecraid {
namespace {

struct MemberArguments {
    std::string control_path;
    std::string member;
    std::string new_path;
};

void add_fail_command(CLI::App& app) {
    auto arguments = std::make_shared<MemberArguments>();
    CLI::App* command = app.add_subcommand(
        "fail", "Mark a member of a served array faulty; the array goes on serving degraded");
    command
        ->add_option("member", arguments->member,
                     "Member path as given to serve, or its role number")
        ->required();
    add_control_option(*command, arguments->control_path);
    command->callback([arguments] {
        run_control_request("fail", arguments->control_path,
                            {{"command", "fail"}, {"member", arguments->member}});
        std::cout << fmt::format("{}: marked faulty\n", arguments->member);
    });
}

void add_replace_command(CLI::App& app) {
    auto arguments = std::make_shared<MemberArguments>();
    CLI::App* command = app.add_subcommand(
        "replace", "Rebuild a member onto a new device: at once for a faulty or missing member, "
                   "or by copying a healthy member, which stays in service until the copy is "
                   "complete");
    command
        ->add_option("member", arguments->member,
                     "Member path as given to serve, or its role number")
        ->required();
    command->add_option("new", arguments->new_path, "New member file or block device")
        ->required();
    add_control_option(*command, arguments->control_path);
    command->callback([arguments] {
        run_control_request("replace", arguments->control_path,
                            {{"command", "replace"},
                             {"member", arguments->member},
                             {"new", arguments->new_path}});
        std::cout << fmt::format("{}: rebuilding onto {}; 'ecraid status' shows the progress\n",
                                 arguments->member, arguments->new_path);
    });
}

void add_add_spare_command(CLI::App& app) {
    auto arguments = std::make_shared<MemberArguments>();
    CLI::App* command =
        app.add_subcommand("add-spare", "Add a spare device to a served array");
    command->add_option("device", arguments->member, "Spare file or block device")->required();
    add_control_option(*command, arguments->control_path);
    command->callback([arguments] {
        run_control_request("add-spare", arguments->control_path,
                            {{"command", "add-spare"}, {"path", arguments->member}});
        std::cout << fmt::format("{}: added as a spare\n", arguments->member);
    });
}

void add_remove_command(CLI::App& app) {
    auto arguments = std::make_shared<MemberArguments>();
    CLI::App* command = app.add_subcommand(
        "remove", "Remove a spare, or a faulty or missing member, from a served array");
    command
        ->add_option("member", arguments->member,
                     "Member path as given to serve, or its role number")
        ->required();
    add_control_option(*command, arguments->control_path);
    command->callback([arguments] {
        run_control_request("remove", arguments->control_path,
                            {{"command", "remove"}, {"member", arguments->member}});
        std::cout << fmt::format("{}: removed\n", arguments->member);
    });
}

}  // namespace

void add_admin_commands(CLI::App& app) {
    add_fail_command(app);
    add_replace_command(app);
    add_add_spare_command(app);
    add_remove_command(app);
}

}  // namespace ecraid
