// fastmlp._core: the pybind11 binding of the C++ core. It only checks and converts: every array
// is checked (dtype, shape, contiguity, writeability) before the core sees it, the parameters
// stay in the caller's NumPy arrays (updated in place), and the GIL is released while the core
// computes. C++ exceptions become Python exceptions (std::invalid_argument -> ValueError).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "array_checks.hpp"
#include "fastmlp/network.hpp"
#include "fastmlp/optimizer.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/training.hpp"
#include "network_args.hpp"

namespace py = pybind11;

namespace fastmlp::bindings {

namespace {

// The network described by coefs[l] (sizes[l], sizes[l+1]) and intercepts[l] (sizes[l+1],).
template <class T>
Network<T> make_network(const py::list& coefs, const py::list& intercepts,
                        const std::string& activation, const std::string& output_activation,
                        Loss loss, bool writeable) {
  Network<T> net = network_shape<T>(coefs, activation, output_activation, loss);
  net.coefs = layer_pointers<T>(coefs, "coefs", net.sizes, true, writeable);
  net.intercepts = layer_pointers<T>(intercepts, "intercepts", net.sizes, false, writeable);
  return net;
}

template <class T>
py::array_t<T> forward_typed(const py::array& X, const py::list& coefs, const py::list& intercepts,
                             const std::string& activation, const std::string& output_activation) {
  // squared_error accepts every output but softmax; softmax needs log_loss to pass the check.
  const Loss any_loss = output_activation == "softmax" ? Loss::log_loss : Loss::squared_error;
  Network<T> net =
      make_network<T>(coefs, intercepts, activation, output_activation, any_loss, false);
  check_array<T>(X, "X", {-1, net.n_inputs()});
  const Index rows = X.shape(0);
  py::array_t<T> out({py::ssize_t(rows), py::ssize_t(net.n_outputs())});
  ConstMatrixMap<T> x(const_data<T>(X), rows, net.n_inputs());
  MatrixMap<T> y(out.mutable_data(), rows, net.n_outputs());
  {
    py::gil_scoped_release release;
    predict(net, x, y);
  }
  return out;
}

template <class T>
double loss_and_gradients_typed(const py::array& X, const py::array& Y,
                                const py::object& sample_weight, const py::list& coefs,
                                const py::list& intercepts, const py::list& coef_grads,
                                const py::list& intercept_grads, const std::string& activation,
                                const std::string& output_activation, const std::string& loss,
                                double alpha) {
  const Loss loss_kind = parse_loss(loss);
  Network<T> net =
      make_network<T>(coefs, intercepts, activation, output_activation, loss_kind, false);
  check_array<T>(X, "X", {-1, net.n_inputs()});
  const Index rows = X.shape(0);
  check_array<T>(Y, "Y", {rows, net.n_outputs()});
  const T* w = sample_weight_pointer<T>(sample_weight, rows);
  Gradients<T> grads{layer_pointers<T>(coef_grads, "coef_grads", net.sizes, true, true),
                     layer_pointers<T>(intercept_grads, "intercept_grads", net.sizes, false, true)};
  ConstMatrixMap<T> x(const_data<T>(X), rows, net.n_inputs());
  ConstMatrixMap<T> y(const_data<T>(Y), rows, net.n_outputs());
  py::gil_scoped_release release;
  ScopedEigenThreads threads(gemm_threads(net, rows));
  Workspace<T> ws(net.sizes, rows);
  return loss_and_gradients<T>(net, loss_kind, x, y, w, T(alpha), ws, grads);
}

template <class T>
py::tuple train_epoch_typed(const py::array& X, const py::array& Y, const py::object& sample_weight,
                            const py::array& order, py::ssize_t batch_size, const py::list& coefs,
                            const py::list& intercepts, const py::list& first,
                            const py::list& second, const std::string& activation,
                            const std::string& output_activation, const std::string& loss,
                            double alpha, OptimizerConfig config, BatchSplit batch_split) {
  const Loss loss_kind = parse_loss(loss);
  Network<T> net =
      make_network<T>(coefs, intercepts, activation, output_activation, loss_kind, true);
  check_array<T>(X, "X", {-1, net.n_inputs()});
  const Index rows = X.shape(0);
  check_array<T>(Y, "Y", {rows, net.n_outputs()});
  const std::int64_t* idx = order_pointer(order, rows);
  if (batch_size < 1) throw py::value_error("batch_size must be at least 1");
  const std::size_t L2 = 2 * std::size_t(net.n_layers());
  const bool adam = config.solver == Solver::adam;
  OptimizerState<T> state{moment_pointers<T>(first, "first", net.sizes, L2, true),
                          moment_pointers<T>(second, "second", net.sizes, adam ? L2 : 0, true)};
  EpochData<T> data{ConstMatrixMap<T>(const_data<T>(X), rows, net.n_inputs()),
                    ConstMatrixMap<T>(const_data<T>(Y), rows, net.n_outputs()),
                    sample_weight_pointer<T>(sample_weight, rows),
                    idx,
                    Index(order.shape(0)),
                    Index(batch_size)};
  double accumulated;
  {
    py::gil_scoped_release release;
    accumulated = train_epoch<T>(net, loss_kind, T(alpha), data, config, state, batch_split);
  }
  return py::make_tuple(accumulated, config.t);
}

BatchSplit parse_batch_split(const std::string& name) {
  if (name == "auto") return BatchSplit::automatic;
  if (name == "always") return BatchSplit::always;
  if (name == "never") return BatchSplit::never;
  throw py::value_error("batch_split is '" + name + "', expected 'auto', 'always' or 'never'");
}

}  // namespace

}  // namespace fastmlp::bindings

