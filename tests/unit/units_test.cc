// SPDX-License-Identifier: Apache-2.0
#include "common/units.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace ecraid {
namespace {

struct SizeCase {
    const char* text;
    uint64_t bytes;
};

TEST(ParseSize, AcceptsNumbersAndSuffixes) {
    const SizeCase cases[] = {
        {"0", 0},
        {"512", 512},
        {"10B", 10},
        {"4K", 4 * kKiB},
        {"4k", 4 * kKiB},
        {"64KiB", 64 * kKiB},
        {"64kb", 64 * kKiB},
        {"1M", kMiB},
        {"16MiB", 16 * kMiB},
        {"2G", 2 * kGiB},
        {"1gib", kGiB},
        {"3T", 3 * kTiB},
        {"18446744073709551615", UINT64_MAX},
        {"16777215T", 16777215 * kTiB},
    };
    for (const SizeCase& c : cases) {
        Result<uint64_t> size = parse_size(c.text);
        ASSERT_TRUE(size.ok()) << c.text << ": " << size.status().message();
        EXPECT_EQ(*size, c.bytes) << c.text;
    }
}

struct RejectCase {
    const char* text;
    const char* message;
};

TEST(ParseSize, RejectsMalformedInput) {
    const RejectCase cases[] = {
        {"", "invalid size '': expected a number"},
        {"K", "invalid size 'K': expected a number"},
        {"-1", "invalid size '-1': expected a number"},
        {" 4K", "invalid size ' 4K': expected a number"},
        {"4X", "invalid size '4X': unknown suffix 'X'"},
        {"1.5G", "invalid size '1.5G': unknown suffix '.5G'"},
        {"4K ", "invalid size '4K ': unknown suffix 'K '"},
        {"16777216T", "invalid size '16777216T': too large"},
        {"18446744073709551616", "invalid size '18446744073709551616': too large"},
    };
    for (const RejectCase& c : cases) {
        Result<uint64_t> size = parse_size(c.text);
        ASSERT_FALSE(size.ok()) << c.text;
        EXPECT_EQ(size.status().code(), Code::kInvalidArgument) << c.text;
        EXPECT_EQ(size.status().message(), c.message);
    }
}

TEST(ParseDuration, AcceptsUnits) {
    const SizeCase cases[] = {
        {"90", 90}, {"90s", 90}, {"30m", 1800}, {"12h", 43200}, {"7d", 604800}, {"2w", 1209600},
    };
    for (const SizeCase& c : cases) {
        Result<uint64_t> seconds = parse_duration_seconds(c.text);
        ASSERT_TRUE(seconds.ok()) << c.text << ": " << seconds.status().message();
        EXPECT_EQ(*seconds, c.bytes) << c.text;
    }
}

TEST(ParseDuration, RejectsUnknownUnit) {
    Result<uint64_t> seconds = parse_duration_seconds("3y");
    ASSERT_FALSE(seconds.ok());
    EXPECT_EQ(seconds.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(seconds.status().message(), "invalid duration '3y': unknown suffix 'y'");
}

TEST(ParseDuration, RejectsOverflow) {
    Result<uint64_t> seconds = parse_duration_seconds("18446744073709551615d");
    ASSERT_FALSE(seconds.ok());
    EXPECT_EQ(seconds.status().message(), "invalid duration '18446744073709551615d': too large");
}

TEST(FormatSize, UsesBinaryUnits) {
    EXPECT_EQ(format_size(0), "0 B");
    EXPECT_EQ(format_size(1023), "1023 B");
    EXPECT_EQ(format_size(kKiB), "1 KiB");
    EXPECT_EQ(format_size(1536), "1.5 KiB");
    EXPECT_EQ(format_size(64 * kKiB), "64 KiB");
    EXPECT_EQ(format_size(16 * kMiB), "16 MiB");
    EXPECT_EQ(format_size(kGiB + kGiB / 2), "1.5 GiB");
    EXPECT_EQ(format_size(3 * kTiB), "3 TiB");
    EXPECT_EQ(format_size(1024 * kTiB), "1 PiB");
}

TEST(FormatSize, RoundsToOneDecimal) {
    EXPECT_EQ(format_size(kGiB + 1), "1.0 GiB");
    EXPECT_EQ(format_size(kMiB + 100 * kKiB), "1.1 MiB");
}

}  // namespace
}  // namespace ecraid
