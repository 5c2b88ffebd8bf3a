// The kernels around the GEMMs: batch gathering, softmax, loss and output error, reductions,
// the per-batch bookkeeping and the optimizer step. Each launcher enqueues on `stream` and
// checks the launch; none synchronizes with the host.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "api.hpp"

namespace fastmlp::cuda {

// Device-side scalars of a pass, so that a whole epoch runs without a host sync: the batch's
// weighted loss sum, sum ||W||^2 of the current weights, the epoch's accumulated loss, and
// the batch's gradient scale 1/S (0 for a batch without weight), stored as double.
struct PassScalars {
  double loss_sum;
  double sq_norm;
  double accumulated;
  double scale;
  double weight_sum;
};

// dst (rows, cols) <- src[order[i]] for i < rows: the batch as one contiguous block.
template <class T>
void gather_rows(const T* src, std::int64_t cols, const std::int64_t* order, std::int64_t rows,
                 T* dst, cudaStream_t stream);

// Each row of z (rows, cols) <- its softmax, the row maximum subtracted first.
template <class T>
void softmax_rows(T* z, std::int64_t rows, std::int64_t cols, cudaStream_t stream);

// *loss_sum += sum_i w_i sum_k loss(h_ik, y_ik) (w_i = 1 without weights), and delta (rows,
// cols) <- the output layer's local error.
template <class T>
void loss_and_output_delta(Loss loss, Activation output, const T* h, const T* y, const T* w,
                           std::int64_t rows, std::int64_t cols, T* delta, double* loss_sum,
                           cudaStream_t stream);

// *out += sum_i x_i (square: x_i^2); x == nullptr adds n (unit weights).
template <class T>
void add_sum(const T* x, std::int64_t n, bool square, double* out, cudaStream_t stream);

// After a batch's backward pass: S from the batch weights w (rows,) (nullptr: S = rows); the
// batch loss (loss_sum + alpha/2 sq_norm) / S, times rows, added to `accumulated`; scale 1/S;
// loss_sum reset for the next batch, and sq_norm too when want_sq_norm (the optimizer adds the
// updated weights' norm into it).
template <class T>
void finish_batch(const T* w, std::int64_t rows, double alpha, bool want_sq_norm,
                  PassScalars* scalars, cudaStream_t stream);

// One optimizer step over all n parameters p (the first n_coefs are weights): the gradient is
// (g_sums + alpha p [weights only]) * scale, then config's sgd (momentum, Nesterov) or adam rule,
// adam at the step size adam_rate (adam_step_rate of the shared definitions, computed on the
// host for this step; sgd's rate is config.learning_rate). m and s are the moments (s unused by
// sgd). With sq_norm, adds the updated weights' squared norm into it.
template <class T>
void update_parameters(const OptimizerConfig& config, double adam_rate, T* p, const T* g_sums, T* m,
                       T* s, std::int64_t n, std::int64_t n_coefs, T alpha,
                       const PassScalars* scalars, double* sq_norm, int sm_count,
                       cudaStream_t stream);

// g <- (g + alpha p [weights only]) * scale, scale = 1/weight_sum (0 when weight_sum <= 0).
template <class T>
void finish_gradients(T* g, const T* p, std::int64_t n, std::int64_t n_coefs, T alpha,
                      const PassScalars* scalars, int sm_count, cudaStream_t stream);

}  // namespace fastmlp::cuda
