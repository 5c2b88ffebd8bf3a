// The definitions every backend shares, CPU and CUDA alike: the enums of activations, losses and
// solvers with their names, a network's spec and its checks, the optimizer's configuration and
// Adam's step-rate rule. Plain C++ (no Eigen, no CUDA header), usable from host code compiled by
// any compiler and, through FASTMLP_HOST_DEVICE, from device code: one definition, not mirrored
// copies kept equal by static_asserts.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#define FASTMLP_HOST_DEVICE __host__ __device__
#else
#define FASTMLP_HOST_DEVICE
#endif

namespace fastmlp {

// leaky_relu, gelu and silu are hidden-only (check_spec refuses them as outputs).
enum class Activation {
  identity,
  logistic,
  tanh,
  relu,
  step,
  softmax,
  exp,
  leaky_relu,
  gelu,
  silu
};
enum class Loss { squared_error, log_loss, poisson };
// lbfgs: the trainer only computes full-batch losses and gradients (SciPy drives the steps).
enum class Solver { sgd, adam, lbfgs };

// --- names -----------------------------------------------------------------------------------

inline const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::identity: return "identity";
    case Activation::logistic: return "logistic";
    case Activation::tanh: return "tanh";
    case Activation::relu: return "relu";
    case Activation::step: return "step";
    case Activation::softmax: return "softmax";
    case Activation::exp: return "exp";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::gelu: return "gelu";
    case Activation::silu: return "silu";
  }
  return "?";
}

// Throws std::invalid_argument naming the bad value.
inline Activation parse_activation(const std::string& name) {
  for (Activation a : {Activation::identity, Activation::logistic, Activation::tanh,
                       Activation::relu, Activation::step, Activation::softmax, Activation::exp,
                       Activation::leaky_relu, Activation::gelu, Activation::silu}) {
    if (name == activation_name(a)) return a;
  }
  throw std::invalid_argument(
      "unknown activation '" + name +
      "': expected identity, logistic, tanh, relu, step, softmax, exp, leaky_relu, gelu or silu");
}

inline const char* loss_name(Loss loss) {
  switch (loss) {
    case Loss::squared_error: return "squared_error";
    case Loss::log_loss: return "log_loss";
    case Loss::poisson: return "poisson";
  }
  return "?";
}

inline Loss parse_loss(const std::string& name) {
  for (Loss l : {Loss::squared_error, Loss::log_loss, Loss::poisson}) {
    if (name == loss_name(l)) return l;
  }
  throw std::invalid_argument("unknown loss '" + name +
                              "': expected squared_error, log_loss or poisson");
}

inline Solver parse_solver(const std::string& name) {
  if (name == "sgd") return Solver::sgd;
  if (name == "adam") return Solver::adam;
  if (name == "lbfgs") return Solver::lbfgs;
  throw std::invalid_argument("unknown solver '" + name + "': expected sgd, adam or lbfgs");
}

// --- what can be trained with what -----------------------------------------------------------

// True where the derivative is elementwise and defined: step has none (zero almost everywhere,
// undefined at 0) and softmax's is a Jacobian, used only through its matching loss.
FASTMLP_HOST_DEVICE inline bool has_elementwise_derivative(Activation activation) {
  return activation != Activation::step && activation != Activation::softmax;
}

// True where the derivative cannot be read from the layer's output z = f(a) alone: gelu and
// silu are not monotonic, so the backward pass needs the pre-activations a themselves.
FASTMLP_HOST_DEVICE inline bool needs_preactivation(Activation activation) {
  return activation == Activation::gelu || activation == Activation::silu;
}

// True for the activations that only hidden layers take.
FASTMLP_HOST_DEVICE inline bool is_hidden_only(Activation activation) {
  return activation == Activation::leaky_relu || activation == Activation::gelu ||
         activation == Activation::silu;
}

// True where the output's local error is h - y alone: the pair's f'(a) cancels.
FASTMLP_HOST_DEVICE inline bool is_matching_pair(Activation output, Loss loss) {
  switch (loss) {
    case Loss::squared_error: return output == Activation::identity;
    case Loss::log_loss: return output == Activation::logistic || output == Activation::softmax;
    case Loss::poisson: return output == Activation::exp;
  }
  return false;
}

// Throws std::invalid_argument unless the output activation can be trained with this loss
// (step outputs pass: they run forward only, and training them is refused by check_trainable).
inline void check_output_loss_pair(Activation output, Loss loss) {
  if (is_hidden_only(output)) {
    throw std::invalid_argument(std::string("'") + activation_name(output) +
                                "' is a hidden activation: it cannot be the output activation");
  }
  if (output == Activation::step) return;
  const bool ok = (loss == Loss::squared_error && output != Activation::softmax) ||
                  is_matching_pair(output, loss);
  if (!ok) {
    throw std::invalid_argument(std::string("loss '") + loss_name(loss) +
                                "' cannot be used with the output activation '" +
                                activation_name(output) +
                                "': log_loss needs logistic or softmax outputs, poisson needs "
                                "exp outputs, squared_error any output but softmax");
  }
}

