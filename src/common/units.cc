// SPDX-License-Identifier: Apache-2.0
#include "common/units.h"

#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace ecraid {
namespace {

Result<uint64_t> parse_number_with_multiplier(std::string_view text, std::string_view what,
                                              uint64_t (*multiplier_of)(std::string_view)) {
    uint64_t number = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error == std::errc::result_out_of_range) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid {} '{}': too large", what, text));
    }
    if (error != std::errc() || end == text.data()) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid {} '{}': expected a number", what, text));
    }
    std::string_view suffix(end, text.data() + text.size() - end);
    uint64_t multiplier = multiplier_of(suffix);
    if (multiplier == 0) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid {} '{}': unknown suffix '{}'", what, text, suffix));
    }
    if (number != 0 && multiplier > UINT64_MAX / number) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid {} '{}': too large", what, text));
    }
    return number * multiplier;
}

std::string lower(std::string_view text) {
    std::string result(text);
    for (char& c : result) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return result;
}

uint64_t size_multiplier(std::string_view suffix) {
    std::string s = lower(suffix);
    if (s.empty() || s == "b") return 1;
    if (s == "k" || s == "kb" || s == "kib") return kKiB;
    if (s == "m" || s == "mb" || s == "mib") return kMiB;
    if (s == "g" || s == "gb" || s == "gib") return kGiB;
    if (s == "t" || s == "tb" || s == "tib") return kTiB;
    return 0;
}

uint64_t duration_multiplier(std::string_view suffix) {
    std::string s = lower(suffix);
    if (s.empty() || s == "s") return 1;
    if (s == "m") return 60;
    if (s == "h") return 3600;
    if (s == "d") return 86400;
    if (s == "w") return 7 * 86400;
    return 0;
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
    return parse_number_with_multiplier(text, "size", size_multiplier);
}

Result<uint64_t> parse_duration_seconds(std::string_view text) {
    return parse_number_with_multiplier(text, "duration", duration_multiplier);
}

std::string format_size(uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double value = static_cast<double>(bytes);
    int unit = 0;
    while (value >= 1024.0 && unit < 6) {
        value /= 1024.0;
        ++unit;
    }
    if (unit == 0) return fmt::format("{} B", bytes);
    if (value == static_cast<double>(static_cast<uint64_t>(value))) {
        return fmt::format("{} {}", static_cast<uint64_t>(value), kUnits[unit]);
    }
    return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace ecraid
