// SPDX-License-Identifier: Apache-2.0
#include "common/status.h"

namespace ecraid {

std::string_view code_name(Code code) {
    switch (code) {
        case Code::kOk: return "ok";
        case Code::kInvalidArgument: return "invalid argument";
        case Code::kNotFound: return "not found";
        case Code::kExists: return "already exists";
        case Code::kCorruption: return "corruption";
        case Code::kIoError: return "I/O error";
        case Code::kNoSpace: return "no space";
        case Code::kUnsupported: return "unsupported";
        case Code::kUnavailable: return "unavailable";
    }
    return "unknown";
}

const std::string& Status::message() const {
    static const std::string kEmpty;
    return state_ ? state_->message : kEmpty;
}

std::string Status::to_string() const {
    if (ok()) return "ok";
    return state_->message;
}

Status Status::with_context(std::string_view context) const {
    if (ok()) return Status();
    return Status(state_->code, std::string(context) + ": " + state_->message, state_->sys_errno);
}

}  // namespace ecraid
