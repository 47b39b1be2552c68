// SPDX-License-Identifier: Apache-2.0
// Codec tests against slow references: GF(2^8) arithmetic by log and exp tables, plain XOR,
// and the original bytes of every chunk that a reconstruct rebuilds.
#include "codec/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "codec/decode_cache.h"
#include "common/units.h"
#include "test_seed.h"

namespace ecraid {
namespace {

// GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), generator {02}.
class GaloisField {
public:
    GaloisField() {
        uint32_t x = 1;
        for (uint32_t i = 0; i < 255; ++i) {
            exp_[i] = static_cast<uint8_t>(x);
            exp_[i + 255] = static_cast<uint8_t>(x);
            log_[x] = static_cast<uint8_t>(i);
            x <<= 1;
            if ((x & 0x100) != 0) x ^= 0x11d;
        }
    }

    uint8_t multiply(uint8_t a, uint8_t b) const {
        if (a == 0 || b == 0) return 0;
        return exp_[log_[a] + log_[b]];
    }
    uint8_t inverse(uint8_t a) const { return exp_[(255 - log_[a]) % 255]; }
    uint8_t power_of_generator(uint32_t i) const { return exp_[i % 255]; }

private:
    uint8_t exp_[510] = {};
    uint8_t log_[256] = {};
};

const GaloisField& field() {
    static const GaloisField instance;
    return instance;
}

// `count` chunks of `length` bytes each, in one 64-byte aligned allocation.
class Codeword {
public:
    Codeword(uint32_t count, size_t length)
        : count_(count),
          length_(length),
          storage_(static_cast<uint8_t*>(std::aligned_alloc(64, count * length))),
          pointers_(count) {
        for (uint32_t i = 0; i < count; ++i) pointers_[i] = storage_.get() + i * length;
    }

