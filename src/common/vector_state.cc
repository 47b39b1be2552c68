// SPDX-License-Identifier: Apache-2.0
#include "common/vector_state.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ecraid {

#if defined(__x86_64__)
namespace {

// False until this file's static initializer runs. A call before then skips vzeroupper, which
// costs speed but never correctness.
const bool cpu_has_avx = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") != 0;
}();

// Built for AVX so that the intrinsic compiles. Called only when the CPU has AVX.
__attribute__((target("avx"))) void zero_upper_avx() { _mm256_zeroupper(); }

}  // namespace

void clear_upper_vector_state() {
    if (cpu_has_avx) zero_upper_avx();
}

#else

void clear_upper_vector_state() {}

#endif

}  // namespace ecraid
