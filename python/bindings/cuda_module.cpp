// fastmlp._cuda_core: the pybind11 binding of the CUDA kernels (cpp/cuda/). It exports the one
// backend interface that every compiled module of fastmlp exports (python/fastmlp/_backend.py):
// capabilities(), forward, backward and Trainer, plus the device queries that fastmlp._cuda
// uses. Like fastmlp._core, it only checks and converts: every argument (dtype, shape,
// contiguity, writeability, names, order indices, batch_size) is checked BEFORE the device is
// touched, by the same shared checks as _core (network_args.hpp, shared/definitions.hpp), so
// argument errors read the same with or without a GPU and on either device; then a missing GPU
// raises RuntimeError("fastmlp CUDA: no usable GPU: ..."). The GIL is released while the device
// computes.
// (About 500 lines, past the project's 400: every argument check of the interface comes before
// the device is touched, written out per entry point so that each reads as a whole.)
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "api.hpp"
#include "array_checks.hpp"
#include "fastmlp/shared/definitions.hpp"
#include "network_args.hpp"

namespace py = pybind11;

namespace fastmlp::bindings {

namespace {

// Raised once every argument has passed its checks: the device must exist.
void require_device(int device) {
  const int count = cuda::device_count();
  if (count == 0) {
    throw std::runtime_error("fastmlp CUDA: no usable GPU: " + cuda::device_status());
  }
  if (device >= count) {
    throw py::index_error("device " + std::to_string(device) +
                          " does not exist: " + std::to_string(count) + " CUDA device(s) found");
  }
}

void check_device_argument(int device) {
  if (device < 0) throw py::index_error("device must be >= 0, got " + std::to_string(device));
}

template <class T>
std::vector<const T*> to_const_pointers(const std::vector<T*>& v) {
  return std::vector<const T*>(v.begin(), v.end());
}

template <class T>
cuda::HostParams<T> host_params(const py::list& coefs, const py::list& intercepts,
                                const NetworkSpec& spec) {
  return {to_const_pointers(layer_pointers<T>(coefs, "coefs", spec.sizes, true, false)),
          to_const_pointers(layer_pointers<T>(intercepts, "intercepts", spec.sizes, false, false))};
}

template <class T>
cuda::HostParamsOut<T> host_params_out(const py::list& coefs, const py::list& intercepts,
                                       const NetworkSpec& spec, const std::string& coef_name,
                                       const std::string& intercept_name) {
  return {layer_pointers<T>(coefs, coef_name, spec.sizes, true, true),
          layer_pointers<T>(intercepts, intercept_name, spec.sizes, false, true)};
}

// New arrays (rows, sizes[l]) for l = 1..L, and their data pointers.
template <class T>
py::list layer_arrays(const NetworkSpec& spec, py::ssize_t rows, std::vector<T*>& data) {
  py::list arrays;
  for (std::int64_t l = 1; l <= spec.n_layers(); ++l) {
    py::array_t<T> a({rows, py::ssize_t(spec.sizes[l])});
    data.push_back(a.mutable_data());
    arrays.append(a);
  }
  return arrays;
}

// Optimizer moments for this solver (network_args.hpp): 2L arrays in `first` where the solver
// keeps one moment or two, 2L in `second` where it keeps two, none otherwise.
std::size_t first_count(Solver solver, const NetworkSpec& spec) {
  return moment_count(solver) >= 1 ? 2 * std::size_t(spec.n_layers()) : 0;
}
std::size_t second_count(Solver solver, const NetworkSpec& spec) {
  return moment_count(solver) >= 2 ? 2 * std::size_t(spec.n_layers()) : 0;
}

template <class T>
py::object forward_typed(const py::array& X, const py::list& coefs, const py::list& intercepts,
                         const std::string& activation, const std::string& output_activation,
                         int device, bool activations, double leaky_relu_slope) {
  const NetworkSpec spec = network_spec(coefs, activation, output_activation,
                                        any_loss_for(output_activation), leaky_relu_slope);
  const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec);
  check_array<T>(X, "X", {-1, py::ssize_t(spec.n_inputs())});
  check_device_argument(device);
  require_device(device);
  const py::ssize_t rows = X.shape(0);
  std::vector<T*> outputs;
  py::object result;
  if (activations) {
    result = layer_arrays<T>(spec, rows, outputs);
  } else {
    py::array_t<T> out({rows, py::ssize_t(spec.n_outputs())});
    outputs.push_back(out.mutable_data());
    result = out;
  }
  const T* x_data = const_data<T>(X);  // read from the Python object while the GIL is held
  {
    py::gil_scoped_release release;
    cuda::forward<T>(device, spec, params, x_data, rows, outputs);
  }
  return result;
}

template <class T>
py::object backward_typed(const py::array& X, const py::array& Y, const py::object& sample_weight,
                          const py::list& coefs, const py::list& intercepts,
                          const py::list& coef_grads, const py::list& intercept_grads,
                          const std::string& activation, const std::string& output_activation,
                          const std::string& loss, double alpha, int device, bool internals,
                          double leaky_relu_slope) {
  const NetworkSpec spec =
      network_spec(coefs, activation, output_activation, parse_loss(loss), leaky_relu_slope);
  const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec);
  check_array<T>(X, "X", {-1, py::ssize_t(spec.n_inputs())});
  const py::ssize_t rows = X.shape(0);
  check_array<T>(Y, "Y", {rows, py::ssize_t(spec.n_outputs())});
  const T* w = sample_weight_pointer<T>(sample_weight, rows);
  const cuda::HostParamsOut<T> grads =
      host_params_out<T>(coef_grads, intercept_grads, spec, "coef_grads", "intercept_grads");
  check_trainable(spec);
  check_device_argument(device);
  require_device(device);
  cuda::HostLayers<T> layers;
  py::list activation_list, delta_list;
  if (internals) {
    activation_list = layer_arrays<T>(spec, rows, layers.activations);
    delta_list = layer_arrays<T>(spec, rows, layers.deltas);
  }
  const T* x_data = const_data<T>(X);  // read from the Python objects while the GIL is held
  const T* y_data = const_data<T>(Y);
  double value;
  {
    py::gil_scoped_release release;
    value =
        cuda::backward<T>(device, spec, params, x_data, y_data, w, rows, T(alpha), grads, layers);
  }
  if (internals) return py::make_tuple(value, activation_list, delta_list);
  return py::float_(value);
}

