// fastmlp._core_<variant>: the pybind11 binding of the CPU core, exporting the backend interface
// that every compiled module shares (python/fastmlp/_backend.py states it): capabilities,
// forward, backward and the Trainer. It only checks and converts: every array is checked
// (dtype, shape, contiguity, writeability) before the core sees it, the parameters stay in the
// caller's NumPy arrays (updated in place), and the GIL is released while the core computes.
// C++ exceptions become Python exceptions (std::invalid_argument -> ValueError).
// (About 420 lines, past the project's 400: the interface's four entry points, each with its
// checks written out before the core runs.)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "array_checks.hpp"
#include "bf16_bindings.hpp"
#include "fastmlp/bf16_gemm.hpp"
#include "fastmlp/bf16_layers.hpp"
#include "fastmlp/finite_check.hpp"
#include "fastmlp/network.hpp"
#include "fastmlp/optimizer.hpp"
#include "fastmlp/parallel.hpp"
#include "fastmlp/trainer.hpp"
#include "network_args.hpp"
#include "packed_gemm_bindings.hpp"
#include "sparse_args.hpp"

namespace py = pybind11;

namespace fastmlp::bindings {

namespace {

// The CPU is device 0, so that callers pass the same arguments to every backend.
void check_cpu_device(int device) {
  if (device != 0) {
    throw py::value_error("the CPU backend has one device, 0; got device=" +
                          std::to_string(device));
  }
}

// The network described by coefs[l] (sizes[l], sizes[l+1]) and intercepts[l] (sizes[l+1],).
template <class T>
Network<T> make_network(const NetworkSpec& spec, const py::list& coefs, const py::list& intercepts,
                        bool writeable) {
  Network<T> net;
  static_cast<NetworkSpec&>(net) = spec;
  net.coefs = layer_pointers<T>(coefs, "coefs", spec.sizes, true, writeable);
  net.intercepts = layer_pointers<T>(intercepts, "intercepts", spec.sizes, false, writeable);
  return net;
}

// The kernel for compute_dtype="bfloat16" (bf16 true), or none; refuses what cannot run it.
Bf16Kernel requested_bf16_kernel(bool bf16, const py::object& X) {
  if (!bf16) return Bf16Kernel::none;
  if (!is_float32(input_values(X))) {
    throw py::value_error(
        "bf16 products need float32 X and weights (the master weights of "
        "compute_dtype='bfloat16' are float32)");
  }
  const Bf16Kernel kernel = bf16_kernel();
  if (kernel == Bf16Kernel::none) {
    throw std::runtime_error("bf16 products cannot run here: " + bf16_unavailable_reason());
  }
  return kernel;
}

// The bf16 kernel that would run and, where none, why: never throws (a misspelled
// FASTMLP_BF16_KERNEL makes bf16_kernel() throw; here it only makes bf16 unavailable, so that
// capabilities() and build_info() still answer, and a bf16 fit reports the misspelling).
std::pair<Bf16Kernel, std::string> bf16_status() {
  try {
    const Bf16Kernel kernel = bf16_kernel();
    return {kernel, kernel == Bf16Kernel::none ? bf16_unavailable_reason() : std::string()};
  } catch (const std::exception& e) {
    return {Bf16Kernel::none, e.what()};
  }
}

// Rounds and packs net's weights for the bf16 kernel (none: nothing to do) and points net at
// them, for the one call that holds the returned copies (forward_only: a call that never
// backpropagates).
template <class T>
std::unique_ptr<Bf16Weights> use_bf16(Network<T>& net, Bf16Kernel kernel, const py::object& X,
                                      bool forward_only) {
  if (kernel == Bf16Kernel::none) return nullptr;
  if constexpr (std::is_same_v<T, float>) {
    auto weights = std::make_unique<Bf16Weights>(kernel, net, !is_sparse_input(X), forward_only);
    {
      py::gil_scoped_release release;
      weights->pack_all(net);
    }
    net.bf16 = weights.get();
    return weights;
  } else {
    throw py::value_error("bf16 products need a float32 network");
  }
}

// Fresh arrays holding the workspace's per-layer matrices (z or delta) for layers 1..L.
template <class T, class Get>
py::list copy_layers(const NetworkSpec& spec, Index rows, Get get) {
  py::list out;
  for (std::int64_t l = 1; l <= spec.n_layers(); ++l) {
    py::array_t<T> a({py::ssize_t(rows), py::ssize_t(spec.sizes[l])});
    MatrixMap<T>(a.mutable_data(), rows, spec.sizes[l]) = get(l);
    out.append(a);
  }
  return out;
}

// Calls body(x, rows) with X's rows as the core takes them: a dense map, or (a CSR triple) the
// sparse rows of its checked matrix. n_inputs is the network's.
template <class T, class Body>
auto with_input(const py::object& X, std::int64_t n_inputs, Body body) {
  if (is_sparse_input(X)) {
    const CsrMatrix<T> m = csr_matrix<T>(X, n_inputs);
    return body(SparseRows<T>{&m, nullptr, 0, m.rows}, m.rows);
  }
  const py::array a = input_values(X);
  check_array<T>(a, "X", {-1, n_inputs});
  const Index rows = a.shape(0);
  return body(ConstMatrixMap<T>(const_data<T>(a), rows, n_inputs), rows);
}

template <class T>
py::object forward_typed(const py::object& X, const py::list& coefs, const py::list& intercepts,
                         const std::string& activation, const std::string& output_activation,
                         double leaky_relu_slope, bool activations, Bf16Kernel bf16) {
  const NetworkSpec spec = network_spec(coefs, activation, output_activation,
                                        any_loss_for(output_activation), leaky_relu_slope);
  Network<T> net = make_network<T>(spec, coefs, intercepts, false);
  const std::unique_ptr<Bf16Weights> bf16_weights = use_bf16(net, bf16, X, true);
  return with_input<T>(X, net.n_inputs(), [&](const auto& x, Index rows) -> py::object {
    if (!activations) {
      py::array_t<T> out({py::ssize_t(rows), py::ssize_t(net.n_outputs())});
      MatrixMap<T> y(out.mutable_data(), rows, net.n_outputs());
      py::gil_scoped_release release;
      predict(net, x, y);
      return std::move(out);
    }
    Workspace<T> ws(net, rows);
    {
      py::gil_scoped_release release;
      ScopedEigenThreads threads(gemm_threads(net, rows));
      forward(net, x, ws);
    }
    return copy_layers<T>(spec, rows, [&](std::int64_t l) { return ws.z(l, rows); });
  });
}

template <class T>
py::object backward_typed(const py::object& X, const py::array& Y, const py::object& sample_weight,
                          const py::list& coefs, const py::list& intercepts,
                          const py::list& coef_grads, const py::list& intercept_grads,
                          const std::string& activation, const std::string& output_activation,
                          const std::string& loss, double alpha, double leaky_relu_slope,
                          bool internals, Bf16Kernel bf16) {
  const NetworkSpec spec =
      network_spec(coefs, activation, output_activation, parse_loss(loss), leaky_relu_slope);
  check_trainable(spec);
  Network<T> net = make_network<T>(spec, coefs, intercepts, false);
  const std::unique_ptr<Bf16Weights> bf16_weights = use_bf16(net, bf16, X, false);
  return with_input<T>(X, net.n_inputs(), [&](const auto& x, Index rows) -> py::object {
    check_array<T>(Y, "Y", {rows, net.n_outputs()});
    const T* w = sample_weight_pointer<T>(sample_weight, rows);
    Gradients<T> grads{
        layer_pointers<T>(coef_grads, "coef_grads", net.sizes, true, true),
        layer_pointers<T>(intercept_grads, "intercept_grads", net.sizes, false, true)};
    ConstMatrixMap<T> y(const_data<T>(Y), rows, net.n_outputs());
    Workspace<T> ws(net, rows);
    double value;
    {
      py::gil_scoped_release release;
      ScopedEigenThreads threads(gemm_threads(net, rows));
      value = loss_and_gradients<T>(net, x, y, w, T(alpha), ws, grads);
    }
    if (!internals) return py::float_(value);
    return py::make_tuple(
        value, copy_layers<T>(spec, rows, [&](std::int64_t l) { return ws.z(l, rows); }),
        copy_layers<T>(spec, rows, [&](std::int64_t l) { return ws.delta(l, rows); }));
  });
}

BatchSplit parse_batch_split(const std::string& name) {
  if (name == "auto") return BatchSplit::automatic;
  if (name == "always") return BatchSplit::always;
  if (name == "never") return BatchSplit::never;
  throw py::value_error("batch_split is '" + name + "', expected 'auto', 'always' or 'never'");
}

// The Trainer Python sees, whatever the dtype.
class TrainerHandle {
 public:
  virtual ~TrainerHandle() = default;
  virtual py::tuple run(const py::array& order, double learning_rate, double loss_sum) = 0;
  virtual double loss_and_gradient(const py::array& params, const py::array& grad) = 0;
  virtual void set_parameters(const py::list& coefs, const py::list& intercepts,
                              const py::list& first, const py::list& second) = 0;
  virtual void get_parameters(const py::list& coefs, const py::list& intercepts,
                              const py::list& first, const py::list& second) = 0;
  virtual std::int64_t n_samples() const = 0;
  virtual std::int64_t t() const = 0;
};

template <class T>
class TypedTrainer final : public TrainerHandle {
 public:
  TypedTrainer(const py::object& X, const py::array& Y, const py::object& sample_weight,
               const NetworkSpec& spec, const OptimizerConfig& config, double alpha,
               py::ssize_t batch_size, std::int64_t t, BatchSplit split, Bf16Kernel bf16)
      : data_arrays_(py::make_tuple(X, Y, sample_weight)), solver_(config.solver) {
    const T* dense_x = nullptr;
    if (is_sparse_input(X)) {
      csr_ = std::make_unique<CsrMatrix<T>>(csr_matrix<T>(X, spec.n_inputs()));
      n_samples_ = csr_->rows;
    } else {
      const py::array a = input_values(X);
      check_array<T>(a, "X", {-1, spec.n_inputs()});
      n_samples_ = a.shape(0);
      dense_x = const_data<T>(a);
    }
    check_array<T>(Y, "Y", {n_samples_, spec.n_outputs()});
    const TrainingData<T> data{dense_x, const_data<T>(Y),
                               sample_weight_pointer<T>(sample_weight, n_samples_), n_samples_,
                               csr_.get()};
    if (batch_size < 1) throw py::value_error("batch_size must be at least 1");
    if (t < 0) throw py::value_error("t must be >= 0, got " + std::to_string(t));
    trainer_ = std::make_unique<Trainer<T>>(spec, config, T(alpha), Index(batch_size), t, data,
                                            split, bf16);
  }

