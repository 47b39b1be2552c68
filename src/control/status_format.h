// SPDX-License-Identifier: Apache-2.0
// The array status as the control protocol's JSON and as text for people.
//
// to_json and status_from_json are inverses, so a client can print the text form of a status
// it received as JSON. docs/control.md lists the JSON fields.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "array/admin.h"
#include "common/status.h"

namespace ecraid {

// The status object: name, uuid, state, level, size, chunk_bytes, geometry, data_count,
// parity_count, failures_tolerated, event_counter, listen, members, rebuild (present only
// while a rebuild runs) and scrub. Rates are bytes per second, progress is 0 to 1.
nlohmann::ordered_json to_json(const ArrayStatusView& status);
nlohmann::ordered_json to_json(const ScrubStatusView& scrub);

// Reads what to_json wrote. Returns kInvalidArgument naming the first missing or mistyped
// field, such as "members[2].errors.read". Fields it does not know are ignored, so that an
// older client can read a newer server's status.
Result<ArrayStatusView> status_from_json(const nlohmann::ordered_json& object);
Result<ScrubStatusView> scrub_status_from_json(const nlohmann::ordered_json& object);

// Formats the status like `zpool status`: a header, the rebuild and scrub progress, and a
// table with one line per member and its error counters. Ends with a newline.
std::string format_status_text(const ArrayStatusView& status);
// Formats the scrub part alone, as `ecraid scrub status` prints it. Ends with a newline.
std::string format_scrub_text(const ScrubStatusView& scrub);

// Text pieces, public for the tests.
// "[#####...............]" with `width` characters between the brackets; the fraction is
// clamped to 0..1.
std::string format_progress_bar(double fraction, int width);
// "45s", "5m 12s", "2h 03m", "3d 04h".
std::string format_duration(uint64_t seconds);
// "120 MiB/s".
std::string format_rate(uint64_t bytes_per_second);

}  // namespace ecraid