    uint8_t* chunk(uint32_t position) { return pointers_[position]; }
    uint8_t* const* chunks() { return pointers_.data(); }
    uint8_t* const* from(uint32_t position) { return pointers_.data() + position; }
    uint8_t* bytes() { return storage_.get(); }
    size_t total_bytes() const { return count_ * length_; }

private:
    struct Free {
        void operator()(uint8_t* pointer) const { std::free(pointer); }
    };
    uint32_t count_;
    size_t length_;
    std::unique_ptr<uint8_t[], Free> storage_;
    std::vector<uint8_t*> pointers_;
};

void fill_random(uint8_t* bytes, size_t length, std::mt19937_64* random) {
    for (size_t i = 0; i < length; i += sizeof(uint64_t)) {
        uint64_t word = (*random)();
        std::memcpy(bytes + i, &word, sizeof(word));
    }
}

std::unique_ptr<Codec> make_codec(Level level, uint32_t k, uint32_t m) {
    Result<std::unique_ptr<Codec>> codec = Codec::create(level, k, m);
    EXPECT_TRUE(codec.ok()) << codec.status().message();
    return std::move(codec).value();
}

std::string describe(Level level, uint32_t k, uint32_t m, size_t length, uint64_t seed) {
    return std::string(level_name(level)) + " k=" + std::to_string(k) + " m=" +
           std::to_string(m) + " chunk=" + std::to_string(length) +
           " ECRAID_TEST_SEED=" + std::to_string(seed);
}

std::string describe_erasures(const std::vector<uint32_t>& erased) {
    std::string text = "erased={";
    for (size_t i = 0; i < erased.size(); ++i) {
        if (i > 0) text += ", ";
        text += std::to_string(erased[i]);
    }
    return text + "}";
}

// Returns the offset of the first differing byte, or -1 when the ranges are equal.
int64_t first_difference(const uint8_t* actual, const uint8_t* expected, size_t length) {
    if (std::memcmp(actual, expected, length) == 0) return -1;
    size_t i = 0;
    while (actual[i] == expected[i]) ++i;
    return static_cast<int64_t>(i);
}

// Advances `positions` (ascending, distinct, each < n) to the next combination in
// lexicographic order. Returns false after the last one.
bool next_combination(std::vector<uint32_t>* positions, uint32_t n) {
    uint32_t size = static_cast<uint32_t>(positions->size());
    for (uint32_t i = size; i-- > 0;) {
        if ((*positions)[i] < n - size + i) {
            ++(*positions)[i];
            for (uint32_t j = i + 1; j < size; ++j) (*positions)[j] = (*positions)[j - 1] + 1;
            return true;
        }
    }
    return false;
}

uint64_t binomial(uint32_t n, uint32_t r) {
    uint64_t result = 1;
    for (uint32_t i = 1; i <= r; ++i) result = result * (n - r + i) / i;
    return result;
}

// Erases every pattern of 1..max_erased positions from an encoded random codeword and checks
// that reconstruct brings back every byte of the codeword. Returns the patterns checked.
uint64_t check_every_pattern(const Codec& codec, Level level, size_t length, uint32_t max_erased,
                             uint64_t seed) {
    uint32_t k = codec.data_count();
    uint32_t m = codec.parity_count();
    uint32_t n = k + m;
    std::string context = describe(level, k, m, length, seed);

    Codeword word(n, length);
    std::mt19937_64 random(seed);
    fill_random(word.bytes(), k * length, &random);
    codec.encode(word.chunks(), word.from(k), length);
    Codeword original(n, length);
    std::memcpy(original.bytes(), word.bytes(), word.total_bytes());

    uint64_t patterns = 0;
    for (uint32_t size = 1; size <= max_erased; ++size) {
        std::vector<uint32_t> erased(size);
        std::iota(erased.begin(), erased.end(), 0);
        do {
            for (uint32_t e : erased) std::memset(word.chunk(e), 0x5a, length);
            Status status = codec.reconstruct(word.chunks(), erased.data(), size, length);
            if (!status.ok()) {
                ADD_FAILURE() << context << " " << describe_erasures(erased) << ": "
                              << status.message();
                return patterns;
            }
            if (std::memcmp(word.bytes(), original.bytes(), word.total_bytes()) != 0) {
                for (uint32_t p = 0; p < n; ++p) {
                    int64_t at = first_difference(word.chunk(p), original.chunk(p), length);
                    if (at >= 0) {
                        ADD_FAILURE() << context << " " << describe_erasures(erased)
                                      << ": position " << p << " differs at byte " << at;
                    }
                }
                return patterns;
            }
            ++patterns;
        } while (next_combination(&erased, n));
    }
    return patterns;
}

TEST(Raid5Encode, MatchesXorReference) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    for (uint32_t k : {2u, 3u, 4u, 7u, 16u, 63u}) {
        for (size_t length : {size_t{64}, size_t{4096}, size_t{64000}, size_t{65536}}) {
            SCOPED_TRACE(describe(Level::kRaid5, k, 1, length, seed));
            std::unique_ptr<Codec> codec = make_codec(Level::kRaid5, k, 1);
            Codeword word(k + 1, length);
            fill_random(word.bytes(), k * length, &random);
            codec->encode(word.chunks(), word.from(k), length);

            std::vector<uint8_t> expected(length, 0);
            for (uint32_t i = 0; i < k; ++i) {
                for (size_t b = 0; b < length; ++b) expected[b] ^= word.chunk(i)[b];
            }
            EXPECT_EQ(first_difference(word.chunk(k), expected.data(), length), -1);
        }
    }
}

// P and Q computed byte by byte as Linux md defines them: P = sum D_i, Q = sum g^i * D_i.
TEST(Raid6Encode, MatchesMdSyndromeReference) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    std::vector<uint32_t> data_counts;
    for (uint32_t k = 2; k <= 16; ++k) data_counts.push_back(k);
    data_counts.push_back(62);
    for (uint32_t k : data_counts) {
        for (size_t length : {size_t{64}, size_t{192}, size_t{4096}, size_t{65536}}) {
            SCOPED_TRACE(describe(Level::kRaid6, k, 2, length, seed));
            std::unique_ptr<Codec> codec = make_codec(Level::kRaid6, k, 2);
            Codeword word(k + 2, length);
            fill_random(word.bytes(), k * length, &random);
            codec->encode(word.chunks(), word.from(k), length);

            std::vector<uint8_t> p(length, 0);
            std::vector<uint8_t> q(length, 0);
            for (uint32_t i = 0; i < k; ++i) {
                uint8_t coefficient = field().power_of_generator(i);
                for (size_t b = 0; b < length; ++b) {
                    p[b] ^= word.chunk(i)[b];
                    q[b] ^= field().multiply(coefficient, word.chunk(i)[b]);
                }
            }
            EXPECT_EQ(first_difference(word.chunk(k), p.data(), length), -1) << "P";
            EXPECT_EQ(first_difference(word.chunk(k + 1), q.data(), length), -1) << "Q";
        }
    }
}