  void set_parameters(const py::list& coefs, const py::list& intercepts, const py::list& first,
                      const py::list& second) override {
    State state = checked_state(coefs, intercepts, first, second);
    trainer_->set_state(state.coefs, state.intercepts, {state.first, state.second});
    // The arrays must live as long as the trainer points into them.
    state_arrays_ = py::make_tuple(coefs, intercepts, first, second);
    state_ = std::move(state);
  }

  // On the CPU the trainer works in the arrays set_parameters gave it: where the caller passes
  // those same arrays nothing is copied.
  void get_parameters(const py::list& coefs, const py::list& intercepts, const py::list& first,
                      const py::list& second) override {
    const State to = checked_state(coefs, intercepts, first, second);
    const NetworkSpec& spec = trainer_->spec();
    const std::int64_t L = spec.n_layers();
    auto copy = [&](T* dst, const T* src, std::int64_t layer, bool coef) {
      const std::int64_t n =
          coef ? spec.sizes[layer] * spec.sizes[layer + 1] : spec.sizes[layer + 1];
      if (dst != src) std::memcpy(dst, src, sizeof(T) * std::size_t(n));
    };
    for (std::int64_t l = 0; l < L; ++l) {
      copy(to.coefs[l], state_.coefs[l], l, true);
      copy(to.intercepts[l], state_.intercepts[l], l, false);
    }
    for (std::size_t i = 0; i < to.first.size(); ++i) {
      copy(to.first[i], state_.first[i], std::int64_t(i) % L, std::int64_t(i) < L);
    }
    for (std::size_t i = 0; i < to.second.size(); ++i) {
      copy(to.second[i], state_.second[i], std::int64_t(i) % L, std::int64_t(i) < L);
    }
  }

