// SPDX-License-Identifier: Apache-2.0
// Codec and checksum throughput: every engine call beside a baseline that calls ISA-L or
// libxxhash directly on the same buffers, so the engine's overhead is the difference.
//
// Bytes per iteration are the k data chunks read by encode, the k surviving chunks read by
// decode, and the 4 KiB block for checksums. Buffers stay in L2, so these are warm-cache
// figures. The UpperState cases measure how much SSE code slows down when it runs after an
// AVX2 or AVX-512 kernel that leaves the upper register halves dirty, with and without
// vzeroupper.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <isa-l/erasure_code.h>
#include <isa-l/raid.h>
#include <xxhash.h>

// Keeps XXH3_64bits_withSeed the plain SSE2 function instead of a macro for the dispatcher.
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "codec/codec.h"
#include "integrity/checksum.h"
#include "layout/geometry.h"

namespace ecraid {
namespace {

// One codeword of k + m chunks in a 64-byte aligned allocation, data filled with random bytes
// and parity encoded by the engine.
class Codeword {
public:
    Codeword(Level level, uint32_t k, uint32_t m, size_t chunk_bytes)
        : k_(k),
          m_(m),
          chunk_bytes_(chunk_bytes),
          storage_(static_cast<uint8_t*>(std::aligned_alloc(64, (k + m) * chunk_bytes))),
          chunks_(k + m) {
        for (uint32_t i = 0; i < k + m; ++i) chunks_[i] = storage_.get() + i * chunk_bytes;
        std::mt19937_64 random(k * 100 + m);
        for (size_t i = 0; i < k * chunk_bytes; i += sizeof(uint64_t)) {
            uint64_t word = random();
            std::memcpy(storage_.get() + i, &word, sizeof(word));
        }
        codec_ = std::move(Codec::create(level, k, m)).value();
        codec_->encode(chunks_.data(), chunks_.data() + k, chunk_bytes);
    }