// Parity row r of the Cauchy generator gives data chunk j the coefficient 1 / ((k + r) ^ j).
TEST(RsEncode, MatchesCauchyReference) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    const std::pair<uint32_t, uint32_t> shapes[] = {{1, 1}, {1, 3}, {2, 1}, {4, 2},
                                                    {10, 4}, {12, 4}, {32, 8}};
    for (auto [k, m] : shapes) {
        for (size_t length : {size_t{64}, size_t{4096}}) {
            SCOPED_TRACE(describe(Level::kRs, k, m, length, seed));
            std::unique_ptr<Codec> codec = make_codec(Level::kRs, k, m);
            Codeword word(k + m, length);
            fill_random(word.bytes(), k * length, &random);
            codec->encode(word.chunks(), word.from(k), length);

            for (uint32_t r = 0; r < m; ++r) {
                std::vector<uint8_t> expected(length, 0);
                for (uint32_t j = 0; j < k; ++j) {
                    uint8_t coefficient = field().inverse(static_cast<uint8_t>((k + r) ^ j));
                    for (size_t b = 0; b < length; ++b) {
                        expected[b] ^= field().multiply(coefficient, word.chunk(j)[b]);
                    }
                }
                EXPECT_EQ(first_difference(word.chunk(k + r), expected.data(), length), -1)
                    << "parity " << r;
            }
        }
    }
}

TEST(CopyEncode, WritesExactCopies) {
    std::mt19937_64 random(testing::test_seed());
    for (auto [level, m] : {std::pair{Level::kRaid1, 1u}, std::pair{Level::kRaid1, 4u},
                            std::pair{Level::kRaid10, 1u}}) {
        std::unique_ptr<Codec> codec = make_codec(level, 1, m);
        Codeword word(1 + m, 4096);
        fill_random(word.chunk(0), 4096, &random);
        codec->encode(word.chunks(), word.from(1), 4096);
        for (uint32_t i = 1; i <= m; ++i) {
            EXPECT_EQ(std::memcmp(word.chunk(i), word.chunk(0), 4096), 0) << "copy " << i;
        }
    }
}

TEST(CodecEncode, ZeroDataGivesZeroParity) {
    const struct {
        Level level;
        uint32_t k;
        uint32_t m;
    } shapes[] = {{Level::kRaid1, 1, 2}, {Level::kRaid10, 1, 1}, {Level::kRaid5, 4, 1},
                  {Level::kRaid6, 8, 2}, {Level::kRs, 10, 4},   {Level::kRs, 32, 8}};
    for (const auto& shape : shapes) {
        std::unique_ptr<Codec> codec = make_codec(shape.level, shape.k, shape.m);
        Codeword word(shape.k + shape.m, 4096);
        std::memset(word.bytes(), 0, shape.k * 4096);
        std::memset(word.chunk(shape.k), 0xff, shape.m * 4096);
        codec->encode(word.chunks(), word.from(shape.k), 4096);
        std::vector<uint8_t> zeros(shape.m * 4096, 0);
        EXPECT_EQ(std::memcmp(word.chunk(shape.k), zeros.data(), zeros.size()), 0)
            << level_name(shape.level) << " " << shape.k << "+" << shape.m;
    }
}

struct RsShape {
    uint32_t k;
    uint32_t m;
    size_t chunk_bytes;
};

void PrintTo(const RsShape& shape, std::ostream* out) {
    *out << "rs " << shape.k << "+" << shape.m << " with " << shape.chunk_bytes << "-byte chunks";
}

class RsReconstructEveryPattern : public ::testing::TestWithParam<RsShape> {};

TEST_P(RsReconstructEveryPattern, RebuildsOriginalBytes) {
    const RsShape shape = GetParam();
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, shape.k, shape.m);
    uint64_t patterns = check_every_pattern(*codec, Level::kRs, shape.chunk_bytes, shape.m,
                                            testing::test_seed());

    uint64_t expected = 0;
    for (uint32_t size = 1; size <= shape.m; ++size) expected += binomial(shape.k + shape.m, size);
    EXPECT_EQ(patterns, expected);
}