  py::tuple run(const py::array& order, double learning_rate, double loss_sum) override {
    if (solver_ == Solver::lbfgs) {
      throw py::value_error("an lbfgs trainer computes losses and gradients only: no run()");
    }
    const std::int64_t* idx = order_pointer(order, n_samples_);
    const Index n = order.shape(0);
    double accumulated;
    {
      py::gil_scoped_release release;
      accumulated = trainer_->run(idx, n, learning_rate, loss_sum);
    }
    return py::make_tuple(accumulated, trainer_->t());
  }

  double loss_and_gradient(const py::array& params, const py::array& grad) override {
    const std::int64_t n = trainer_->spec().n_params();
    T* p = flat_pointer<T>(params, "params", n, false);
    T* g = flat_pointer<T>(grad, "grad", n, true);
    if (std::less<const T*>()(p, g + n) && std::less<const T*>()(g, p + n)) {
      throw py::value_error("params and grad must not overlap");
    }
    // Between blocks of rows the core asks whether Ctrl-C came (pybind11's FAQ way: take the
    // GIL for a moment and let Python check its signals).
    bool stopped = false;
    const auto interrupted = [&stopped]() {
      py::gil_scoped_acquire acquire;
      stopped = PyErr_CheckSignals() != 0;
      return stopped;
    };
    double value;
    {
      py::gil_scoped_release release;
      value = trainer_->loss_and_gradient(p, g, interrupted);
    }
    if (stopped) throw py::error_already_set();  // the KeyboardInterrupt the check raised
    return value;
  }