// Trainer's Python face: one of the two typed trainers, chosen by X's dtype.
class PyTrainer {
 public:
  PyTrainer(const py::array& X, const py::array& Y, const py::object& sample_weight,
            const py::list& coefs, const py::list& intercepts, const py::list& first,
            const py::list& second, const std::string& activation,
            const std::string& output_activation, const std::string& loss, double alpha,
            const std::string& solver, py::ssize_t batch_size, double learning_rate,
            double momentum, bool nesterov, double beta_1, double beta_2, double epsilon,
            std::int64_t t, int device, bool fused, double leaky_relu_slope) {
    check_floating(X);
    float32_ = is_float32(X);
    spec_ = network_spec(coefs, activation, output_activation, parse_loss(loss), leaky_relu_slope);
    config_.solver = parse_solver(solver);
    config_.learning_rate = learning_rate;
    config_.momentum = momentum;
    config_.nesterov = nesterov;
    config_.beta_1 = beta_1;
    config_.beta_2 = beta_2;
    config_.epsilon = epsilon;
    if (float32_) {
      construct<float>(f_, X, Y, sample_weight, coefs, intercepts, first, second, alpha, batch_size,
                       t, device, fused);
    } else {
      construct<double>(d_, X, Y, sample_weight, coefs, intercepts, first, second, alpha,
                        batch_size, t, device, fused);
    }
  }

