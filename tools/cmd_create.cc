// SPDX-License-Identifier: Apache-2.0
// `ecraid create`: formats members into a new array.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "array/create.h"
#include "common/units.h"
#include "layout/geometry.h"
#include "meta/superblock.h"
#include "tools/commands.h"

namespace ecraid {
namespace {

struct CreateArguments {
    std::string level;
    uint32_t data_count = 0;
    uint32_t parity_count = 0;
    std::string chunk = "64K";
    std::string size;
    std::string region = "64M";
    std::string name;
    bool force = false;
    std::vector<std::string> members;
};

[[noreturn]] void fail(int exit_code, const std::string& message) {
    std::cerr << "ecraid create: " << message << "\n";
    if (exit_code == kExitUsage) std::cerr << "Run 'ecraid create --help' for the options.\n";
    throw CLI::RuntimeError(exit_code);
}

CLI::Validator size_validator() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            Result<uint64_t> bytes = parse_size(text);
            return bytes.ok() ? std::string() : bytes.status().message();
        },
        "SIZE");
}

CLI::Validator level_validator() {
    return CLI::Validator(
        [](std::string& text) -> std::string {
            Result<Level> level = parse_level(text);
            return level.ok() ? std::string() : level.status().message();
        },
        "LEVEL");
}

// Builds CreateOptions from validated arguments. Rules that involve several options are
// checked here, before any member is opened, and fail with the usage exit code.
CreateOptions build_options(const CreateArguments& arguments) {
    CreateOptions options;
    options.level = parse_level(arguments.level).value();
    bool counts_given = arguments.data_count != 0 || arguments.parity_count != 0;
    if (options.level == Level::kRs) {
        if (arguments.data_count == 0 || arguments.parity_count == 0) {
            fail(kExitUsage, "--level rs needs --data K and --parity M, for example "
                             "--data 4 --parity 2 with 6 members");
        }
    } else if (counts_given) {
        fail(kExitUsage, fmt::format("--data and --parity apply only to --level rs; {} derives "
                                     "them from the number of members",
                                     level_name(options.level)));
    }
    options.data_count = arguments.data_count;
    options.parity_count = arguments.parity_count;
    options.chunk_bytes = parse_size(arguments.chunk).value();
    options.region_bytes = parse_size(arguments.region).value();
    if (!arguments.size.empty()) {
        options.create_size_bytes = parse_size(arguments.size).value();
        if (options.create_size_bytes == 0) fail(kExitUsage, "--size 0: give a non-zero size");
    }
    Status name_status = validate_array_name(arguments.name);
    if (!name_status.ok()) fail(kExitUsage, "--name: " + name_status.message());
    options.name = arguments.name;
    options.force = arguments.force;
    options.member_paths = arguments.members;

    // The shape of the array depends only on the arguments: check it before touching members.
    GeometryConfig config;
    config.level = options.level;
    config.member_count = static_cast<uint32_t>(options.member_paths.size());
    config.data_count = options.data_count;
    config.parity_count = options.parity_count;
    config.chunk_bytes = options.chunk_bytes;
    config.member_data_bytes = options.chunk_bytes;
    Result<Geometry> shape = Geometry::create(config);
    if (!shape.ok()) fail(kExitUsage, shape.status().message());
    return options;
}

void print_summary(const CreateSummary& summary) {
    std::cout << fmt::format("Created array '{}' (UUID {})\n", summary.name,
                             summary.array_uuid.to_string());
    std::cout << fmt::format("  geometry          {}\n", summary.geometry_description);
    std::cout << fmt::format("  capacity          {} bytes ({})\n", summary.capacity_bytes,
                             format_size(summary.capacity_bytes));
    std::cout << fmt::format("  per member        {} bytes of data ({} stripes)\n",
                             summary.member_data_bytes_used,
                             summary.member_data_bytes_used / summary.chunk_bytes);
    std::cout << fmt::format("  write-intent      1 bit per {} region\n",
                             format_size(summary.region_bytes));
    for (const CreatedMember& member : summary.members) {
        std::string notes;
        if (member.created) notes += ", created sparse";
        if (member.overwritten) notes += ", overwrote old metadata";
        if (!member.direct) notes += ", buffered I/O (O_DIRECT unsupported)";
        std::cout << fmt::format("  role {:<2} {}  member {}  data area {} at offset {}{}\n",
                                 member.role, member.path, member.uuid.to_string(),
                                 format_size(member.layout.data_bytes), member.layout.data_offset,
                                 notes);
    }
}

void run_create(const CreateArguments& arguments) {
    CreateOptions options = build_options(arguments);
    Result<CreateSummary> summary = create_array(options);
    if (!summary.ok()) fail(kExitError, "error: " + summary.status().message());
    print_summary(summary.value());
}

}  // namespace

void add_create_command(CLI::App& app) {
    auto arguments = std::make_shared<CreateArguments>();
    CLI::App* command = app.add_subcommand(
        "create", "Format members (files or block devices) into a new array. Member files that "
                  "do not exist are created sparse when --size is given.");

    command->add_option("-l,--level", arguments->level,
                        "RAID level: raid0, raid1, raid10, raid5, raid6 or rs")
        ->required()
        ->check(level_validator());
    command->add_option("-k,--data", arguments->data_count,
                        "rs only: data chunks per stripe (k, 1 to 32)");
    command->add_option("-m,--parity", arguments->parity_count,
                        "rs only: parity chunks per stripe (m, 1 to 8); members = k + m");

    command->add_option("-c,--chunk", arguments->chunk,
                        "chunk size in bytes, a power of two from 4K to 16M (K/M/G/T suffixes)")
        ->capture_default_str()
        ->check(size_validator());
    command->add_option("-s,--size", arguments->size,
                        "size of each member file to create when it does not exist (K/M/G/T "
                        "suffixes); existing members keep their size")
        ->check(size_validator());
    command->add_option("--region", arguments->region,
                        "bytes of data covered by one write-intent bitmap bit, a power of two "
                        "from 1M to 1T (K/M/G/T suffixes)")
        ->capture_default_str()
        ->check(size_validator());

    command->add_option("-n,--name", arguments->name,
                        "array name: up to 63 letters, digits, '.', '_' or '-'");
    command->add_flag("-f,--force", arguments->force,
                      "overwrite members that already belong to an ecraid array");
    command->add_option("members", arguments->members, "member paths, in role order")
        ->required();

    command->callback([arguments] { run_create(*arguments); });
}

}  // namespace ecraid
