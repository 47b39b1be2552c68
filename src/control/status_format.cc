// SPDX-License-Identifier: Apache-2.0
#include "control/status_format.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/units.h"

namespace ecraid {
namespace {

using json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// JSON

json errors_to_json(const MemberErrorsView& errors) {
    return json{{"read", errors.read},
                {"write", errors.write},
                {"checksum", errors.checksum},
                {"repaired", errors.repaired}};
}

json member_to_json(const MemberStatusView& member) {
    return json{{"path", member.path},
                {"role", member.role},
                {"state", member.state},
                {"errors", errors_to_json(member.errors)}};
}

json rebuild_to_json(const RebuildStatusView& rebuild) {
    return json{{"member", rebuild.member},
                {"role", rebuild.role},
                {"replacing_healthy", rebuild.replacing_healthy},
                {"progress", rebuild.progress},
                {"rate", rebuild.rate_bytes_per_second},
                {"eta_seconds", rebuild.eta_seconds},
                {"done_bytes", rebuild.done_bytes},
                {"total_bytes", rebuild.total_bytes}};
}

// Reads typed fields of one JSON object and keeps the first error. A failed read returns a
// default value, so callers read every field and check the error once at the end.
class FieldReader {
public:
    FieldReader(const json& object, std::string location, std::optional<std::string>* error)
        : object_(object), location_(std::move(location)), error_(error) {
        if (!object_.is_object()) fail("", "an object");
    }

    std::string text(const char* key) {
        const json* field = find(key);
        if (field == nullptr) return {};
        if (!field->is_string()) {
            fail(key, "a string");
            return {};
        }
        return field->get<std::string>();
    }
    // A string field that may be null; null reads as the empty string.
    std::string optional_text(const char* key) {
        const json* field = find(key);
        if (field == nullptr || field->is_null()) return {};
        return text(key);
    }
    uint64_t count(const char* key) {
        const json* field = find(key);
        if (field == nullptr) return 0;
        if (!field->is_number_unsigned()) {
            fail(key, "a non-negative integer");
            return 0;
        }
        return field->get<uint64_t>();
    }
    uint32_t count32(const char* key) {
        uint64_t value = count(key);
        if (value > UINT32_MAX) {
            fail(key, "an integer below 2^32");
            return 0;
        }
        return static_cast<uint32_t>(value);
    }
    double number(const char* key) {
        const json* field = find(key);
        if (field == nullptr) return 0;
        if (!field->is_number()) {
            fail(key, "a number");
            return 0;
        }
        return field->get<double>();
    }
    bool boolean(const char* key) {
        const json* field = find(key);
        if (field == nullptr) return false;
        if (!field->is_boolean()) {
            fail(key, "true or false");
            return false;
        }
        return field->get<bool>();
    }
    bool has(const char* key) const { return object_.is_object() && object_.contains(key); }
    // Returns the field, of any type, or nullptr after recording that it is missing.
    const json* child(const char* key) { return find(key); }
    std::string location_of(std::string_view key) const {
        if (location_.empty()) return std::string(key);
        if (key.empty()) return location_;
        return location_ + "." + std::string(key);
    }

private:
    const json* find(const char* key) {
        if (!object_.is_object()) return nullptr;
        auto field = object_.find(key);
        if (field == object_.end()) {
            if (!error_->has_value()) *error_ = fmt::format("missing field '{}'", location_of(key));
            return nullptr;
        }
        return &*field;
    }
    void fail(std::string_view key, std::string_view expected) {
        if (error_->has_value()) return;
        std::string where = location_of(key);
        *error_ = where.empty() ? fmt::format("expected {}", expected)
                                : fmt::format("field '{}' must be {}", where, expected);
    }

