// SPDX-License-Identifier: Apache-2.0
// Size and duration parsing for the command line: "64K", "1G", "7d".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ecraid {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;
inline constexpr uint64_t kTiB = 1024 * kGiB;

// Parses a byte count with an optional K, M, G or T suffix (powers of 1024, case-insensitive,
// an optional trailing "iB" or "B"). Rejects empty input, junk and values that overflow 64 bits.
Result<uint64_t> parse_size(std::string_view text);

// Parses a duration such as "90s", "30m", "12h" or "7d" into seconds. A bare number is seconds.
Result<uint64_t> parse_duration_seconds(std::string_view text);

// Formats a byte count for people: "64 MiB", "1.5 GiB".
std::string format_size(uint64_t bytes);

}  // namespace ecraid
