// SPDX-License-Identifier: Apache-2.0
// Status output: the JSON shape (every key, with its type), reading it back, and the text
// form with its member table, counters and progress bars.
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "control/status_format.h"
#include "unit/control_test_support.h"

namespace ecraid::testing {
namespace {

using json = nlohmann::ordered_json;

enum class Type { kString, kUnsigned, kNumber, kBoolean, kObject, kArray, kStringOrNull };

void expect_type(const json& object, const std::string& key, Type type,
                 const std::string& where) {
    ASSERT_TRUE(object.contains(key)) << where << " lacks '" << key << "'";
    const json& value = object[key];
    switch (type) {
        case Type::kString:
            EXPECT_TRUE(value.is_string()) << where << "." << key << " = " << value;
            break;
        case Type::kUnsigned:
            EXPECT_TRUE(value.is_number_unsigned()) << where << "." << key << " = " << value;
            break;
        case Type::kNumber:
            EXPECT_TRUE(value.is_number()) << where << "." << key << " = " << value;
            break;
        case Type::kBoolean:
            EXPECT_TRUE(value.is_boolean()) << where << "." << key << " = " << value;
            break;
        case Type::kObject:
            EXPECT_TRUE(value.is_object()) << where << "." << key << " = " << value;
            break;
        case Type::kArray:
            EXPECT_TRUE(value.is_array()) << where << "." << key << " = " << value;
            break;
        case Type::kStringOrNull:
            EXPECT_TRUE(value.is_string() || value.is_null())
                << where << "." << key << " = " << value;
            break;
    }
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream stream(text);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
}

// Returns the first line that contains `needle`, or an empty string.
std::string find_line(const std::string& text, const std::string& needle) {
    for (const std::string& line : split_lines(text)) {
        if (line.find(needle) != std::string::npos) return line;
    }
    return {};
}

// Returns the member table row of `path`, or an empty string.
std::string find_table_row(const std::string& text, const std::string& path) {
    for (const std::string& line : split_lines(text)) {
        if (line.starts_with("    " + path + " ")) return line;
    }
    return {};
}

bool contains(const std::string& text, const std::string& needle) {
    return text.find(needle) != std::string::npos;
}

TEST(StatusJson, HasEveryKeyWithItsType) {
    json object = to_json(sample_status());
    const std::vector<std::pair<std::string, Type>> top = {
        {"name", Type::kString},           {"uuid", Type::kString},
        {"state", Type::kString},          {"level", Type::kString},
        {"size", Type::kUnsigned},         {"chunk_bytes", Type::kUnsigned},
        {"geometry", Type::kString},       {"data_count", Type::kUnsigned},
        {"parity_count", Type::kUnsigned}, {"failures_tolerated", Type::kUnsigned},
        {"event_counter", Type::kUnsigned}, {"listen", Type::kString},
        {"members", Type::kArray},         {"rebuild", Type::kObject},
        {"scrub", Type::kObject},
    };
    for (const auto& [key, type] : top) expect_type(object, key, type, "status");
    EXPECT_EQ(object.size(), top.size());

    ASSERT_EQ(object["members"].size(), 7u);
    for (size_t i = 0; i < object["members"].size(); ++i) {
        const json& member = object["members"][i];
        std::string where = "members[" + std::to_string(i) + "]";
        expect_type(member, "path", Type::kString, where);
        expect_type(member, "role", Type::kString, where);
        expect_type(member, "state", Type::kString, where);
        expect_type(member, "errors", Type::kObject, where);
        EXPECT_EQ(member.size(), 4u) << where;
        for (const char* counter : {"read", "write", "checksum", "repaired"}) {
            expect_type(member["errors"], counter, Type::kUnsigned, where + ".errors");
        }
        EXPECT_EQ(member["errors"].size(), 4u) << where;
    }

    const std::vector<std::pair<std::string, Type>> rebuild = {
        {"member", Type::kString},        {"role", Type::kUnsigned},
        {"replacing_healthy", Type::kBoolean}, {"progress", Type::kNumber},
        {"rate", Type::kUnsigned},        {"eta_seconds", Type::kUnsigned},
        {"done_bytes", Type::kUnsigned},  {"total_bytes", Type::kUnsigned},
    };
    for (const auto& [key, type] : rebuild) expect_type(object["rebuild"], key, type, "rebuild");
    EXPECT_EQ(object["rebuild"].size(), rebuild.size());

    const std::vector<std::pair<std::string, Type>> scrub = {
        {"state", Type::kString},           {"progress", Type::kNumber},
        {"checked_bytes", Type::kUnsigned}, {"repaired", Type::kUnsigned},
        {"unrecoverable", Type::kUnsigned}, {"rate", Type::kUnsigned},
        {"eta_seconds", Type::kUnsigned},   {"last_completed", Type::kStringOrNull},
    };
    for (const auto& [key, type] : scrub) expect_type(object["scrub"], key, type, "scrub");
    EXPECT_EQ(object["scrub"].size(), scrub.size());
}

TEST(StatusJson, HoldsTheValues) {
    json object = to_json(sample_status());
    EXPECT_EQ(object["state"], "rebuilding");
    EXPECT_EQ(object["size"], 4 * 1024ull * 1024 * 1024);
    EXPECT_EQ(object["members"][1]["state"], "faulty");
    EXPECT_EQ(object["members"][1]["errors"]["write"], 12u);
    EXPECT_EQ(object["members"][2]["errors"]["checksum"], 1234567u);
    EXPECT_EQ(object["members"][6]["role"], "spare");
    EXPECT_EQ(object["rebuild"]["role"], 4u);
    EXPECT_DOUBLE_EQ(object["rebuild"]["progress"].get<double>(), 0.425);
    EXPECT_EQ(object["rebuild"]["rate"], 120u * 1024 * 1024);
    EXPECT_EQ(object["scrub"]["last_completed"], "2024-05-01 12:00:00 UTC");
    EXPECT_EQ(object.begin().key(), "name");  // Keys keep the documented order.
}

TEST(StatusJson, RebuildOmittedWhenNoneRuns) {
    ArrayStatusView status = sample_status();
    status.rebuild.reset();
    status.scrub.last_completed.clear();
    json object = to_json(status);
    EXPECT_FALSE(object.contains("rebuild"));
    EXPECT_TRUE(object["scrub"]["last_completed"].is_null());
}

TEST(StatusJson, ReadsBackWhatItWrote) {
    ArrayStatusView original = sample_status();
    auto read = status_from_json(to_json(original));
    ASSERT_TRUE(read.ok()) << read.status().to_string();
    const ArrayStatusView& copy = read.value();
    EXPECT_EQ(copy.name, original.name);
    EXPECT_EQ(copy.uuid, original.uuid);
    EXPECT_EQ(copy.state, original.state);
    EXPECT_EQ(copy.level, original.level);
    EXPECT_EQ(copy.geometry, original.geometry);
    EXPECT_EQ(copy.size, original.size);
    EXPECT_EQ(copy.chunk_bytes, original.chunk_bytes);
    EXPECT_EQ(copy.data_count, original.data_count);
    EXPECT_EQ(copy.parity_count, original.parity_count);
    EXPECT_EQ(copy.failures_tolerated, original.failures_tolerated);
    EXPECT_EQ(copy.event_counter, original.event_counter);
    EXPECT_EQ(copy.listen, original.listen);
    ASSERT_EQ(copy.members.size(), original.members.size());
    for (size_t i = 0; i < copy.members.size(); ++i) {
        EXPECT_EQ(copy.members[i].path, original.members[i].path) << i;
        EXPECT_EQ(copy.members[i].role, original.members[i].role) << i;
        EXPECT_EQ(copy.members[i].state, original.members[i].state) << i;
        EXPECT_EQ(copy.members[i].errors.read, original.members[i].errors.read) << i;
        EXPECT_EQ(copy.members[i].errors.write, original.members[i].errors.write) << i;
        EXPECT_EQ(copy.members[i].errors.checksum, original.members[i].errors.checksum) << i;
        EXPECT_EQ(copy.members[i].errors.repaired, original.members[i].errors.repaired) << i;
    }
    ASSERT_TRUE(copy.rebuild.has_value());
    EXPECT_EQ(copy.rebuild->member, original.rebuild->member);
    EXPECT_EQ(copy.rebuild->role, original.rebuild->role);
    EXPECT_EQ(copy.rebuild->replacing_healthy, original.rebuild->replacing_healthy);
    EXPECT_DOUBLE_EQ(copy.rebuild->progress, original.rebuild->progress);
    EXPECT_EQ(copy.rebuild->rate_bytes_per_second, original.rebuild->rate_bytes_per_second);
    EXPECT_EQ(copy.rebuild->eta_seconds, original.rebuild->eta_seconds);
    EXPECT_EQ(copy.rebuild->done_bytes, original.rebuild->done_bytes);
    EXPECT_EQ(copy.rebuild->total_bytes, original.rebuild->total_bytes);
    EXPECT_EQ(copy.scrub.state, original.scrub.state);
    EXPECT_DOUBLE_EQ(copy.scrub.progress, original.scrub.progress);
    EXPECT_EQ(copy.scrub.checked_bytes, original.scrub.checked_bytes);
    EXPECT_EQ(copy.scrub.repaired, original.scrub.repaired);
    EXPECT_EQ(copy.scrub.unrecoverable, original.scrub.unrecoverable);
    EXPECT_EQ(copy.scrub.rate_bytes_per_second, original.scrub.rate_bytes_per_second);
    EXPECT_EQ(copy.scrub.eta_seconds, original.scrub.eta_seconds);
    EXPECT_EQ(copy.scrub.last_completed, original.scrub.last_completed);
}

TEST(StatusJson, ReadingNamesTheBadField) {
    json object = to_json(sample_status());
    object["members"][1]["errors"].erase("read");
    auto missing = status_from_json(object);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.status().message(),
              "invalid status from the server: missing field 'members[1].errors.read'");