    const json& object_;
    std::string location_;
    std::optional<std::string>* error_;
};

Status invalid_status(const std::string& message) {
    return Status::error(Code::kInvalidArgument, "invalid status from the server: " + message);
}

ScrubStatusView read_scrub(const json& object, const std::string& location,
                           std::optional<std::string>* error) {
    FieldReader reader(object, location, error);
    ScrubStatusView scrub;
    scrub.state = reader.text("state");
    scrub.progress = reader.number("progress");
    scrub.checked_bytes = reader.count("checked_bytes");
    scrub.repaired = reader.count("repaired");
    scrub.unrecoverable = reader.count("unrecoverable");
    scrub.rate_bytes_per_second = reader.count("rate");
    scrub.eta_seconds = reader.count("eta_seconds");
    scrub.last_completed = reader.optional_text("last_completed");
    return scrub;
}

MemberStatusView read_member(const json& object, const std::string& location,
                             std::optional<std::string>* error) {
    FieldReader reader(object, location, error);
    MemberStatusView member;
    member.path = reader.text("path");
    member.role = reader.text("role");
    member.state = reader.text("state");
    if (const json* errors = reader.child("errors")) {
        FieldReader counters(*errors, reader.location_of("errors"), error);
        member.errors.read = counters.count("read");
        member.errors.write = counters.count("write");
        member.errors.checksum = counters.count("checksum");
        member.errors.repaired = counters.count("repaired");
    }
    return member;
}

RebuildStatusView read_rebuild(const json& object, std::optional<std::string>* error) {
    FieldReader reader(object, "rebuild", error);
    RebuildStatusView rebuild;
    rebuild.member = reader.text("member");
    rebuild.role = reader.count32("role");
    rebuild.replacing_healthy = reader.boolean("replacing_healthy");
    rebuild.progress = reader.number("progress");
    rebuild.rate_bytes_per_second = reader.count("rate");
    rebuild.eta_seconds = reader.count("eta_seconds");
    rebuild.done_bytes = reader.count("done_bytes");
    rebuild.total_bytes = reader.count("total_bytes");
    return rebuild;
}

// ---------------------------------------------------------------------------------------------
// Text

// Header keys are right-aligned to this width, so values start in one column.
constexpr size_t kKeyWidth = 7;
constexpr int kProgressBarWidth = 20;
// Member paths longer than this go on a line of their own, so that one long path does not
// push every column of the table to the right.
constexpr size_t kMaxPathColumnWidth = 40;
constexpr std::string_view kTableIndent = "    ";

void append_field(std::string& text, std::string_view key, std::string_view value) {
    text += fmt::format("{:>{}}: {}\n", key, kKeyWidth, value);
}

// A line that continues the value of the field above it.
void append_continuation(std::string& text, std::string_view value) {
    text += fmt::format("{:{}}  {}\n", "", kKeyWidth, value);
}

// Limits a progress fraction to 0..1, reading NaN as 0.
double clamp_fraction(double fraction) {
    if (!(fraction > 0)) return 0;
    return std::min(fraction, 1.0);
}

std::string format_percent(double fraction) {
    return fmt::format("{:.1f}%", clamp_fraction(fraction) * 100);
}

// "at 120 MiB/s, 5m 12s left", or a note that there is no estimate yet.
std::string format_speed(uint64_t rate_bytes_per_second, uint64_t eta_seconds) {
    if (rate_bytes_per_second == 0) return "no rate measured yet";
    return fmt::format("at {}, {} left", format_rate(rate_bytes_per_second),
                       format_duration(eta_seconds));
}

bool is_spare(const MemberStatusView& member) { return member.role == "spare"; }

void append_state_explanation(std::string& text, const ArrayStatusView& status) {
    size_t unavailable = 0;
    for (const MemberStatusView& member : status.members) {
        if (is_spare(member)) continue;
        if (member.state == "faulty" || member.state == "missing") ++unavailable;
    }
    if (status.state == "degraded") {
        append_field(text, "status",
                     fmt::format("{} member{} faulty or missing. The array serves all data, with "
                                 "less redundancy.",
                                 unavailable, unavailable == 1 ? " is" : "s are"));
        append_field(text, "action",
                     "Replace it with 'ecraid replace MEMBER NEW', or add a spare with "
                     "'ecraid add-spare DEVICE'.");
    } else if (status.state == "rebuilding") {
        append_field(text, "status",
                     "A member is being rebuilt. Full redundancy returns when it completes.");
    } else if (status.state == "failed") {
        append_field(text, "status",
                     fmt::format("{} members are faulty or missing and {} tolerates {}. Reads of "
                                 "lost data fail with EIO.",
                                 unavailable, status.level, status.failures_tolerated));
        append_field(text, "action", "Bring back the missing members and serve the array again.");
    }
}

void append_rebuild(std::string& text, const RebuildStatusView& rebuild) {
    append_field(text, "rebuild",
                 fmt::format("{} as member {}, {} done{}", rebuild.member, rebuild.role,
                             format_percent(rebuild.progress),
                             rebuild.replacing_healthy
                                 ? " (copying a healthy member, which stays in service)"
                                 : ""));
    append_continuation(text, fmt::format("{} {} of {} {}",
                                          format_progress_bar(rebuild.progress, kProgressBarWidth),
                                          format_size(rebuild.done_bytes),
                                          format_size(rebuild.total_bytes),
                                          format_speed(rebuild.rate_bytes_per_second,
                                                       rebuild.eta_seconds)));
}

std::string describe_last_completed(const ScrubStatusView& scrub) {
    if (scrub.last_completed.empty()) return "no pass completed yet";
    return "last pass completed " + scrub.last_completed;
}

std::string describe_repairs(const ScrubStatusView& scrub) {
    return fmt::format("{} block{} repaired, {} unrecoverable", scrub.repaired,
                       scrub.repaired == 1 ? "" : "s", scrub.unrecoverable);
}

void append_scrub(std::string& text, const ScrubStatusView& scrub) {
    if (scrub.state != "running" && scrub.state != "paused") {
        append_field(text, "scrub",
                     fmt::format("{}, {}; {}", scrub.state, describe_last_completed(scrub),
                                 describe_repairs(scrub)));
        return;
    }
    append_field(text, "scrub",
                 fmt::format("{}, {} done", scrub.state, format_percent(scrub.progress)));
    std::string speed = scrub.state == "running"
                            ? format_speed(scrub.rate_bytes_per_second, scrub.eta_seconds)
                            : "paused";
    append_continuation(text, fmt::format("{} {} checked, {}",
                                          format_progress_bar(scrub.progress, kProgressBarWidth),
                                          format_size(scrub.checked_bytes), speed));
    append_continuation(text,
                        fmt::format("{}; {}", describe_repairs(scrub),
                                    describe_last_completed(scrub)));
}

struct TableRow {
    std::string path;
    std::string role;
    std::string state;
    std::vector<std::string> counters;
};

void append_member_table(std::string& text, const std::vector<MemberStatusView>& members) {
    if (members.empty()) {
        text += kTableIndent;
        text += "(no members)\n";
        return;
    }
    TableRow header{"MEMBER", "ROLE", "STATE", {"READ", "WRITE", "CKSUM", "REPAIRED"}};
    std::vector<TableRow> rows;
    for (const MemberStatusView& member : members) {
        rows.push_back(TableRow{member.path,
                                member.role,
                                member.state,
                                {std::to_string(member.errors.read),
                                 std::to_string(member.errors.write),
                                 std::to_string(member.errors.checksum),
                                 std::to_string(member.errors.repaired)}});
    }

    size_t path_width = header.path.size();
    size_t role_width = header.role.size();
    size_t state_width = header.state.size();
    std::vector<size_t> counter_widths;
    for (const std::string& name : header.counters) counter_widths.push_back(name.size());
    for (const TableRow& row : rows) {
        if (row.path.size() <= kMaxPathColumnWidth) {
            path_width = std::max(path_width, row.path.size());
        }
        role_width = std::max(role_width, row.role.size());
        state_width = std::max(state_width, row.state.size());
        for (size_t i = 0; i < row.counters.size(); ++i) {
            counter_widths[i] = std::max(counter_widths[i], row.counters[i].size());
        }
    }

    auto append_row = [&](const TableRow& row) {
        std::string line(kTableIndent);
        if (row.path.size() > path_width) {
            // The path gets its own line and the columns continue below it.
            line += row.path;
            line += '\n';
            line += kTableIndent;
            line += fmt::format("{:{}}", "", path_width);
        } else {
            line += fmt::format("{:<{}}", row.path, path_width);
        }
        line += fmt::format("  {:<{}}  {:<{}}", row.role, role_width, row.state, state_width);
        for (size_t i = 0; i < row.counters.size(); ++i) {
            line += fmt::format("  {:>{}}", row.counters[i], counter_widths[i]);
        }
        text += line;
        text += '\n';
    };
    append_row(header);
    for (const TableRow& row : rows) append_row(row);
}

}  // namespace

json to_json(const ScrubStatusView& scrub) {
    return json{{"state", scrub.state},
                {"progress", scrub.progress},
                {"checked_bytes", scrub.checked_bytes},
                {"repaired", scrub.repaired},
                {"unrecoverable", scrub.unrecoverable},
                {"rate", scrub.rate_bytes_per_second},
                {"eta_seconds", scrub.eta_seconds},
                {"last_completed", scrub.last_completed.empty() ? json(nullptr)
                                                                : json(scrub.last_completed)}};
}

json to_json(const ArrayStatusView& status) {
    json members = json::array();
    for (const MemberStatusView& member : status.members) members.push_back(member_to_json(member));
    json object = {{"name", status.name},
                   {"uuid", status.uuid},
                   {"state", status.state},
                   {"level", status.level},
                   {"size", status.size},
                   {"chunk_bytes", status.chunk_bytes},
                   {"geometry", status.geometry},
                   {"data_count", status.data_count},
                   {"parity_count", status.parity_count},
                   {"failures_tolerated", status.failures_tolerated},
                   {"event_counter", status.event_counter},
                   {"listen", status.listen},
                   {"members", std::move(members)}};
    if (status.rebuild.has_value()) object["rebuild"] = rebuild_to_json(*status.rebuild);
    object["scrub"] = to_json(status.scrub);
    return object;
}

Result<ScrubStatusView> scrub_status_from_json(const json& object) {
    std::optional<std::string> error;
    ScrubStatusView scrub = read_scrub(object, "", &error);
    if (error.has_value()) return invalid_status(*error);
    return scrub;
}

Result<ArrayStatusView> status_from_json(const json& object) {
    std::optional<std::string> error;
    FieldReader reader(object, "", &error);
    ArrayStatusView status;
    status.name = reader.text("name");
    status.uuid = reader.text("uuid");
    status.state = reader.text("state");
    status.level = reader.text("level");
    status.size = reader.count("size");
    status.chunk_bytes = reader.count("chunk_bytes");
    status.geometry = reader.text("geometry");
    status.data_count = reader.count32("data_count");
    status.parity_count = reader.count32("parity_count");
    status.failures_tolerated = reader.count32("failures_tolerated");
    status.event_counter = reader.count("event_counter");
    status.listen = reader.text("listen");

    if (const json* members = reader.child("members")) {
        if (!members->is_array() && !error.has_value()) error = "field 'members' must be an array";
        for (size_t i = 0; members->is_array() && i < members->size(); ++i) {
            status.members.push_back(
                read_member((*members)[i], fmt::format("members[{}]", i), &error));
        }
    }

    // A rebuild that is not running is left out, and null is read the same way.
    if (reader.has("rebuild") && !object["rebuild"].is_null()) {
        status.rebuild = read_rebuild(object["rebuild"], &error);
    }
    if (const json* scrub = reader.child("scrub")) {
        status.scrub = read_scrub(*scrub, "scrub", &error);
    }

    if (error.has_value()) return invalid_status(*error);
    return status;
}

std::string format_progress_bar(double fraction, int width) {
    if (width < 1) width = 1;
    int filled = static_cast<int>(std::floor(clamp_fraction(fraction) * width));
    std::string bar = "[";
    bar.append(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), '.');
    bar += ']';
    return bar;
}

