// bfloat16 GEMM kernels: C (m, n) = A (m, k) B (k, n) [+ C], with the operands rounded to bf16
// (round to nearest even) while they are packed and the products accumulated in fp32. Two
// kernels, chosen at run time: AMX tiles (TDPBF16PS) and AVX512-BF16 (VDPBF16PS). They are
// compiled into the avx512 build variant only; elsewhere bf16_kernel() is none and says why.
//
// Packed layouts (shared by both kernels; K is padded with zeros to a multiple of 32, M and N to
// multiples of 16, so that the micro-kernels never read past the end and never branch on edges
// inside a panel; only their stores into C are clipped):
//   A: [m panel of 16 rows][k chunk of 32][16 rows][32 bf16]      (an AMX A tile per 1 KiB)
//   B: [n panel of 16 cols][k pair][16 cols][2 bf16]              (VNNI pairs: an AMX B tile
//                                                                  per 32 k, one zmm per pair)
// Threads split M and N, never K, and every element's K summation order is fixed by the
// kernel: results are bitwise independent of the thread count (AMX and AVX512-BF16 may differ
// from each other in the last bits).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fastmlp/gemm_operands.hpp"
#include "fastmlp/matrix.hpp"

namespace fastmlp {

enum class Bf16Kernel { none, avx512_bf16, amx };

// The kernel that runs: the best that this build variant, the CPU and the OS allow (AMX needs
// the kernel's permission for tile data, requested once, thread-safely, on first call). The
// environment variable FASTMLP_BF16_KERNEL=amx|avx512_bf16|none forces one; forcing a kernel
// that cannot run here gives none (and bf16_unavailable_reason() says why), an unknown value
// throws std::invalid_argument. Decided once per process and cached.
Bf16Kernel bf16_kernel();
// Whether `kernel` can run here (none never can).
bool bf16_kernel_available(Bf16Kernel kernel);
// "amx", "avx512_bf16", "none".
const char* bf16_kernel_name(Bf16Kernel kernel);
// Why bf16_kernel() is none (or why a forced kernel was refused); empty when a kernel runs.
std::string bf16_unavailable_reason();
// Why `kernel` cannot run here; empty if it can.
std::string bf16_kernel_unavailable_reason(Bf16Kernel kernel);

// Rounds n floats to the nearest bf16 (ties to even; NaN stays a (quiet) NaN, infinities and
// signed zeros stay, denormals are rounded like any other number) and back to float: the
// operands exactly as the kernels see them. Works in every build variant. in may equal out.
void round_to_bf16(const float* in, float* out, Index n);
// One float to its bf16 bits, the same rule.
std::uint16_t float_to_bf16_bits(float x);

// B (k, n) in bf16, in the packed layout above. Owns its memory; packing again reuses it
// unless the new shape needs more.
class Bf16PackedB {
 public:
  Bf16PackedB() = default;
  Index k() const { return k_; }
  Index n() const { return n_; }
  // k padded to a multiple of 32: the distance, in pairs * 2, between two n panels.
  Index k_padded() const { return k_padded_; }
  const std::uint16_t* data() const { return data_.get(); }
  std::uint16_t* data() { return data_.get(); }
  // Sets the shape, growing the buffer if needed (its contents are then undefined).
  void resize(Index k, Index n);

 private:
  struct Free {
    void operator()(std::uint16_t* p) const;
  };
  std::unique_ptr<std::uint16_t[], Free> data_;
  Index capacity_ = 0;  // elements
  Index k_ = 0, n_ = 0, k_padded_ = 0;
};

// Packs B (k, n) for `kernel` (both kernels use the same layout today; the argument keeps the
// door open) on `threads` threads (<= 0: max_threads(); inside a parallel region: the calling
// thread only).
void pack_bf16_b(Bf16Kernel kernel, Index k, Index n, StridedOperand<float> B, Bf16PackedB& out,
                 int threads = 0);

// C (m, n) = A (m, k) B (k, n), plus the old C if accumulate; C is row-major with leading
// dimension ldc. A is rounded to bf16 while it is packed, B was packed by pack_bf16_b with the
// same k. epilogue(row, col, rows, cols) runs once on every finished block of C while it is in
// cache (see BlockEpilogue). threads <= 0: max_threads(); inside an OpenMP parallel region the
// calling thread does all the work. Throws std::invalid_argument if the kernel cannot run here
// or the shapes disagree. m, n or k zero: C is zeroed (or kept, if accumulate), and the
// epilogue still sees every element.
void bf16_gemm(Bf16Kernel kernel, Index m, Index n, Index k, StridedOperand<float> A,
               const Bf16PackedB& B, float* C, Index ldc, bool accumulate,
               BlockEpilogue epilogue = {}, int threads = 0);
// The same, packing B itself (into a buffer of the calling thread, reused by later calls).
void bf16_gemm(Bf16Kernel kernel, Index m, Index n, Index k, StridedOperand<float> A,
               StridedOperand<float> B, float* C, Index ldc, bool accumulate,
               BlockEpilogue epilogue = {}, int threads = 0);

namespace bf16_detail {

constexpr Index kPanelRows = 16;  // A panel height, B panel width
constexpr Index kChunk = 32;      // k per A tile / B tile
constexpr Index kTileElems = kPanelRows * kChunk;

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

// Packs rows [row0, row0 + rows) of A (m, k) into `out` ([panel][chunk][16][32]; rows padded
// with zero rows to a multiple of 16, k to k_padded with zeros).
void pack_a(Index k, Index k_padded, StridedOperand<float> A, Index row0, Index rows,
            std::uint16_t* out);

// The kernels' block loops, one per kernel (defined in the avx512 variant only). They compute
// C[rows, cols] for packed A panels (covering the rows) against B panels [panel0, panel1).
struct BlockArgs {
  const std::uint16_t* a;  // packed A of the block's rows, k_padded per panel row
  Index rows;              // valid rows of the block (A holds round_up(rows, 16))
  const std::uint16_t* b;  // packed B
  Index panel0, panel1;    // B panels of the block
  Index n;                 // total columns of C (the last panel may be partial)
  Index k_padded;
  float* c;  // C at (block row 0, column 0)
  Index ldc;
  Index row0;  // block row 0 in C, for the epilogue
  bool accumulate;
  BlockEpilogue epilogue;
};
void amx_block(const BlockArgs& args);
void avx512_bf16_block(const BlockArgs& args);
// Asks Linux for AMX tile data permission; false if refused.
bool request_amx_permission();

}  // namespace bf16_detail

}  // namespace fastmlp
