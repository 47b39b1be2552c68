// SPDX-License-Identifier: Apache-2.0
#include "codec/codec.h"

#include <fmt/format.h>

#include "codec/codec_checks.h"
#include "codec/copy_codec.h"
#include "codec/decode_cache.h"
#include "codec/gf_codec.h"

namespace ecraid {
namespace {

static_assert(kDecodeSourcesMax >= kMemberCountMax - 1, "raid5 on every member needs k = n - 1");
static_assert(kDecodeSourcesMax >= kRsDataMax);
static_assert(kDecodeOutputsMax >= kRsParityMax);
static_assert(kMemberCountMax <= 64, "erasure masks have one bit per position");

Status check_count(Level level, const char* name, uint32_t value, uint32_t minimum,
                   uint32_t maximum) {
    if (value >= minimum && value <= maximum) return Status::ok_status();
    if (minimum == maximum) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("{} codec needs {} = {}, got {}", level_name(level), name,
                                         minimum, value));
    }
    return Status::error(Code::kInvalidArgument,
                         fmt::format("{} codec needs {} between {} and {}, got {}",
                                     level_name(level), name, minimum, maximum, value));
}

// Checks k and m against the ranges Geometry derives for the level.
Status check_shape(Level level, uint32_t k, uint32_t m) {
    switch (level) {
        case Level::kRaid0:
            return Status::error(Code::kInvalidArgument,
                                 "raid0 has no parity, so it has no codec");
        case Level::kRaid1:
            ECRAID_RETURN_IF_ERROR(check_count(level, "k", k, 1, 1));
            return check_count(level, "m", m, 1, kMemberCountMax - 1);
        case Level::kRaid10:
            ECRAID_RETURN_IF_ERROR(check_count(level, "k", k, 1, 1));
            return check_count(level, "m", m, 1, 1);
        case Level::kRaid5:
            ECRAID_RETURN_IF_ERROR(check_count(level, "k", k, 2, kMemberCountMax - 1));
            return check_count(level, "m", m, 1, 1);
        case Level::kRaid6:
            ECRAID_RETURN_IF_ERROR(check_count(level, "k", k, 2, kMemberCountMax - 2));
            return check_count(level, "m", m, 2, 2);
        case Level::kRs:
            ECRAID_RETURN_IF_ERROR(check_count(level, "k", k, 1, kRsDataMax));
            return check_count(level, "m", m, 1, kRsParityMax);
    }
    return Status::error(Code::kInvalidArgument,
                         fmt::format("unknown level value {}", static_cast<unsigned>(level)));
}

}  // namespace

Result<std::unique_ptr<Codec>> Codec::create(Level level, uint32_t k, uint32_t m) {
    ECRAID_RETURN_IF_ERROR(check_shape(level, k, m));

    std::unique_ptr<Codec> codec;
    if (level == Level::kRaid1 || level == Level::kRaid10) {
        codec = std::make_unique<CopyCodec>(m);
    } else {
        codec = std::make_unique<GfCodec>(level, k, m);
    }
    return codec;
}

Result<uint64_t> erasure_mask(uint32_t k, uint32_t m, const uint32_t* erased,
                              uint32_t erased_count) {
    uint64_t mask = 0;
    for (uint32_t i = 0; i < erased_count; ++i) {
        uint32_t position = erased[i];
        if (position >= k + m) {
            return Status::error(Code::kInvalidArgument,
                                 fmt::format("erased position {} is out of range for a {}+{} "
                                             "codeword (positions 0 to {})",
                                             position, k, m, k + m - 1));
        }
        if ((mask >> position & 1) != 0) {
            return Status::error(Code::kInvalidArgument,
                                 fmt::format("erased position {} is listed twice", position));
        }
        mask |= uint64_t{1} << position;
    }
    if (erased_count > m) {
        return Status::error(Code::kUnavailable,
                             fmt::format("{} chunks of a {}+{} codeword are erased, but at most "
                                         "{} can be rebuilt",
                                         erased_count, k, m, m));
    }
    return mask;
}

}  // namespace ecraid