  std::int64_t n_samples() const override { return n_samples_; }
  std::int64_t t() const override { return trainer_->t(); }

 private:
  struct State {
    std::vector<T*> coefs, intercepts, first, second;
  };

  // The parameters and the moments the solver keeps (2L arrays each: sgd one list, adam two,
  // lbfgs none), every array checked.
  State checked_state(const py::list& coefs, const py::list& intercepts, const py::list& first,
                      const py::list& second) const {
    const NetworkSpec& spec = trainer_->spec();
    const std::size_t moments = 2 * std::size_t(spec.n_layers());
    const int kept = moment_count(solver_);
    return {layer_pointers<T>(coefs, "coefs", spec.sizes, true, true),
            layer_pointers<T>(intercepts, "intercepts", spec.sizes, false, true),
            moment_pointers<T>(first, "first", spec.sizes, kept >= 1 ? moments : 0, true),
            moment_pointers<T>(second, "second", spec.sizes, kept >= 2 ? moments : 0, true)};
  }

  py::tuple data_arrays_;              // X, Y and the sample weights, kept alive for the trainer
  std::unique_ptr<CsrMatrix<T>> csr_;  // sparse X's view (its arrays are in data_arrays_)
  py::object state_arrays_;
  Solver solver_;
  Index n_samples_ = 0;
  State state_;
  std::unique_ptr<Trainer<T>> trainer_;
};

std::unique_ptr<TrainerHandle> make_trainer(
    const py::object& X, const py::array& Y, const py::object& sample_weight, const py::list& coefs,
    const py::list& intercepts, const py::list& first, const py::list& second,
    const std::string& activation, const std::string& output_activation, const std::string& loss,
    double alpha, const std::string& solver, py::ssize_t batch_size, double learning_rate,
    double momentum, bool nesterov, double beta_1, double beta_2, double epsilon, std::int64_t t,
    int device, const std::string& batch_split, double leaky_relu_slope, bool bf16) {
  check_cpu_device(device);
  check_floating(input_values(X));
  const Bf16Kernel kernel = requested_bf16_kernel(bf16, X);
  const NetworkSpec spec =
      network_spec(coefs, activation, output_activation, parse_loss(loss), leaky_relu_slope);
  const OptimizerConfig config{
      parse_solver(solver), learning_rate, momentum, nesterov, beta_1, beta_2, epsilon};
  const BatchSplit split = parse_batch_split(batch_split);
  std::unique_ptr<TrainerHandle> handle;
  if (is_float32(input_values(X))) {
    handle = std::make_unique<TypedTrainer<float>>(X, Y, sample_weight, spec, config, alpha,
                                                   batch_size, t, split, kernel);
  } else {
    handle = std::make_unique<TypedTrainer<double>>(X, Y, sample_weight, spec, config, alpha,
                                                    batch_size, t, split, kernel);
  }
  handle->set_parameters(coefs, intercepts, first, second);
  return handle;
}

}  // namespace

}  // namespace fastmlp::bindings

