// SPDX-License-Identifier: Apache-2.0
// Upper vector register state on x86-64.
//
// ISA-L's AVX2/AVX-512 kernels (ISA-L 2.30) and the dispatched XXH3 of libxxhash 0.8.1 return
// without a vzeroupper instruction. Until one runs, legacy SSE instructions (everything built
// for plain x86-64) carry a false dependency on the dirty upper register halves and run
// several times slower. bench/codec_bench.cc measures the effect on this build's machine.
#pragma once

namespace ecraid {

// Executes vzeroupper when the CPU has AVX, and does nothing on other CPUs and architectures.
// Call it after every ISA-L or dispatched XXH3 call, before returning to SSE code.
void clear_upper_vector_state();

}  // namespace ecraid