    const Codec& codec() const { return *codec_; }
    uint8_t** chunks() { return chunks_.data(); }
    uint8_t** parity() { return chunks_.data() + k_; }
    uint32_t k() const { return k_; }
    uint32_t m() const { return m_; }
    size_t chunk_bytes() const { return chunk_bytes_; }
    int64_t data_bytes() const { return static_cast<int64_t>(k_ * chunk_bytes_); }

private:
    struct Free {
        void operator()(uint8_t* pointer) const { std::free(pointer); }
    };
    uint32_t k_;
    uint32_t m_;
    size_t chunk_bytes_;
    std::unique_ptr<uint8_t[], Free> storage_;
    std::vector<uint8_t*> chunks_;
    std::unique_ptr<Codec> codec_;
};

// The generator matrix the engine uses for each level, built here independently for the
// baselines: identity rows, then P = all ones and Q = {02}^j for raid6, Cauchy rows for rs.
std::vector<uint8_t> generator_matrix(Level level, uint32_t k, uint32_t m) {
    std::vector<uint8_t> matrix((k + m) * k, 0);
    if (level == Level::kRs) {
        gf_gen_cauchy1_matrix(matrix.data(), static_cast<int>(k + m), static_cast<int>(k));
        return matrix;
    }
    for (uint32_t i = 0; i < k; ++i) matrix[i * k + i] = 1;
    for (uint32_t j = 0; j < k; ++j) matrix[k * k + j] = 1;
    uint8_t power = 1;
    for (uint32_t j = 0; j < k && m == 2; ++j) {
        matrix[(k + 1) * k + j] = power;
        power = gf_mul(power, 2);
    }
    return matrix;
}

// ISA-L tables that rebuild data chunks 0..erased-1 from the next k positions, prepared once
// outside the timed loop as a hand-written decoder would.
std::vector<uint8_t> decode_tables(Level level, uint32_t k, uint32_t m, uint32_t erased) {
    std::vector<uint8_t> generator = generator_matrix(level, k, m);
    std::vector<uint8_t> sources(k * k);
    std::memcpy(sources.data(), &generator[erased * k], k * k);
    std::vector<uint8_t> inverse(k * k);
    if (gf_invert_matrix(sources.data(), inverse.data(), static_cast<int>(k)) != 0) std::abort();
    std::vector<uint8_t> tables(32 * k * erased);
    ec_init_tables(static_cast<int>(k), static_cast<int>(erased), inverse.data(), tables.data());
    return tables;
}

struct Shape {
    Level level;
    uint32_t k;
    uint32_t m;
    size_t chunk_bytes;
};

void encode_engine(benchmark::State& state, Shape shape) {
    Codeword word(shape.level, shape.k, shape.m, shape.chunk_bytes);
    for (auto _ : state) {
        word.codec().encode(word.chunks(), word.parity(), shape.chunk_bytes);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * word.data_bytes());
}

void encode_isal(benchmark::State& state, Shape shape) {
    Codeword word(shape.level, shape.k, shape.m, shape.chunk_bytes);
    int k = static_cast<int>(shape.k);
    int m = static_cast<int>(shape.m);
    int len = static_cast<int>(shape.chunk_bytes);
    std::vector<uint8_t> generator = generator_matrix(shape.level, shape.k, shape.m);
    std::vector<uint8_t> tables(32 * shape.k * shape.m);
    ec_init_tables(k, m, &generator[shape.k * shape.k], tables.data());
    std::vector<void*> vectors(word.chunks(), word.chunks() + k + m);

    for (auto _ : state) {
        if (shape.level == Level::kRaid5) {
            benchmark::DoNotOptimize(xor_gen(k + m, len, vectors.data()));
        } else if (shape.level == Level::kRaid6) {
            benchmark::DoNotOptimize(pq_gen(k + m, len, vectors.data()));
        } else {
            ec_encode_data(len, k, m, tables.data(), word.chunks(), word.parity());
        }
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * word.data_bytes());
}

// Decode rebuilds as many data chunks as the code allows: data positions 0..m-1.
void decode_engine(benchmark::State& state, Shape shape) {
    Codeword word(shape.level, shape.k, shape.m, shape.chunk_bytes);
    std::vector<uint32_t> erased(shape.m);
    for (uint32_t i = 0; i < shape.m; ++i) erased[i] = i;

    for (auto _ : state) {
        Status status =
            word.codec().reconstruct(word.chunks(), erased.data(), shape.m, shape.chunk_bytes);
        if (!status.ok()) state.SkipWithError(status.message().c_str());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * word.data_bytes());
}

// Cycles through every pattern of m erased positions. There are more patterns than the decode
// cache has slots (1001 for rs 10+4), so every call builds its plan: the cost of a cache miss.
void decode_engine_uncached(benchmark::State& state, Shape shape) {
    Codeword word(shape.level, shape.k, shape.m, shape.chunk_bytes);
    std::vector<uint32_t> patterns;
    uint32_t n = shape.k + shape.m;
    for (uint64_t mask = 0; mask < (uint64_t{1} << n); ++mask) {
        if (static_cast<uint32_t>(__builtin_popcountll(mask)) != shape.m) continue;
        for (uint32_t p = 0; p < n; ++p) {
            if ((mask >> p & 1) != 0) patterns.push_back(p);
        }
    }
    size_t pattern_count = patterns.size() / shape.m;

    size_t next = 0;
    for (auto _ : state) {
        Status status = word.codec().reconstruct(word.chunks(), &patterns[next * shape.m],
                                                 shape.m, shape.chunk_bytes);
        if (!status.ok()) state.SkipWithError(status.message().c_str());
        next = (next + 1) % pattern_count;
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * word.data_bytes());
}

void decode_isal(benchmark::State& state, Shape shape) {
    Codeword word(shape.level, shape.k, shape.m, shape.chunk_bytes);
    int k = static_cast<int>(shape.k);
    int m = static_cast<int>(shape.m);
    int len = static_cast<int>(shape.chunk_bytes);
    std::vector<uint8_t> tables = decode_tables(shape.level, shape.k, shape.m, shape.m);
    uint8_t** sources = word.chunks() + m;
    uint8_t** outputs = word.chunks();
    std::vector<void*> xor_vectors(sources, sources + k);
    xor_vectors.push_back(outputs[0]);

    for (auto _ : state) {
        if (shape.level == Level::kRaid5) {
            // A raid5 decoder XORs the survivors, as the engine does.
            benchmark::DoNotOptimize(xor_gen(k + 1, len, xor_vectors.data()));
        } else {
            ec_encode_data(len, k, m, tables.data(), sources, outputs);
        }
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * word.data_bytes());
}

void add_level_benchmarks(const char* level_name, Shape shape) {
    std::string name = std::string(level_name) + "_" + std::to_string(shape.k) + "+" +
                       std::to_string(shape.m) + "_" +
                       std::to_string(shape.chunk_bytes / 1024) + "KiB";
    benchmark::RegisterBenchmark(("Encode/" + name + "/engine").c_str(), encode_engine, shape);
    benchmark::RegisterBenchmark(("Encode/" + name + "/isal").c_str(), encode_isal, shape);
    benchmark::RegisterBenchmark(("Decode/" + name + "/engine").c_str(), decode_engine, shape);
    benchmark::RegisterBenchmark(("Decode/" + name + "/isal").c_str(), decode_isal, shape);
}

struct alignas(64) Block {
    uint8_t bytes[kBlockBytes];
};

Block random_block() {
    Block block;
    std::mt19937_64 random(42);
    for (size_t i = 0; i < kBlockBytes; i += sizeof(uint64_t)) {
        uint64_t word = random();
        std::memcpy(block.bytes + i, &word, sizeof(word));
    }
    return block;
}

void checksum_engine(benchmark::State& state) {
    Block block = random_block();
    uint64_t address = 0;
    for (auto _ : state) benchmark::DoNotOptimize(block_checksum(block.bytes, address++));
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

void checksum_xxh3_dispatch(benchmark::State& state) {
    Block block = random_block();
    uint64_t address = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(
            XXH3_64bits_withSeed_dispatch(block.bytes, kBlockBytes, address++));
    }
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

// Plain XXH3_64bits_withSeed from libxxhash is its SSE2 build, shown for comparison.
void checksum_xxh3_sse2(benchmark::State& state) {
    Block block = random_block();
    uint64_t address = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(XXH3_64bits_withSeed(block.bytes, kBlockBytes, address++));
    }
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

// A zero block is the slowest input for block_is_zero: every byte must be read.
void zero_check_engine(benchmark::State& state) {
    Block block = {};
    for (auto _ : state) {
        benchmark::DoNotOptimize(block.bytes);
        benchmark::DoNotOptimize(block_is_zero(block.bytes));
    }
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

void zero_check_memcmp(benchmark::State& state) {
    static const Block kZero = {};
    Block block = {};
    for (auto _ : state) {
        benchmark::DoNotOptimize(block.bytes);
        benchmark::DoNotOptimize(std::memcmp(block.bytes, kZero.bytes, kBlockBytes) == 0);
    }
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

// Legacy-encoded SSE2 (this file is built for plain x86-64): XORs 16 KiB into a sum.
__attribute__((noinline)) uint64_t sse_xor_sum(const uint8_t* a, const uint8_t* b, size_t length) {
    __m128i sum = _mm_setzero_si128();
    for (size_t i = 0; i < length; i += 16) {
        __m128i x = _mm_load_si128(reinterpret_cast<const __m128i*>(a + i));
        __m128i y = _mm_load_si128(reinterpret_cast<const __m128i*>(b + i));
        sum = _mm_add_epi64(sum, _mm_xor_si128(x, y));
    }
    return static_cast<uint64_t>(_mm_cvtsi128_si64(sum));
}

__attribute__((target("avx"))) void zero_upper() { _mm256_zeroupper(); }

enum class Dirty { kNone, kXxh3, kIsal };

// Each iteration runs one 4 KiB dirtying call (or none) and then 16 KiB of SSE2 work.
void upper_state(benchmark::State& state, Dirty dirty, bool clear) {
    constexpr size_t kSseBytes = 16 * 1024;
    struct alignas(64) Buffers {
        uint8_t a[kSseBytes];
        uint8_t b[kSseBytes];
        uint8_t parity[kBlockBytes];
    };
    auto buffers = std::make_unique<Buffers>();
    Block block = random_block();
    void* vectors[3] = {block.bytes, buffers->a, buffers->parity};
    for (auto _ : state) {
        if (dirty == Dirty::kXxh3) {
            benchmark::DoNotOptimize(XXH3_64bits_withSeed_dispatch(block.bytes, kBlockBytes, 1));
        } else if (dirty == Dirty::kIsal) {
            benchmark::DoNotOptimize(xor_gen(3, kBlockBytes, vectors));
        }
        if (clear) zero_upper();
        benchmark::DoNotOptimize(sse_xor_sum(buffers->a, buffers->b, kSseBytes));
    }
    state.SetBytesProcessed(state.iterations() * kSseBytes);
}

// The alternative to memcmp: OR eight 8-byte words per 64-byte line, leaving at the first
// non-zero line.
__attribute__((noinline)) bool words_are_zero(const uint8_t* bytes) {
    for (size_t line = 0; line < kBlockBytes; line += 64) {
        uint64_t words[8];
        std::memcpy(words, bytes + line, sizeof(words));
        uint64_t any = 0;
        for (uint64_t word : words) any |= word;
        if (any != 0) return false;
    }
    return true;
}

void zero_check_word_or(benchmark::State& state) {
    Block block = {};
    for (auto _ : state) {
        benchmark::DoNotOptimize(block.bytes);
        benchmark::DoNotOptimize(words_are_zero(block.bytes));
    }
    state.SetBytesProcessed(state.iterations() * kBlockBytes);
}

void register_all() {
    add_level_benchmarks("raid5", Shape{Level::kRaid5, 4, 1, 64 * 1024});
    add_level_benchmarks("raid6", Shape{Level::kRaid6, 8, 2, 64 * 1024});
    add_level_benchmarks("rs", Shape{Level::kRs, 10, 4, 64 * 1024});
    // Small chunks make the engine's fixed cost per call (cache lookup, pointer arrays,
    // vzeroupper) easier to see.
    add_level_benchmarks("rs", Shape{Level::kRs, 10, 4, 4 * 1024});
    benchmark::RegisterBenchmark("Decode/rs_10+4_4KiB/engine_uncached", decode_engine_uncached,
                                 Shape{Level::kRs, 10, 4, 4 * 1024});

    benchmark::RegisterBenchmark("Checksum/xxh3_4KiB/engine", checksum_engine);
    benchmark::RegisterBenchmark("Checksum/xxh3_4KiB/xxhash_dispatch", checksum_xxh3_dispatch);
    benchmark::RegisterBenchmark("Checksum/xxh3_4KiB/xxhash_sse2", checksum_xxh3_sse2);
    benchmark::RegisterBenchmark("ZeroCheck/4KiB/engine", zero_check_engine);
    benchmark::RegisterBenchmark("ZeroCheck/4KiB/memcmp", zero_check_memcmp);
    benchmark::RegisterBenchmark("ZeroCheck/4KiB/word_or", zero_check_word_or);

    // vzeroupper is an AVX instruction, and without AVX there is no upper state to clear.
    if (!__builtin_cpu_supports("avx")) return;
    benchmark::RegisterBenchmark("UpperState/sse_only", upper_state, Dirty::kNone, false);
    benchmark::RegisterBenchmark("UpperState/after_xxh3", upper_state, Dirty::kXxh3, false);
    benchmark::RegisterBenchmark("UpperState/after_xxh3_vzeroupper", upper_state, Dirty::kXxh3,
                                 true);
    benchmark::RegisterBenchmark("UpperState/after_xor_gen", upper_state, Dirty::kIsal, false);
    benchmark::RegisterBenchmark("UpperState/after_xor_gen_vzeroupper", upper_state,
                                 Dirty::kIsal, true);
}

}  // namespace
}  // namespace ecraid

int main(int argc, char** argv) {
#ifndef NDEBUG
    benchmark::AddCustomContext("warning", "assertions are enabled (build with -DNDEBUG)");
#endif
#ifndef __OPTIMIZE__
    benchmark::AddCustomContext("warning", "built without optimization");
#endif
    __builtin_cpu_init();
    benchmark::AddCustomContext("cpu_avx2", __builtin_cpu_supports("avx2") ? "yes" : "no");
    benchmark::AddCustomContext("cpu_avx512f", __builtin_cpu_supports("avx512f") ? "yes" : "no");

    ecraid::register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