  py::tuple run(const py::array& order, double learning_rate, double loss_sum) {
    const std::int64_t* idx = order_pointer(order, n_samples_);
    if (moment_count(config_.solver) == 0) {
      throw py::value_error("run: an lbfgs Trainer only computes loss_and_gradient");
    }
    double total;
    std::int64_t t;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      if (float32_) {
        total = f_->run(idx, order.shape(0), learning_rate, loss_sum);
        t = f_->t();
      } else {
        total = d_->run(idx, order.shape(0), learning_rate, loss_sum);
        t = d_->t();
      }
    }
    return py::make_tuple(total, t);
  }

  double loss_and_gradient(const py::array& params, const py::array& grad) {
    if (float32_) return loss_and_gradient_typed<float>(*f_, params, grad);
    return loss_and_gradient_typed<double>(*d_, params, grad);
  }

  void set_parameters(const py::list& coefs, const py::list& intercepts, const py::list& first,
                      const py::list& second) {
    if (float32_) {
      set_parameters_typed<float>(*f_, coefs, intercepts, first, second);
    } else {
      set_parameters_typed<double>(*d_, coefs, intercepts, first, second);
    }
  }

  void get_parameters(const py::list& coefs, const py::list& intercepts, const py::list& first,
                      const py::list& second) {
    if (float32_) {
      get_parameters_typed<float>(*f_, coefs, intercepts, first, second);
    } else {
      get_parameters_typed<double>(*d_, coefs, intercepts, first, second);
    }
  }

  bool fused() const { return float32_ ? f_->fused() : d_->fused(); }

 private:
  template <class T>
  void construct(std::unique_ptr<cuda::Trainer<T>>& out, const py::array& X, const py::array& Y,
                 const py::object& sample_weight, const py::list& coefs, const py::list& intercepts,
                 const py::list& first, const py::list& second, double alpha,
                 py::ssize_t batch_size, std::int64_t t, int device, bool fused) {
    const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec_);
    check_array<T>(X, "X", {-1, py::ssize_t(spec_.n_inputs())});
    const py::ssize_t rows = X.shape(0);
    check_array<T>(Y, "Y", {rows, py::ssize_t(spec_.n_outputs())});
    const T* w = sample_weight_pointer<T>(sample_weight, rows);
    const auto m1 = to_const_pointers(
        moment_pointers<T>(first, "first", spec_.sizes, first_count(config_.solver, spec_), false));
    const auto m2 = to_const_pointers(moment_pointers<T>(
        second, "second", spec_.sizes, second_count(config_.solver, spec_), false));
    // L-BFGS's trainer takes no minibatches: its batch_size is not used.
    if (config_.solver != Solver::lbfgs && batch_size < 1) {
      throw py::value_error("batch_size must be at least 1, got " + std::to_string(batch_size));
    }
    check_trainable(spec_);
    check_device_argument(device);
    require_device(device);
    n_samples_ = rows;
    const T* x_data = const_data<T>(X);  // read from the Python objects while the GIL is held
    const T* y_data = const_data<T>(Y);
    py::gil_scoped_release release;
    out =
        std::make_unique<cuda::Trainer<T>>(device, spec_, config_, alpha, std::int64_t(batch_size),
                                           t, fused, x_data, y_data, w, rows, params, m1, m2);
  }

  template <class T>
  double loss_and_gradient_typed(cuda::Trainer<T>& trainer, const py::array& params,
                                 const py::array& grad) {
    const T* p = flat_pointer<T>(params, "params", spec_.n_params(), false);
    T* g = flat_pointer<T>(grad, "grad", spec_.n_params(), true);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return trainer.loss_and_gradient(p, g);
  }

  template <class T>
  void set_parameters_typed(cuda::Trainer<T>& trainer, const py::list& coefs,
                            const py::list& intercepts, const py::list& first,
                            const py::list& second) {
    const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec_);
    const auto m1 = to_const_pointers(
        moment_pointers<T>(first, "first", spec_.sizes, first_count(config_.solver, spec_), false));
    const auto m2 = to_const_pointers(moment_pointers<T>(
        second, "second", spec_.sizes, second_count(config_.solver, spec_), false));
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    trainer.set_parameters(params, m1, m2);
  }

  template <class T>
  void get_parameters_typed(cuda::Trainer<T>& trainer, const py::list& coefs,
                            const py::list& intercepts, const py::list& first,
                            const py::list& second) {
    const cuda::HostParamsOut<T> params =
        host_params_out<T>(coefs, intercepts, spec_, "coefs", "intercepts");
    const auto m1 =
        moment_pointers<T>(first, "first", spec_.sizes, first_count(config_.solver, spec_), true);
    const auto m2 = moment_pointers<T>(second, "second", spec_.sizes,
                                       second_count(config_.solver, spec_), true);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    trainer.get_parameters(params, m1, m2);
  }

  bool float32_ = true;
  NetworkSpec spec_;
  OptimizerConfig config_;
  std::int64_t n_samples_ = 0;
  std::unique_ptr<cuda::Trainer<float>> f_;
  std::unique_ptr<cuda::Trainer<double>> d_;
  // The device calls run without the GIL: this keeps two Python threads sharing one Trainer
  // from running on its buffers at once. Taken after the GIL is released (no lock-order
  // deadlock with it).
  std::mutex mutex_;
};