const RsShape kExhaustiveShapes[] = {
    {2, 1, 4 * kKiB},  {2, 1, 64 * kKiB},  {4, 2, 4 * kKiB},  {4, 2, 64 * kKiB},
    {6, 3, 4 * kKiB},  {6, 3, 64 * kKiB},  {8, 3, 4 * kKiB},  {8, 3, 64 * kKiB},
    {10, 4, 4 * kKiB}, {10, 4, 64 * kKiB}, {12, 4, 4 * kKiB}, {12, 4, 64 * kKiB},
};

INSTANTIATE_TEST_SUITE_P(Exhaustive, RsReconstructEveryPattern,
                         ::testing::ValuesIn(kExhaustiveShapes),
                         [](const ::testing::TestParamInfo<RsShape>& shape_info) {
                             const RsShape& shape = shape_info.param;
                             return std::to_string(shape.k) + "plus" + std::to_string(shape.m) +
                                    "_" + std::to_string(shape.chunk_bytes / kKiB) + "KiB";
                         });

TEST(Raid6Reconstruct, EveryOneAndTwoErasurePattern) {
    const uint64_t seed = testing::test_seed();
    for (uint32_t k : {2u, 3u, 4u, 5u, 8u, 16u, 62u}) {
        std::unique_ptr<Codec> codec = make_codec(Level::kRaid6, k, 2);
        uint64_t patterns = check_every_pattern(*codec, Level::kRaid6, 4 * kKiB, 2, seed);
        EXPECT_EQ(patterns, binomial(k + 2, 1) + binomial(k + 2, 2)) << "k=" << k;
    }
    std::unique_ptr<Codec> codec = make_codec(Level::kRaid6, 8, 2);
    EXPECT_EQ(check_every_pattern(*codec, Level::kRaid6, 64 * kKiB, 2, seed), 55u);
}

TEST(Raid5Reconstruct, EverySingleErasure) {
    const uint64_t seed = testing::test_seed();
    for (uint32_t k : {2u, 3u, 4u, 9u, 63u}) {
        std::unique_ptr<Codec> codec = make_codec(Level::kRaid5, k, 1);
        EXPECT_EQ(check_every_pattern(*codec, Level::kRaid5, 4 * kKiB, 1, seed), k + 1)
            << "k=" << k;
    }
}

TEST(CopyReconstruct, EveryPatternFromAnySurvivor) {
    const uint64_t seed = testing::test_seed();
    for (auto [level, m] : {std::pair{Level::kRaid1, 1u}, std::pair{Level::kRaid1, 2u},
                            std::pair{Level::kRaid1, 3u}, std::pair{Level::kRaid10, 1u}}) {
        std::unique_ptr<Codec> codec = make_codec(level, 1, m);
        uint64_t expected = (uint64_t{1} << (m + 1)) - 2;  // Every subset but none and all.
        EXPECT_EQ(check_every_pattern(*codec, level, 4 * kKiB, m, seed), expected)
            << level_name(level) << " m=" << m;
    }
}

TEST(RsReconstruct, MaximumShapeOnRandomPatterns) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    const uint32_t k = kRsDataMax;
    const uint32_t m = kRsParityMax;
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, k, m);
    for (size_t length : {4 * kKiB, 64 * kKiB}) {
        std::string context = describe(Level::kRs, k, m, length, seed);
        Codeword word(k + m, length);
        fill_random(word.bytes(), k * length, &random);
        codec->encode(word.chunks(), word.from(k), length);
        Codeword original(k + m, length);
        std::memcpy(original.bytes(), word.bytes(), word.total_bytes());

        std::vector<uint32_t> all_positions(k + m);
        std::iota(all_positions.begin(), all_positions.end(), 0);
        for (int round = 0; round < 200; ++round) {
            std::shuffle(all_positions.begin(), all_positions.end(), random);
            uint32_t size = 1 + static_cast<uint32_t>(random() % m);
            std::vector<uint32_t> erased(all_positions.begin(), all_positions.begin() + size);
            for (uint32_t e : erased) std::memset(word.chunk(e), 0, length);

            Status status = codec->reconstruct(word.chunks(), erased.data(), size, length);
            ASSERT_TRUE(status.ok()) << context << " " << describe_erasures(erased) << ": "
                                     << status.message();
            for (uint32_t e : erased) {
                ASSERT_EQ(first_difference(word.chunk(e), original.chunk(e), length), -1)
                    << context << " " << describe_erasures(erased) << ": position " << e;
            }
        }
    }
}