    object = to_json(sample_status());
    object["rebuild"]["progress"] = "half";
    auto mistyped = status_from_json(object);
    ASSERT_FALSE(mistyped.ok());
    EXPECT_EQ(mistyped.status().message(),
              "invalid status from the server: field 'rebuild.progress' must be a number");

    auto not_object = status_from_json(json::array());
    ASSERT_FALSE(not_object.ok());
    EXPECT_EQ(not_object.status().message(),
              "invalid status from the server: expected an object");

    object = to_json(sample_status());
    object["members"] = "none";
    auto members = status_from_json(object);
    ASSERT_FALSE(members.ok());
    EXPECT_EQ(members.status().message(),
              "invalid status from the server: field 'members' must be an array");
}

TEST(StatusJson, ReadingIgnoresUnknownFields) {
    json object = to_json(sample_status());
    object["added_later"] = {{"x", 1}};
    object["members"][0]["temperature"] = 41;
    auto read = status_from_json(object);
    EXPECT_TRUE(read.ok()) << read.status().to_string();
}

TEST(StatusText, ShowsHeaderMembersAndCounters) {
    std::string text = format_status_text(sample_status());
    EXPECT_TRUE(contains(text, "array: tank (0f8e2a4c-7d1b-4c1e-9a52-3b6f0d9e8c71)")) << text;
    EXPECT_TRUE(contains(text, "state: rebuilding")) << text;
    EXPECT_TRUE(contains(text, "rs 4+2, 6 members, 64 KiB chunks, 4.0 GiB")) << text;
    EXPECT_TRUE(contains(text, "tolerates 2 failed members")) << text;
    EXPECT_TRUE(contains(text, "size: 4 GiB (4294967296 bytes)")) << text;
    EXPECT_TRUE(contains(text, "MEMBER")) << text;

    std::string header = find_line(text, "MEMBER");
    for (const char* column : {"ROLE", "STATE", "READ", "WRITE", "CKSUM", "REPAIRED"}) {
        EXPECT_TRUE(contains(header, column)) << header;
    }
    for (const MemberStatusView& member : sample_status().members) {
        EXPECT_FALSE(find_table_row(text, member.path).empty()) << member.path << "\n" << text;
    }
    std::string faulty = find_table_row(text, "/dev/disk/by-id/d1");
    EXPECT_TRUE(contains(faulty, "faulty")) << faulty;
    EXPECT_TRUE(contains(faulty, " 3 ")) << faulty;
    EXPECT_TRUE(contains(faulty, " 12 ")) << faulty;
    std::string checksums = find_table_row(text, "/dev/disk/by-id/d2");
    EXPECT_TRUE(contains(checksums, " 1234567 ")) << checksums;
    EXPECT_TRUE(checksums.ends_with(" 89")) << checksums;
    EXPECT_TRUE(contains(find_table_row(text, "/dev/disk/by-id/spare0"), "spare")) << text;
}

TEST(StatusText, ShowsRebuildProgressBar) {
    std::string text = format_status_text(sample_status());
    std::string rebuild = find_line(text, "rebuild:");
    EXPECT_TRUE(contains(rebuild, "/srv/new/d4 as member 4")) << rebuild;
    EXPECT_TRUE(contains(rebuild, "42.5% done")) << rebuild;
    std::string progress = find_line(text, "[########............]");
    EXPECT_FALSE(progress.empty()) << text;
    EXPECT_TRUE(contains(progress, "435 MiB of 1 GiB")) << progress;
    EXPECT_TRUE(contains(progress, "at 120 MiB/s")) << progress;
    EXPECT_TRUE(contains(progress, "5m 12s left")) << progress;
}

TEST(StatusText, NoRebuildLineWhenNoneRuns) {
    ArrayStatusView status = sample_status();
    status.rebuild.reset();
    status.state = "optimal";
    std::string text = format_status_text(status);
    EXPECT_FALSE(contains(text, "rebuild:")) << text;
    EXPECT_FALSE(contains(text, "status:")) << text;
}

TEST(StatusText, ExplainsDegradedAndFailed) {
    ArrayStatusView status = sample_status();
    status.rebuild.reset();
    status.state = "degraded";
    status.members[4].state = "missing";
    std::string degraded = format_status_text(status);
    EXPECT_TRUE(contains(degraded, "status: 2 members are faulty or missing")) << degraded;
    EXPECT_TRUE(contains(degraded, "ecraid replace MEMBER NEW")) << degraded;

    status.state = "failed";
    status.members[0].state = "faulty";
    std::string failed = format_status_text(status);
    EXPECT_TRUE(contains(failed, "3 members are faulty or missing and rs tolerates 2")) << failed;
}

TEST(StatusText, ColumnsLineUp) {
    std::string text = format_status_text(sample_status());
    std::string header = find_line(text, "MEMBER");
    size_t state_column = header.find("STATE");
    size_t cksum_end = header.find("CKSUM") + std::string("CKSUM").size();
    ASSERT_NE(state_column, std::string::npos);
    for (const MemberStatusView& member : sample_status().members) {
        std::string line = find_table_row(text, member.path);
        ASSERT_FALSE(line.empty()) << member.path << "\n" << text;
        EXPECT_EQ(line.find(member.state, state_column - 1), state_column) << line;
        std::string checksum = std::to_string(member.errors.checksum);
        EXPECT_EQ(line.substr(cksum_end - checksum.size(), checksum.size()), checksum) << line;
        EXPECT_EQ(line.size(), header.size()) << line;
    }
}

TEST(StatusText, LongPathGetsItsOwnLine) {
    ArrayStatusView status = sample_status();
    std::string long_path = "/dev/disk/by-id/nvme-SAMSUNG_MZVL21T0HCLR-00B00_S676NX0T123456-part3";
    status.members[3].path = long_path;
    std::string text = format_status_text(status);
    std::vector<std::string> lines = split_lines(text);
    std::string header = find_line(text, "MEMBER");
    size_t state_column = header.find("STATE");
    for (size_t i = 0; i < lines.size(); ++i) {
        if (!contains(lines[i], long_path)) continue;
        EXPECT_EQ(lines[i], "    " + long_path);
        ASSERT_LT(i + 1, lines.size());
        const std::string& columns = lines[i + 1];
        EXPECT_EQ(columns.find("active"), state_column) << columns;
        EXPECT_EQ(columns.size(), header.size()) << columns;
    }
    // The other rows keep the narrow path column.
    EXPECT_LT(header.find("ROLE"), long_path.size());
}

TEST(StatusText, NoMembers) {
    ArrayStatusView status = sample_status();
    status.members.clear();
    EXPECT_TRUE(contains(format_status_text(status), "(no members)"));
}

TEST(StatusScrubText, Idle) {
    ScrubStatusView scrub;
    scrub.repaired = 1;
    EXPECT_EQ(format_scrub_text(scrub),
              "  scrub: idle, no pass completed yet; 1 block repaired, 0 unrecoverable\n");
    scrub.last_completed = "2024-05-01 12:00:00 UTC";
    scrub.repaired = 0;
    scrub.unrecoverable = 3;
    EXPECT_EQ(format_scrub_text(scrub),
              "  scrub: idle, last pass completed 2024-05-01 12:00:00 UTC; 0 blocks repaired, 3 "
              "unrecoverable\n");
}

TEST(StatusScrubText, RunningShowsRateAndTimeLeft) {
    ScrubStatusView scrub;
    scrub.state = "running";
    scrub.progress = 0.5;
    scrub.checked_bytes = 2 * 1024ull * 1024 * 1024;
    scrub.rate_bytes_per_second = 95 * 1024 * 1024;
    scrub.eta_seconds = 3720;
    EXPECT_EQ(format_scrub_text(scrub),
              "  scrub: running, 50.0% done\n"
              "         [##########..........] 2 GiB checked, at 95 MiB/s, 1h 02m left\n"
              "         0 blocks repaired, 0 unrecoverable; no pass completed yet\n");
}

TEST(StatusScrubText, RunningWithoutRateSaysSo) {
    ScrubStatusView scrub;
    scrub.state = "running";
    EXPECT_TRUE(contains(format_scrub_text(scrub), "no rate measured yet"));
}

TEST(StatusScrubText, PausedShowsNoRate) {
    ScrubStatusView scrub = sample_status().scrub;
    std::string text = format_scrub_text(scrub);
    EXPECT_TRUE(contains(text, "scrub: paused, 12.5% done")) << text;
    EXPECT_TRUE(contains(text, "[##..................] 512 MiB checked, paused")) << text;
}

TEST(StatusTextPieces, ProgressBarClamps) {
    EXPECT_EQ(format_progress_bar(0, 10), "[..........]");
    EXPECT_EQ(format_progress_bar(0.55, 10), "[#####.....]");
    EXPECT_EQ(format_progress_bar(1, 10), "[##########]");
    EXPECT_EQ(format_progress_bar(7.5, 10), "[##########]");
    EXPECT_EQ(format_progress_bar(-1, 10), "[..........]");
    EXPECT_EQ(format_progress_bar(std::nan(""), 4), "[....]");
    EXPECT_EQ(format_progress_bar(0.5, 0), "[.]");
}

TEST(StatusTextPieces, Durations) {
    EXPECT_EQ(format_duration(0), "0s");
    EXPECT_EQ(format_duration(59), "59s");
    EXPECT_EQ(format_duration(60), "1m 00s");
    EXPECT_EQ(format_duration(312), "5m 12s");
    EXPECT_EQ(format_duration(3600), "1h 00m");
    EXPECT_EQ(format_duration(86399), "23h 59m");
    EXPECT_EQ(format_duration(86400 * 3 + 3600 * 4), "3d 04h");
}

TEST(StatusTextPieces, Rates) {
    EXPECT_EQ(format_rate(512), "512 B/s");
    EXPECT_EQ(format_rate(120 * 1024 * 1024), "120 MiB/s");
    EXPECT_EQ(format_rate(1536 * 1024 * 1024ull), "1.5 GiB/s");
}

}  // namespace
}  // namespace ecraid::testing
