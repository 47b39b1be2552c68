// SPDX-License-Identifier: Apache-2.0
// `ecraid scrub start|pause|resume|status`: controls the background scrub of a served array,
// which reads every block, checks its checksum and repairs it from redundancy.
#include <cmath>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control/status_format.h"
#include "tools/commands.h"
#include "tools/control_command.h"

namespace ecraid {
namespace {

constexpr double kBytesPerMegabyte = 1e6;

struct ScrubArguments {
    std::string action;
    std::string control_path;
    double rate_megabytes_per_second = 0;
    bool json = false;
};

// Converts --rate to bytes per second, or fails the command with a usage error.
uint64_t rate_bytes_per_second(double megabytes_per_second) {
    if (!(megabytes_per_second > 0) || std::isinf(megabytes_per_second)) {
        fail_command("scrub",
                     fmt::format("--rate {}: give a positive number of MB/s, such as 50",
                                 megabytes_per_second),
                     kExitUsage);
    }
    double bytes = std::round(megabytes_per_second * kBytesPerMegabyte);
    // 2^64 as a double; anything at or above it does not fit in uint64_t.
    if (!(bytes < 18446744073709551616.0)) {
        fail_command("scrub", fmt::format("--rate {} MB/s is too large", megabytes_per_second),
                     kExitUsage);
    }
    if (bytes < 1) {
        fail_command("scrub",
                     fmt::format("--rate {} MB/s is less than one byte per second",
                                 megabytes_per_second),
                     kExitUsage);
    }
    return static_cast<uint64_t>(bytes);
}

void print_scrub_status(const nlohmann::ordered_json& response, bool json) {
    const nlohmann::ordered_json& object = response["scrub"];
    if (!object.is_object()) {
        fail_command("scrub", "invalid response from the server: no scrub object", kExitError);
    }
    if (json) {
        std::cout << object.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                  << "\n";
        return;
    }
    Result<ScrubStatusView> scrub = scrub_status_from_json(object);
    if (!scrub.ok()) fail_command("scrub", scrub.status().message(), kExitError);
    std::cout << format_scrub_text(scrub.value());
}

void run_scrub(const ScrubArguments& arguments, bool rate_given) {
    if (rate_given && arguments.action != "start") {
        fail_command("scrub", "--rate applies only to 'scrub start'", kExitUsage);
    }
    if (arguments.json && arguments.action != "status") {
        fail_command("scrub", "--json applies only to 'scrub status'", kExitUsage);
    }

    nlohmann::ordered_json request = {{"command", "scrub"}, {"action", arguments.action}};
    if (rate_given) request["rate"] = rate_bytes_per_second(arguments.rate_megabytes_per_second);
    nlohmann::ordered_json response =
        run_control_request("scrub", arguments.control_path, request);

    if (arguments.action == "status") {
        print_scrub_status(response, arguments.json);
    } else if (arguments.action == "start" && rate_given) {
        std::cout << fmt::format("scrub started, at most {} MB/s\n",
                                 arguments.rate_megabytes_per_second);
    } else if (arguments.action == "start") {
        std::cout << "scrub started\n";
    } else if (arguments.action == "pause") {
        std::cout << "scrub paused\n";
    } else {
        std::cout << "scrub resumed\n";
    }
}

}  // namespace

void add_scrub_command(CLI::App& app) {
    auto arguments = std::make_shared<ScrubArguments>();
    CLI::App* command = app.add_subcommand(
        "scrub", "Start, pause or resume the background scrub of a served array, or print its "
                 "progress");
    command->add_option("action", arguments->action, "Start, pause, resume or status")
        ->required()
        ->check(CLI::IsMember({"start", "pause", "resume", "status"}));
    CLI::Option* rate =
        command->add_option("--rate", arguments->rate_megabytes_per_second,
                            "With start: limit the scrub to this many MB/s (10^6 bytes per "
                            "second); without it the current limit stays")
            ->type_name("MB/s");
    add_control_option(*command, arguments->control_path);
    command->add_flag("--json", arguments->json,
                      "With status: print the scrub progress as one JSON object");
    command->callback([arguments, rate] { run_scrub(*arguments, rate->count() > 0); });
}

}  // namespace ecraid