// One module per instruction set (see CMakeLists.txt): the name comes from the build.
PYBIND11_MODULE(FASTMLP_MODULE_NAME, m) {
  using namespace fastmlp;
  using namespace fastmlp::bindings;
  m.doc() = "fastmlp's compiled core (private: use the fastmlp package).";

  m.def(
      "forward",
      [](const py::array& X, const py::list& coefs, const py::list& intercepts,
         const std::string& activation, const std::string& output_activation) -> py::array {
        check_floating(X);
        if (is_float32(X)) {
          return forward_typed<float>(X, coefs, intercepts, activation, output_activation);
        }
        return forward_typed<double>(X, coefs, intercepts, activation, output_activation);
      },
      py::arg("X"), py::arg("coefs"), py::arg("intercepts"), py::arg("activation"),
      py::arg("output_activation"),
      "Output activations (n_samples, n_outputs) of X (n_samples, n_inputs); threaded.");

  m.def(
      "loss_and_gradients",
      [](const py::array& X, const py::array& Y, const py::object& sample_weight,
         const py::list& coefs, const py::list& intercepts, const py::list& coef_grads,
         const py::list& intercept_grads, const std::string& activation,
         const std::string& output_activation, const std::string& loss, double alpha) {
        check_floating(X);
        if (is_float32(X)) {
          return loss_and_gradients_typed<float>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                                 intercept_grads, activation, output_activation,
                                                 loss, alpha);
        }
        return loss_and_gradients_typed<double>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                                intercept_grads, activation, output_activation,
                                                loss, alpha);
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"), py::arg("intercepts"),
      py::arg("coef_grads"), py::arg("intercept_grads"), py::arg("activation"),
      py::arg("output_activation"), py::arg("loss"), py::arg("alpha"),
      "The mean loss of (X, Y) with its L2 term; writes the gradients into coef_grads and "
      "intercept_grads.");

  m.def(
      "train_epoch",
      [](const py::array& X, const py::array& Y, const py::object& sample_weight,
         const py::array& order, py::ssize_t batch_size, const py::list& coefs,
         const py::list& intercepts, const py::list& first, const py::list& second,
         const std::string& activation, const std::string& output_activation,
         const std::string& loss, double alpha, const std::string& solver, double learning_rate,
         double momentum, bool nesterov, double beta_1, double beta_2, double epsilon,
         std::int64_t t, const std::string& batch_split) {
        check_floating(X);
        OptimizerConfig config{
            parse_solver(solver), learning_rate, momentum, nesterov, beta_1, beta_2, epsilon, t};
        const BatchSplit split = parse_batch_split(batch_split);
        if (is_float32(X)) {
          return train_epoch_typed<float>(X, Y, sample_weight, order, batch_size, coefs, intercepts,
                                          first, second, activation, output_activation, loss, alpha,
                                          config, split);
        }
        return train_epoch_typed<double>(X, Y, sample_weight, order, batch_size, coefs, intercepts,
                                         first, second, activation, output_activation, loss, alpha,
                                         config, split);
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("order"), py::arg("batch_size"),
      py::arg("coefs"), py::arg("intercepts"), py::arg("first"), py::arg("second"),
      py::arg("activation"), py::arg("output_activation"), py::arg("loss"), py::arg("alpha"),
      py::arg("solver"), py::arg("learning_rate"), py::arg("momentum"), py::arg("nesterov"),
      py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("t"),
      py::arg("batch_split") = "auto",
      "One epoch of minibatch training over X[order]; updates the parameters and optimizer "
      "moments in place. Returns (sum of batch loss * batch length, adam's step count). "
      "batch_split ('auto', 'always', 'never') forces how threads share small batches.");

  m.def("build_info", []() {
    py::dict info;
    info["version"] = FASTMLP_VERSION_INFO;
#ifdef FASTMLP_WITH_OPENMP
    info["openmp"] = true;
#else
    info["openmp"] = false;
#endif
    info["max_threads"] = max_threads();
    info["cuda"] = false;
    info["eigen"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                    std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION);
    info["simd"] = Eigen::SimdInstructionSetsInUse();
    info["module"] = PYBIND11_TOSTRING(FASTMLP_MODULE_NAME);
    return info;
  });
}
