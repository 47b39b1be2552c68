// SPDX-License-Identifier: Apache-2.0
// Uuid: the 16-byte identifiers of arrays and members, stored byte for byte on disk.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ecraid {

struct Uuid {
    std::array<uint8_t, 16> bytes{};

    // Returns a random version 4 UUID (RFC 4122) from getrandom(2).
    static Result<Uuid> generate();
    // Parses the canonical form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hex, any case).
    static Result<Uuid> parse(std::string_view text);

    bool is_zero() const;
    // Returns the canonical lower-case form.
    std::string to_string() const;

    friend bool operator==(const Uuid&, const Uuid&) = default;
};

}  // namespace ecraid
