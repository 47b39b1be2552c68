// SPDX-License-Identifier: Apache-2.0
// Seed for randomized tests: a fixed default, so runs repeat, that the ECRAID_TEST_SEED
// environment variable overrides (decimal or 0x hex). Tests print it in every failure.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace ecraid::testing {

inline constexpr uint64_t kDefaultTestSeed = 0x5eed'ec0d'e202'4001;

inline uint64_t test_seed() {
    const char* text = std::getenv("ECRAID_TEST_SEED");
    if (text == nullptr || *text == '\0') return kDefaultTestSeed;
    return std::strtoull(text, nullptr, 0);
}

}  // namespace ecraid::testing
