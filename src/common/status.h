// SPDX-License-Identifier: Apache-2.0
// Status and Result: how operating errors travel through the engine.
//
// Operating errors (bad input, I/O failures, corrupt metadata) are values; programmer
// errors are assertions. An OK Status holds no allocation, so returning success is free.
// An error carries a code, the errno that caused it (0 if none) and a message that names
// the value involved and, where there is one, the fix.
#pragma once

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ecraid {

enum class Code : unsigned char {
    kOk = 0,
    kInvalidArgument,  // The caller passed a value outside the allowed range.
    kNotFound,         // A file, member or export does not exist.
    kExists,           // The target already exists or is in use (for example a member of an array).
    kCorruption,       // Stored bytes fail a checksum or a structural check.
    kIoError,          // A system call or device failed.
    kNoSpace,          // A request reaches past the end of a device or array.
    kUnsupported,      // A valid request this build or this array cannot serve.
    kUnavailable,      // Data that is lost because more members failed than the level tolerates.
};

std::string_view code_name(Code code);

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(const Status& other)
        : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}
    Status& operator=(const Status& other) {
        if (this != &other) {
            state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
        }
        return *this;
    }
    Status(Status&&) noexcept = default;
    Status& operator=(Status&&) noexcept = default;

    static Status ok_status() { return Status(); }
    static Status error(Code code, std::string message, int sys_errno = 0) {
        return Status(code, std::move(message), sys_errno);
    }
    // Builds an I/O error from a negative or positive errno value.
    static Status from_errno(int error_number, std::string context) {
        int positive = error_number < 0 ? -error_number : error_number;
        return Status(Code::kIoError, std::move(context) + ": " + std::strerror(positive),
                      positive);
    }

    bool ok() const { return state_ == nullptr; }
    Code code() const { return state_ ? state_->code : Code::kOk; }
    int sys_errno() const { return state_ ? state_->sys_errno : 0; }
    const std::string& message() const;
    std::string to_string() const;

    // Prefixes the message with more context, for example the member path.
    Status with_context(std::string_view context) const;

private:
    struct State {
        Code code;
        int sys_errno;
        std::string message;
    };
    Status(Code code, std::string message, int sys_errno)
        : state_(std::make_unique<State>(State{code, sys_errno, std::move(message)})) {}

    std::unique_ptr<State> state_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

    bool ok() const { return status_.ok(); }
    const Status& status() const { return status_; }
    T& value() & { return *value_; }
    const T& value() const& { return *value_; }
    T&& value() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    T& operator*() { return *value_; }

private:
    Status status_;
    std::optional<T> value_;
};

}  // namespace ecraid

// Returns the Status of an expression early when it is an error.
#define ECRAID_RETURN_IF_ERROR(expression)      \
    do {                                        \
        ::ecraid::Status status_ = (expression); \
        if (!status_.ok()) return status_;      \
    } while (false)
