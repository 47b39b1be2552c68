// SPDX-License-Identifier: Apache-2.0
// The control protocol's requests: validating one request object and running it on Admin.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "array/admin.h"

namespace ecraid {

// Runs one request, such as {"command":"fail","member":"d1"}, and returns its response:
// {"ok":true, ...} or {"ok":false,"error":"..."}. Any JSON value is accepted as input: a
// request that is not an object, names an unknown command or field, or lacks a field or has
// one of the wrong type gets an error response and no Admin call.
nlohmann::ordered_json handle_control_request(Admin& admin, const nlohmann::ordered_json& request);

// Builds {"ok":false,"error":message}.
nlohmann::ordered_json control_error_response(std::string_view message);

// Serializes a response as one line, newline included. Invalid UTF-8 in strings (member
// paths are bytes) is replaced by U+FFFD rather than failing.
std::string serialize_control_message(const nlohmann::ordered_json& message);

}  // namespace ecraid