TEST(CodecUpdate, MatchesFullEncodeOnRandomShapes) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    for (int round = 0; round < 120; ++round) {
        Level level = Level::kRs;
        uint32_t k = 1;
        uint32_t m = 1;
        switch (round % 5) {
            case 0:
                level = Level::kRaid5;
                k = 2 + static_cast<uint32_t>(random() % 20);
                break;
            case 1:
                level = Level::kRaid6;
                k = 2 + static_cast<uint32_t>(random() % 20);
                m = 2;
                break;
            case 2:
                k = 1 + static_cast<uint32_t>(random() % kRsDataMax);
                m = 1 + static_cast<uint32_t>(random() % kRsParityMax);
                break;
            case 3:
                level = Level::kRaid1;
                m = 1 + static_cast<uint32_t>(random() % 4);
                break;
            default:
                level = Level::kRaid10;
                break;
        }
        // Up to 40 KiB, so lengths cross the 16 KiB pieces that update() works in.
        size_t length = 64 * (1 + random() % 640);
        SCOPED_TRACE(describe(level, k, m, length, seed) + " round " + std::to_string(round));
        std::unique_ptr<Codec> codec = make_codec(level, k, m);

        Codeword word(k + m, length);
        fill_random(word.bytes(), k * length, &random);
        codec->encode(word.chunks(), word.from(k), length);
        Codeword expected(k + m, length);
        Codeword new_data(1, length);
        for (int change = 0; change < 3; ++change) {
            uint32_t position = static_cast<uint32_t>(random() % k);
            fill_random(new_data.bytes(), length, &random);
            codec->update(position, word.chunk(position), new_data.bytes(), word.from(k), length);
            std::memcpy(word.chunk(position), new_data.bytes(), length);

            std::memcpy(expected.bytes(), word.bytes(), k * length);
            codec->encode(expected.chunks(), expected.from(k), length);
            for (uint32_t i = 0; i < m; ++i) {
                ASSERT_EQ(first_difference(word.chunk(k + i), expected.chunk(k + i), length), -1)
                    << "parity " << i << " after change " << change << " at position "
                    << position;
            }
        }
    }
}

TEST(CodecVerify, DetectsFlippedByte) {
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    const struct {
        Level level;
        uint32_t k;
        uint32_t m;
    } shapes[] = {{Level::kRaid1, 1, 2}, {Level::kRaid10, 1, 1}, {Level::kRaid5, 4, 1},
                  {Level::kRaid6, 6, 2}, {Level::kRs, 10, 4},   {Level::kRs, 1, 2}};
    const size_t length = 8 * kKiB;
    for (const auto& shape : shapes) {
        SCOPED_TRACE(describe(shape.level, shape.k, shape.m, length, seed));
        std::unique_ptr<Codec> codec = make_codec(shape.level, shape.k, shape.m);
        uint32_t n = shape.k + shape.m;
        Codeword word(n, length);
        Codeword scratch(shape.m, length);
        fill_random(word.bytes(), shape.k * length, &random);
        codec->encode(word.chunks(), word.from(shape.k), length);
        ASSERT_TRUE(codec->verify(word.chunks(), length, scratch.bytes()));

        for (uint32_t p = 0; p < n; ++p) {
            size_t offset = random() % length;
            word.chunk(p)[offset] ^= 0x01;
            EXPECT_FALSE(codec->verify(word.chunks(), length, scratch.bytes()))
                << "position " << p << " byte " << offset;
            word.chunk(p)[offset] ^= 0x01;
        }
        EXPECT_TRUE(codec->verify(word.chunks(), length, scratch.bytes()));
    }
}