// "80,90-real" (CMake's list, comma-separated) -> ["sm_80", "sm_90"]; keywords such as "native" or
// "all" are kept as they are.
py::list architecture_list(const std::string& archs) {
  py::list out;
  std::size_t start = 0;
  while (start <= archs.size()) {
    std::size_t end = archs.find(',', start);
    if (end == std::string::npos) end = archs.size();
    std::string item = archs.substr(start, end - start);
    const std::size_t dash = item.find('-');
    if (dash != std::string::npos) item = item.substr(0, dash);
    if (!item.empty()) {
      const bool numeric = item.find_first_not_of("0123456789abf") == std::string::npos &&
                           item[0] >= '0' && item[0] <= '9';
      out.append(numeric ? "sm_" + item : item);
    }
    start = end + 1;
  }
  return out;
}

}  // namespace

}  // namespace fastmlp::bindings

#ifndef FASTMLP_CUDA_ARCHITECTURES
#define FASTMLP_CUDA_ARCHITECTURES ""
#endif

PYBIND11_MODULE(_cuda_core, m) {
  using namespace fastmlp;
  using namespace fastmlp::bindings;
  m.doc() =
      "fastmlp's CUDA backend (private: use the fastmlp package, which picks a backend in "
      "fastmlp._backend). It exports the interface every compiled fastmlp module exports. "
      "Importing needs no GPU and no CUDA runtime (cudart is linked statically); calls that "
      "need a device raise RuntimeError('fastmlp CUDA: no usable GPU: ...') without one, after "
      "their arguments passed the checks. Arithmetic is plain FP32/FP64 fused multiply-add "
      "everywhere, the fused kernel included (no TF32 tensor cores), so results match the CPU "
      "to rounding.";

  m.def(
      "capabilities",
      []() {
        py::dict d;
        d["device"] = "cuda";
        py::list dtypes;
        dtypes.append("float32");
        dtypes.append("float64");
        d["dtypes"] = dtypes;
        d["bf16"] = false;
        d["sparse"] = false;
        return d;
      },
      "{'device': 'cuda', 'dtypes': ['float32', 'float64'], 'bf16': False, 'sparse': False}.");

  m.def("device_count", &cuda::device_count,
        "Number of usable CUDA devices; 0 (never an exception) without a driver or GPU.");
  m.def("device_status", &cuda::device_status,
        "'' when a device is usable, else why not (cudaGetDeviceCount's error text).");
  m.def(
      "device_properties",
      [](int index) {
        const int count = cuda::device_count();
        if (index < 0 || index >= count) {
          throw py::index_error("device " + std::to_string(index) + " does not exist: " +
                                std::to_string(count) + " CUDA device(s) found");
        }
        const cuda::DeviceProperties p = cuda::device_properties(index);
        py::dict d;
        d["name"] = p.name;
        d["compute_capability"] = py::make_tuple(p.major, p.minor);
        d["total_memory"] = py::int_(p.total_memory);
        d["multiprocessors"] = p.multiprocessors;
        return d;
      },
      py::arg("index"),
      "{'name', 'compute_capability': (major, minor), 'total_memory' (bytes), "
      "'multiprocessors'} of device `index`; IndexError for a bad index.");
  m.def(
      "build_info",
      []() {
        py::dict d;
        d["cuda_runtime"] = cuda::runtime_version();
        d["architectures"] = architecture_list(FASTMLP_CUDA_ARCHITECTURES);
        d["fused_max_width"] = cuda::kFusedMaxWidth;
        return d;
      },
      "{'cuda_runtime': '13.0', 'architectures': ['sm_80', ...], 'fused_max_width': 128}.");

  m.def(
      "forward",
      [](const py::array& X, const py::list& coefs, const py::list& intercepts,
         const std::string& activation, const std::string& output_activation, int device,
         bool activations, double leaky_relu_slope) -> py::object {
        check_floating(X);
        if (is_float32(X)) {
          return forward_typed<float>(X, coefs, intercepts, activation, output_activation, device,
                                      activations, leaky_relu_slope);
        }
        return forward_typed<double>(X, coefs, intercepts, activation, output_activation, device,
                                     activations, leaky_relu_slope);
      },
      py::arg("X"), py::arg("coefs"), py::arg("intercepts"), py::arg("activation"),
      py::arg("output_activation"), py::kw_only(), py::arg("device") = 0,
      py::arg("activations") = false, py::arg("leaky_relu_slope") = 0.01,
      "The output activations (n_samples, n_outputs) of X (n_samples, n_inputs), computed on "
      "GPU `device`; with activations=True the list of every layer's output [z_1, ..., z_L].");

  m.def(
      "backward",
      [](const py::array& X, const py::array& Y, const py::object& sample_weight,
         const py::list& coefs, const py::list& intercepts, const py::list& coef_grads,
         const py::list& intercept_grads, const std::string& activation,
         const std::string& output_activation, const std::string& loss, double alpha, int device,
         bool internals, double leaky_relu_slope) -> py::object {
        check_floating(X);
        if (is_float32(X)) {
          return backward_typed<float>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                       intercept_grads, activation, output_activation, loss, alpha,
                                       device, internals, leaky_relu_slope);
        }
        return backward_typed<double>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                      intercept_grads, activation, output_activation, loss, alpha,
                                      device, internals, leaky_relu_slope);
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"), py::arg("intercepts"),
      py::arg("coef_grads"), py::arg("intercept_grads"), py::arg("activation"),
      py::arg("output_activation"), py::arg("loss"), py::arg("alpha"), py::kw_only(),
      py::arg("device") = 0, py::arg("internals") = false, py::arg("leaky_relu_slope") = 0.01,
      "The weighted mean loss of (X, Y) plus its L2 term, computed on GPU `device`; writes the "
      "gradients into coef_grads and intercept_grads (host arrays) in place. With "
      "internals=True returns (loss, activations, deltas): every layer's output and local "
      "error, the errors weighted by the sample weights and not divided by their sum.");

  py::class_<PyTrainer>(
      m, "Trainer",
      "Data, parameters and optimizer moments resident on one GPU for a whole fit, with a CUDA "
      "stream of its own; built once per fit (checks, parsing, uploads, workspace). Option "
      "fused=True (the default) lets a network whose every width (input and output included) "
      "is at most build_info()['fused_max_width'] and that has at most 16 weight layers run "
      "each batch's forward pass, loss, output error and backward deltas of all layers in ONE "
      "kernel launch, each block holding a tile of batch rows in shared memory; weight "
      "gradients and the optimizer step use the ordinary kernels. Its arithmetic is the same "
      "FP32/FP64 FMA as the unfused path (no TF32), so results differ from it only by summation "
      "order. Other networks run unfused; the fused property says which.")
      .def(
          py::init<const py::array&, const py::array&, const py::object&, const py::list&,
                   const py::list&, const py::list&, const py::list&, const std::string&,
                   const std::string&, const std::string&, double, const std::string&, py::ssize_t,
                   double, double, bool, double, double, double, std::int64_t, int, bool, double>(),
          py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"),
          py::arg("intercepts"), py::arg("first"), py::arg("second"), py::kw_only(),
          py::arg("activation"), py::arg("output_activation"), py::arg("loss"), py::arg("alpha"),
          py::arg("solver"), py::arg("batch_size"), py::arg("learning_rate"), py::arg("momentum"),
          py::arg("nesterov"), py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"),
          py::arg("t"), py::arg("device") = 0, py::arg("fused") = true,
          py::arg("leaky_relu_slope") = 0.01)
      .def("run", &PyTrainer::run, py::arg("order"), py::arg("learning_rate"),
           py::arg("loss_sum") = 0.0,
           "Minibatches of batch_size over order (int64 row indices, checked and uploaded; the "
           "last batch may be short), each followed by an optimizer step at learning_rate. "
           "Returns (sum of batch loss * batch length, adam's step count so far). sgd and adam "
           "only.")
      .def("loss_and_gradient", &PyTrainer::loss_and_gradient, py::arg("params"), py::arg("grad"),
           "L-BFGS: the full-batch loss at the flat parameter vector params (W_0..W_{L-1} then "
           "b_0..b_{L-1}, row-major, X's dtype), its gradient written into grad. The trained "
           "parameters on the device are left as they are.")
      .def("set_parameters", &PyTrainer::set_parameters, py::arg("coefs"), py::arg("intercepts"),
           py::arg("first"), py::arg("second"),
           "Uploads these host arrays as the current parameters and optimizer moments.")
      .def("get_parameters", &PyTrainer::get_parameters, py::arg("coefs"), py::arg("intercepts"),
           py::arg("first"), py::arg("second"),
           "Downloads the current parameters and optimizer moments into these host arrays.")
      .def_property_readonly("fused", &PyTrainer::fused,
                             "Whether the fully fused kernel is in use.");
}
