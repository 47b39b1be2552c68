// SPDX-License-Identifier: Apache-2.0
#include "meta/uuid.h"

#include <sys/random.h>

#include <cerrno>

#include <fmt/format.h>

namespace ecraid {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool is_dash_position(size_t index) {
    return index == 8 || index == 13 || index == 18 || index == 23;
}

}  // namespace

Result<Uuid> Uuid::generate() {
    Uuid uuid;
    size_t done = 0;
    while (done < uuid.bytes.size()) {
        ssize_t count = ::getrandom(uuid.bytes.data() + done, uuid.bytes.size() - done, 0);
        if (count < 0) {
            if (errno == EINTR) continue;
            return Status::from_errno(errno, "getrandom failed while generating a UUID");
        }
        done += static_cast<size_t>(count);
    }
    uuid.bytes[6] = static_cast<uint8_t>((uuid.bytes[6] & 0x0f) | 0x40);  // Version 4.
    uuid.bytes[8] = static_cast<uint8_t>((uuid.bytes[8] & 0x3f) | 0x80);  // RFC 4122 variant.
    return uuid;
}

Result<Uuid> Uuid::parse(std::string_view text) {
    Uuid uuid;
    size_t byte_index = 0;
    bool valid = text.size() == 36;
    for (size_t i = 0; valid && i < text.size(); ++i) {
        if (is_dash_position(i)) {
            valid = text[i] == '-';
            continue;
        }
        int high = hex_value(text[i]);
        int low = i + 1 < text.size() ? hex_value(text[i + 1]) : -1;
        valid = high >= 0 && low >= 0;
        if (valid) uuid.bytes[byte_index++] = static_cast<uint8_t>(high << 4 | low);
        ++i;
    }
    if (!valid || byte_index != uuid.bytes.size()) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid UUID '{}': expected "
                                         "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex", text));
    }
    return uuid;
}

bool Uuid::is_zero() const {
    for (uint8_t byte : bytes) {
        if (byte != 0) return false;
    }
    return true;
}

std::string Uuid::to_string() const {
    std::string text;
    text.reserve(36);
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text.push_back('-');
        text += fmt::format("{:02x}", bytes[i]);
    }
    return text;
}

}  // namespace ecraid