TEST(CodecReconstruct, RejectsMoreErasuresThanParity) {
    const struct {
        Level level;
        uint32_t k;
        uint32_t m;
    } shapes[] = {{Level::kRaid1, 1, 2}, {Level::kRaid10, 1, 1}, {Level::kRaid5, 4, 1},
                  {Level::kRaid6, 4, 2}, {Level::kRs, 10, 4}};
    for (const auto& shape : shapes) {
        std::unique_ptr<Codec> codec = make_codec(shape.level, shape.k, shape.m);
        Codeword word(shape.k + shape.m, 4096);
        std::vector<uint32_t> erased(shape.m + 1);
        std::iota(erased.begin(), erased.end(), 0);
        Status status = codec->reconstruct(word.chunks(), erased.data(), shape.m + 1, 4096);
        EXPECT_EQ(status.code(), Code::kUnavailable) << level_name(shape.level);
    }

    std::unique_ptr<Codec> codec = make_codec(Level::kRaid6, 4, 2);
    Codeword word(6, 4096);
    const uint32_t erased[] = {0, 4, 5};
    Status status = codec->reconstruct(word.chunks(), erased, 3, 4096);
    EXPECT_EQ(status.message(), "3 chunks of a 4+2 codeword are erased, but at most 2 can be "
                                "rebuilt");
}

TEST(CodecReconstruct, RejectsInvalidPositions) {
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 4, 2);
    Codeword word(6, 4096);

    const uint32_t out_of_range[] = {6};
    Status status = codec->reconstruct(word.chunks(), out_of_range, 1, 4096);
    EXPECT_EQ(status.code(), Code::kInvalidArgument);
    EXPECT_EQ(status.message(),
              "erased position 6 is out of range for a 4+2 codeword (positions 0 to 5)");

    const uint32_t repeated[] = {1, 1};
    status = codec->reconstruct(word.chunks(), repeated, 2, 4096);
    EXPECT_EQ(status.code(), Code::kInvalidArgument);
    EXPECT_EQ(status.message(), "erased position 1 is listed twice");

    std::unique_ptr<Codec> mirror = make_codec(Level::kRaid1, 1, 1);
    status = mirror->reconstruct(word.chunks(), out_of_range, 1, 4096);
    EXPECT_EQ(status.code(), Code::kInvalidArgument);
}

TEST(CodecReconstruct, NoErasuresChangesNothing) {
    std::mt19937_64 random(testing::test_seed());
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 4, 2);
    Codeword word(6, 4096);
    fill_random(word.bytes(), word.total_bytes(), &random);
    std::vector<uint8_t> before(word.bytes(), word.bytes() + word.total_bytes());
    EXPECT_TRUE(codec->reconstruct(word.chunks(), nullptr, 0, 4096).ok());
    EXPECT_EQ(std::memcmp(word.bytes(), before.data(), before.size()), 0);
}

TEST(DecodeCache, ReusesPlanForRepeatedPattern) {
    std::mt19937_64 random(testing::test_seed());
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 6, 3);
    Codeword word(9, 4096);
    fill_random(word.bytes(), 6 * 4096, &random);
    codec->encode(word.chunks(), word.from(6), 4096);
    Codeword original(9, 4096);
    std::memcpy(original.bytes(), word.bytes(), word.total_bytes());

    const DecodeCache& cache = DecodeCache::for_this_thread();
    const uint32_t erased[] = {7, 1};
    uint64_t built_before = cache.plans_built();
    for (int i = 0; i < 10; ++i) {
        std::memset(word.chunk(1), 0, 4096);
        std::memset(word.chunk(7), 0, 4096);
        ASSERT_TRUE(codec->reconstruct(word.chunks(), erased, 2, 4096).ok());
        ASSERT_EQ(std::memcmp(word.bytes(), original.bytes(), word.total_bytes()), 0);
    }
    EXPECT_EQ(cache.plans_built(), built_before + 1);
}