// One module per instruction set (see CMakeLists.txt): the name comes from the build.
PYBIND11_MODULE(FASTMLP_MODULE_NAME, m) {
  using namespace fastmlp;
  using namespace fastmlp::bindings;
  m.doc() = "fastmlp's compiled CPU core (private: use the fastmlp package).";

  m.def("capabilities", []() {
    py::dict caps;
    caps["device"] = "cpu";
    caps["dtypes"] = py::make_tuple("float32", "float64");
    // forward, backward and Trainer take bf16=True where set.
    caps["bf16"] = bf16_status().first != Bf16Kernel::none;
    caps["sparse"] = true;  // X may be a CSR tuple (data, indices, indptr, n_cols)
    return caps;
  });
  m.def("device_count", []() { return 1; });
  m.def(
      "all_finite",
      [](const py::array& a) {
        if (!(a.flags() & (py::array::c_style | py::array::f_style))) {
          throw py::value_error("all_finite: the array must be C- or F-contiguous");
        }
        const Index n = Index(a.size());
        if (py::isinstance<py::array_t<float>>(a)) {
          const auto* x = static_cast<const float*>(a.data());
          py::gil_scoped_release release;
          return all_finite<float>(x, n);
        }
        if (py::isinstance<py::array_t<double>>(a)) {
          const auto* x = static_cast<const double*>(a.data());
          py::gil_scoped_release release;
          return all_finite<double>(x, n);
        }
        throw py::value_error("all_finite: the array must be float32 or float64");
      },
      py::arg("a"),
      "Whether every value of a (float32 or float64, C- or F-contiguous) is finite: neither "
      "NaN nor infinite. Threaded, the GIL released.");
  m.def(
      "adam_step_rate",
      [](double learning_rate, double beta_1, double beta_2, std::int64_t t) {
        OptimizerConfig config;
        config.learning_rate = learning_rate;
        config.beta_1 = beta_1;
        config.beta_2 = beta_2;
        return adam_step_rate(config, t);
      },
      py::arg("learning_rate"), py::arg("beta_1"), py::arg("beta_2"), py::arg("t"),
      "Adam's step size at step t: the rule every backend applies (shared/definitions.hpp).");

  m.def(
      "forward",
      [](const py::object& X, const py::list& coefs, const py::list& intercepts,
         const std::string& activation, const std::string& output_activation, int device,
         bool activations, double leaky_relu_slope, bool bf16) -> py::object {
        check_cpu_device(device);
        check_floating(input_values(X));
        const Bf16Kernel kernel = requested_bf16_kernel(bf16, X);
        if (is_float32(input_values(X))) {
          return forward_typed<float>(X, coefs, intercepts, activation, output_activation,
                                      leaky_relu_slope, activations, kernel);
        }
        return forward_typed<double>(X, coefs, intercepts, activation, output_activation,
                                     leaky_relu_slope, activations, kernel);
      },
      py::arg("X"), py::arg("coefs"), py::arg("intercepts"), py::arg("activation"),
      py::arg("output_activation"), py::kw_only(), py::arg("device") = 0,
      py::arg("activations") = false, py::arg("leaky_relu_slope") = 0.01, py::arg("bf16") = false,
      "Output activations (n_samples, n_outputs) of X (n_samples, n_inputs), threaded; with "
      "activations=True the list of every layer's output.");

  m.def(
      "backward",
      [](const py::object& X, const py::array& Y, const py::object& sample_weight,
         const py::list& coefs, const py::list& intercepts, const py::list& coef_grads,
         const py::list& intercept_grads, const std::string& activation,
         const std::string& output_activation, const std::string& loss, double alpha, int device,
         bool internals, double leaky_relu_slope, bool bf16) -> py::object {
        check_cpu_device(device);
        check_floating(input_values(X));
        const Bf16Kernel kernel = requested_bf16_kernel(bf16, X);
        if (is_float32(input_values(X))) {
          return backward_typed<float>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                       intercept_grads, activation, output_activation, loss, alpha,
                                       leaky_relu_slope, internals, kernel);
        }
        return backward_typed<double>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                      intercept_grads, activation, output_activation, loss, alpha,
                                      leaky_relu_slope, internals, kernel);
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"), py::arg("intercepts"),
      py::arg("coef_grads"), py::arg("intercept_grads"), py::arg("activation"),
      py::arg("output_activation"), py::arg("loss"), py::arg("alpha"), py::kw_only(),
      py::arg("device") = 0, py::arg("internals") = false, py::arg("leaky_relu_slope") = 0.01,
      py::arg("bf16") = false,
      "The mean loss of (X, Y) with its L2 term; writes the gradients into coef_grads and "
      "intercept_grads. internals=True returns (loss, activations, deltas).");

  py::class_<TrainerHandle>(m, "Trainer",
                            "One fit's trainer: checks, parsing and workspace done once.")
      .def(py::init(&make_trainer), py::arg("X"), py::arg("Y"), py::arg("sample_weight"),
           py::arg("coefs"), py::arg("intercepts"), py::arg("first"), py::arg("second"),
           py::kw_only(), py::arg("activation"), py::arg("output_activation"), py::arg("loss"),
           py::arg("alpha"), py::arg("solver"), py::arg("batch_size"), py::arg("learning_rate"),
           py::arg("momentum"), py::arg("nesterov"), py::arg("beta_1"), py::arg("beta_2"),
           py::arg("epsilon"), py::arg("t"), py::arg("device") = 0, py::arg("batch_split") = "auto",
           py::arg("leaky_relu_slope") = 0.01, py::arg("bf16") = false)
      .def("run", &TrainerHandle::run, py::arg("order"), py::arg("learning_rate"),
           py::arg("loss_sum") = 0.0,
           "Minibatches over order (int64 rows); returns (loss_sum + sum of batch loss * length, "
           "adam's t). An epoch run in several calls, each given the last result, adds up as "
           "one call.")
      .def("loss_and_gradient", &TrainerHandle::loss_and_gradient, py::arg("params"),
           py::arg("grad"), "Full-batch loss at the flat params; the gradient into grad.")
      .def("set_parameters", &TrainerHandle::set_parameters, py::arg("coefs"),
           py::arg("intercepts"), py::arg("first"), py::arg("second"))
      .def("get_parameters", &TrainerHandle::get_parameters, py::arg("coefs"),
           py::arg("intercepts"), py::arg("first"), py::arg("second"))
      .def_property_readonly("n_samples", &TrainerHandle::n_samples)
      .def_property_readonly("t", &TrainerHandle::t);
  m.def(
      "_inject_trainer_fault",
      [](std::optional<std::int64_t> batch) {
        injected_fault_batch().store(batch ? Index(*batch) : Index(-1));
      },
      py::arg("batch"),
      "Private, for tests: from then on every trainer's last thread raises MemoryError "
      "(std::bad_alloc) as it starts that minibatch (0: the first) of each run; None: never.");

  add_packed_gemm_bindings(m);
  add_bf16_bindings(m);

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
    const auto [bf16, reason] = bf16_status();
    py::dict bf16_info;
    bf16_info["kernel"] = bf16 == Bf16Kernel::none ? py::object(py::none())
                                                   : py::object(py::str(bf16_kernel_name(bf16)));
    bf16_info["reason"] = reason;
    info["bf16"] = bf16_info;
    return info;
  });
}