std::string format_duration(uint64_t seconds) {
    constexpr uint64_t kMinute = 60;
    constexpr uint64_t kHour = 60 * kMinute;
    constexpr uint64_t kDay = 24 * kHour;
    if (seconds < kMinute) return fmt::format("{}s", seconds);
    if (seconds < kHour) return fmt::format("{}m {:02}s", seconds / kMinute, seconds % kMinute);
    if (seconds < kDay) {
        return fmt::format("{}h {:02}m", seconds / kHour, seconds % kHour / kMinute);
    }
    return fmt::format("{}d {:02}h", seconds / kDay, seconds % kDay / kHour);
}

std::string format_rate(uint64_t bytes_per_second) {
    return format_size(bytes_per_second) + "/s";
}

std::string format_scrub_text(const ScrubStatusView& scrub) {
    std::string text;
    append_scrub(text, scrub);
    return text;
}

std::string format_status_text(const ArrayStatusView& status) {
    std::string text;
    append_field(text, "array", fmt::format("{} ({})", status.name, status.uuid));
    append_field(text, "state", status.state);
    append_state_explanation(text, status);
    append_field(text, "layout",
                 fmt::format("{}; tolerates {} failed member{}", status.geometry,
                             status.failures_tolerated, status.failures_tolerated == 1 ? "" : "s"));
    append_field(text, "size", fmt::format("{} ({} bytes)", format_size(status.size), status.size));
    append_field(text, "listen", status.listen);
    append_field(text, "events", std::to_string(status.event_counter));
    if (status.rebuild.has_value()) append_rebuild(text, *status.rebuild);
    append_scrub(text, status.scrub);
    text += fmt::format("{:>{}}:\n\n", "config", kKeyWidth);
    append_member_table(text, status.members);
    return text;
}

}  // namespace ecraid