TEST(DecodeCache, KeepsCodecsWithEqualShapesApart) {
    // raid6 4+2 and rs 4+2 decode the same erasure pattern with different matrices.
    std::mt19937_64 random(testing::test_seed());
    std::unique_ptr<Codec> codecs[] = {make_codec(Level::kRaid6, 4, 2),
                                       make_codec(Level::kRs, 4, 2)};
    Codeword words[] = {Codeword(6, 4096), Codeword(6, 4096)};
    Codeword originals[] = {Codeword(6, 4096), Codeword(6, 4096)};
    for (int c = 0; c < 2; ++c) {
        fill_random(words[c].bytes(), 4 * 4096, &random);
        codecs[c]->encode(words[c].chunks(), words[c].from(4), 4096);
        std::memcpy(originals[c].bytes(), words[c].bytes(), words[c].total_bytes());
    }

    const uint32_t erased[] = {0, 2};
    for (int round = 0; round < 6; ++round) {
        int c = round % 2;
        std::memset(words[c].chunk(0), 0, 4096);
        std::memset(words[c].chunk(2), 0, 4096);
        ASSERT_TRUE(codecs[c]->reconstruct(words[c].chunks(), erased, 2, 4096).ok());
        EXPECT_EQ(std::memcmp(words[c].bytes(), originals[c].bytes(), 6 * 4096), 0)
            << "codec " << c << " round " << round;
    }
}

TEST(DecodeCache, StaysCorrectAfterEvictions) {
    // 231 patterns exceed the 128 cached plans, so the second pass mixes hits and rebuilt plans.
    static_assert(DecodeCache::kSetCount * DecodeCache::kWayCount < 231);
    const uint64_t seed = testing::test_seed();
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 8, 3);
    EXPECT_EQ(check_every_pattern(*codec, Level::kRs, 4 * kKiB, 3, seed), 231u);
    EXPECT_EQ(check_every_pattern(*codec, Level::kRs, 4 * kKiB, 3, seed + 1), 231u);
}

TEST(DecodeCache, EachThreadDecodesIndependently) {
    const uint64_t seed = testing::test_seed();
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 6, 3);
    uint64_t patterns[2] = {};
    std::thread threads[2];
    for (int t = 0; t < 2; ++t) {
        threads[t] = std::thread([&, t] {
            patterns[t] = check_every_pattern(*codec, Level::kRs, 4 * kKiB, 3, seed + t);
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(patterns[0], 129u);
    EXPECT_EQ(patterns[1], 129u);
}

struct CreateRejectCase {
    Level level;
    uint32_t k;
    uint32_t m;
    const char* message;
};

TEST(CodecCreate, RejectsInvalidShapes) {
    const CreateRejectCase cases[] = {
        {Level::kRaid0, 4, 0, "raid0 has no parity, so it has no codec"},
        {Level::kRaid1, 2, 1, "raid1 codec needs k = 1, got 2"},
        {Level::kRaid1, 1, 0, "raid1 codec needs m between 1 and 63, got 0"},
        {Level::kRaid1, 1, 64, "raid1 codec needs m between 1 and 63, got 64"},
        {Level::kRaid10, 1, 2, "raid10 codec needs m = 1, got 2"},
        {Level::kRaid5, 1, 1, "raid5 codec needs k between 2 and 63, got 1"},
        {Level::kRaid5, 64, 1, "raid5 codec needs k between 2 and 63, got 64"},
        {Level::kRaid5, 4, 2, "raid5 codec needs m = 1, got 2"},
        {Level::kRaid6, 1, 2, "raid6 codec needs k between 2 and 62, got 1"},
        {Level::kRaid6, 4, 1, "raid6 codec needs m = 2, got 1"},
        {Level::kRs, 0, 2, "rs codec needs k between 1 and 32, got 0"},
        {Level::kRs, 33, 2, "rs codec needs k between 1 and 32, got 33"},
        {Level::kRs, 4, 0, "rs codec needs m between 1 and 8, got 0"},
        {Level::kRs, 4, 9, "rs codec needs m between 1 and 8, got 9"},
    };
    for (const CreateRejectCase& c : cases) {
        Result<std::unique_ptr<Codec>> codec = Codec::create(c.level, c.k, c.m);
        ASSERT_FALSE(codec.ok()) << c.message;
        EXPECT_EQ(codec.status().code(), Code::kInvalidArgument) << c.message;
        EXPECT_EQ(codec.status().message(), c.message);
    }
}

TEST(CodecCreate, ReportsShape) {
    std::unique_ptr<Codec> codec = make_codec(Level::kRs, 10, 4);
    EXPECT_EQ(codec->data_count(), 10u);
    EXPECT_EQ(codec->parity_count(), 4u);
}

}  // namespace
}  // namespace ecraid