// --- a network -------------------------------------------------------------------------------

// A network's shape: sizes = input, hidden..., output; W_l is (sizes[l], sizes[l+1]) and b_l is
// (sizes[l+1],). Flat parameter vectors (L-BFGS's, the GPU's one buffer) hold W_0..W_{L-1} then
// b_0..b_{L-1}, each row-major: scikit-learn's packing order.
struct NetworkSpec {
  std::vector<std::int64_t> sizes;
  Activation hidden = Activation::relu;
  Activation output = Activation::identity;
  Loss loss = Loss::squared_error;
  double leaky_relu_slope = 0.01;  // f(a) = a for a > 0, slope * a below (leaky_relu only)

  std::int64_t n_layers() const { return std::int64_t(sizes.size()) - 1; }
  std::int64_t n_inputs() const { return sizes.front(); }
  std::int64_t n_outputs() const { return sizes.back(); }
  Activation activation_of(std::int64_t layer) const {
    return layer + 1 == n_layers() ? output : hidden;
  }
  std::int64_t n_coefs() const {
    std::int64_t n = 0;
    for (std::int64_t l = 0; l < n_layers(); ++l) n += sizes[l] * sizes[l + 1];
    return n;
  }
  std::int64_t n_params() const {
    std::int64_t n = n_coefs();
    for (std::int64_t l = 0; l < n_layers(); ++l) n += sizes[l + 1];
    return n;
  }
};

// The number of weights (not intercepts), which is also one sample's forward multiply-adds.
inline double count_weights(const std::vector<std::int64_t>& sizes) {
  double n = 0.0;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) n += double(sizes[l]) * double(sizes[l + 1]);
  return n;
}

// Throws std::invalid_argument when the spec is unusable: fewer than two sizes, a size below 1,
// an output-only activation in a hidden layer, an output the loss cannot train, or a leaky_relu
// slope that is not positive and finite.
inline void check_spec(const NetworkSpec& spec) {
  if (spec.sizes.size() < 2) {
    throw std::invalid_argument("a network needs at least two layer sizes (input and output)");
  }
  for (std::size_t l = 0; l < spec.sizes.size(); ++l) {
    if (spec.sizes[l] < 1) {
      throw std::invalid_argument("layer size " + std::to_string(l) + " is " +
                                  std::to_string(spec.sizes[l]) + ": sizes must be at least 1");
    }
  }
  if (spec.hidden == Activation::softmax || spec.hidden == Activation::exp) {
    throw std::invalid_argument(std::string("'") + activation_name(spec.hidden) +
                                "' is an output activation: hidden layers take identity, "
                                "logistic, tanh, relu, step, leaky_relu, gelu or silu");
  }
  if (!(spec.leaky_relu_slope > 0.0) || !std::isfinite(spec.leaky_relu_slope)) {
    throw std::invalid_argument("leaky_relu_slope must be positive and finite, got " +
                                std::to_string(spec.leaky_relu_slope));
  }
  check_output_loss_pair(spec.output, spec.loss);
}

// Throws std::invalid_argument unless every layer has the derivative that training needs.
inline void check_trainable(const NetworkSpec& spec) {
  const bool hidden_ok = spec.n_layers() == 1 || has_elementwise_derivative(spec.hidden);
  const bool output_ok =
      is_matching_pair(spec.output, spec.loss) || has_elementwise_derivative(spec.output);
  if (!hidden_ok || !output_ok) {
    const bool hidden = !hidden_ok;
    throw std::invalid_argument(std::string("the ") + (hidden ? "hidden" : "output") +
                                " activation '" +
                                activation_name(hidden ? spec.hidden : spec.output) +
                                "' has no gradient to train with (step units run forward only)");
  }
}

// --- the optimizer ---------------------------------------------------------------------------

// The stochastic solvers' settings, as scikit-learn states them:
//   sgd:  v <- momentum v - lr g;  p <- p + v, or with Nesterov p <- p + momentum v - lr g
//   adam: t <- t + 1;  m <- b1 m + (1-b1) g;  s <- b2 s + (1-b2) g^2;
//         p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(s) + eps)
// Learning-rate schedules and stopping live in Python: they act between epochs.
struct OptimizerConfig {
  Solver solver = Solver::sgd;
  double learning_rate = 0.001;  // sgd: the current rate; adam: learning_rate_init
  double momentum = 0.9;
  bool nesterov = true;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-8;
};

// The number of moment arrays per parameter array: sgd keeps velocities, adam two moments.
inline int moment_count(Solver solver) {
  return solver == Solver::adam ? 2 : solver == Solver::sgd ? 1 : 0;
}

// Adam's step size at step t (counted from 1): lr sqrt(1 - b2^t) / (1 - b1^t). Computed on the
// host, once per step, by every backend.
inline double adam_step_rate(const OptimizerConfig& config, std::int64_t t) {
  return config.learning_rate * std::sqrt(1.0 - std::pow(config.beta_2, double(t))) /
         (1.0 - std::pow(config.beta_1, double(t)));
}

}  // namespace fastmlp
