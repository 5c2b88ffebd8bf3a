// One epoch of minibatch training, run entirely in C++ so that Python is called once per epoch.
#pragma once

#include <cstdint>

#include "fastmlp/network.hpp"
#include "fastmlp/optimizer.hpp"

namespace fastmlp {

// The data of one epoch: X (n_samples, n_inputs), Y (n_samples, n_outputs), optional sample
// weights (n_samples,), and the order in which to visit the samples: order (n_order,) holds row
// indices of X, each in [0, n_samples), and consecutive runs of batch_size form the batches.
template <class T>
struct EpochData {
  ConstMatrixMap<T> X;
  ConstMatrixMap<T> Y;
  const T* sample_weight = nullptr;
  const std::int64_t* order = nullptr;
  Index n_order = 0;
  Index batch_size = 1;
};

// How the threads share a minibatch whose GEMMs are too small to thread inside: `automatic`
// splits its rows among the threads when the batch carries enough work to pay for the three
// barriers per batch; `always` and `never` force the choice (for tests and experiments).
enum class BatchSplit { automatic, always, never };

// Trains net for one pass over data.order, updating the parameters and the optimizer state in
// place. Returns sum over batches of (batch loss * batch length), scikit-learn's
// accumulated_loss, so that the epoch's loss is this divided by n_order.
template <class T>
double train_epoch(const Network<T>& net, Loss loss, T alpha, const EpochData<T>& data,
                   OptimizerConfig& config, const OptimizerState<T>& state,
                   BatchSplit batch_split = BatchSplit::automatic);

}  // namespace fastmlp
