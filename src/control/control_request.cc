// SPDX-License-Identifier: Apache-2.0
#include "control/control_request.h"

#include <initializer_list>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "control/status_format.h"

namespace ecraid {
namespace {

using json = nlohmann::ordered_json;

// Request values quoted in error messages are cut to this length, so that a 60 KiB member
// name does not come back as a 60 KiB error.
constexpr size_t kQuotedValueMaxBytes = 64;

constexpr std::string_view kCommandList = "status, fail, replace, add-spare, remove, scrub";
constexpr std::string_view kScrubActionList = "start, pause, resume, status";

std::string quote(std::string_view text) {
    if (text.size() <= kQuotedValueMaxBytes) return fmt::format("'{}'", text);
    return fmt::format("'{}...' ({} bytes)", text.substr(0, kQuotedValueMaxBytes), text.size());
}

json ok_response() { return json{{"ok", true}}; }

json status_response(const Status& status) {
    if (status.ok()) return ok_response();
    return control_error_response(status.message());
}

// Returns an error message naming the first field that is neither "command" nor in `allowed`.
std::optional<std::string> find_unknown_field(const json& request, std::string_view command,
                                              std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : request.items()) {
        if (key == "command") continue;
        bool known = false;
        for (std::string_view name : allowed) known = known || key == name;
        if (!known) return fmt::format("unknown field {} for command '{}'", quote(key), command);
    }
    return std::nullopt;
}

// Reads a required, non-empty string field. Returns an error message naming the field when
// it is missing, not a string or empty.
std::optional<std::string> read_string_field(const json& request, std::string_view command,
                                             const char* key, std::string& value) {
    auto field = request.find(key);
    if (field == request.end()) {
        return fmt::format("missing field '{}' for command '{}'", key, command);
    }
    if (!field->is_string()) {
        return fmt::format("field '{}' must be a string, not {}", key, field->type_name());
    }
    value = field->get<std::string>();
    if (value.empty()) return fmt::format("field '{}' must not be empty", key);
    return std::nullopt;
}

json handle_member_command(Admin& admin, const json& request, const std::string& command) {
    if (auto error = find_unknown_field(request, command, {"member"})) {
        return control_error_response(*error);
    }
    std::string member;
    if (auto error = read_string_field(request, command, "member", member)) {
        return control_error_response(*error);
    }
    return status_response(command == "fail" ? admin.fail(member) : admin.remove(member));
}

json handle_replace(Admin& admin, const json& request) {
    if (auto error = find_unknown_field(request, "replace", {"member", "new"})) {
        return control_error_response(*error);
    }
    std::string member;
    std::string new_path;
    if (auto error = read_string_field(request, "replace", "member", member)) {
        return control_error_response(*error);
    }
    if (auto error = read_string_field(request, "replace", "new", new_path)) {
        return control_error_response(*error);
    }
    return status_response(admin.replace(member, new_path));
}

json handle_add_spare(Admin& admin, const json& request) {
    if (auto error = find_unknown_field(request, "add-spare", {"path"})) {
        return control_error_response(*error);
    }
    std::string path;
    if (auto error = read_string_field(request, "add-spare", "path", path)) {
        return control_error_response(*error);
    }
    return status_response(admin.add_spare(path));
}

json handle_scrub(Admin& admin, const json& request) {
    if (auto error = find_unknown_field(request, "scrub", {"action", "rate"})) {
        return control_error_response(*error);
    }
    std::string action;
    if (auto error = read_string_field(request, "scrub", "action", action)) {
        return control_error_response(*error);
    }
    auto rate = request.find("rate");
    if (rate != request.end() && action != "start") {
        return control_error_response(
            fmt::format("field 'rate' is only valid with scrub action 'start', not {}",
                        quote(action)));
    }

    if (action == "start") {
        uint64_t rate_bytes_per_second = 0;
        if (rate != request.end()) {
            // nlohmann/json stores non-negative integers as unsigned, negative ones as signed
            // and fractions or integers beyond 64 bits as floating point.
            if (!rate->is_number_unsigned()) {
                return control_error_response(
                    fmt::format("field 'rate' must be a non-negative integer (bytes per "
                                "second), not {}",
                                rate->is_number() ? rate->dump() : rate->type_name()));
            }
            rate_bytes_per_second = rate->get<uint64_t>();
        }
        return status_response(admin.scrub_start(rate_bytes_per_second));
    }
    if (action == "pause") return status_response(admin.scrub_pause());
    if (action == "resume") return status_response(admin.scrub_resume());
    if (action == "status") return json{{"ok", true}, {"scrub", to_json(admin.status().scrub)}};
    return control_error_response(fmt::format("unknown scrub action {}; expected one of: {}",
                                              quote(action), kScrubActionList));
}

}  // namespace

json control_error_response(std::string_view message) {
    return json{{"ok", false}, {"error", message}};
}

std::string serialize_control_message(const json& message) {
    std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    return line;
}

json handle_control_request(Admin& admin, const json& request) {
    if (!request.is_object()) {
        return control_error_response(fmt::format(
            "a request must be a JSON object such as {{\"command\":\"status\"}}, not {}",
            request.type_name()));
    }
    auto command_field = request.find("command");
    if (command_field == request.end()) return control_error_response("missing field 'command'");
    if (!command_field->is_string()) {
        return control_error_response(fmt::format("field 'command' must be a string, not {}",
                                                  command_field->type_name()));
    }
    const std::string& command = command_field->get_ref<const std::string&>();

    if (command == "status") {
        if (auto error = find_unknown_field(request, command, {})) {
            return control_error_response(*error);
        }
        return json{{"ok", true}, {"status", to_json(admin.status())}};
    }
    if (command == "fail" || command == "remove") {
        return handle_member_command(admin, request, command);
    }
    if (command == "replace") return handle_replace(admin, request);
    if (command == "add-spare") return handle_add_spare(admin, request);
    if (command == "scrub") return handle_scrub(admin, request);
    return control_error_response(
        fmt::format("unknown command {}; expected one of: {}", quote(command), kCommandList));
}

}  // namespace ecraid
