// fastmlp._cuda_core: the pybind11 binding of the CUDA kernels (cpp/cuda/). The contract with
// the Python side is cpp/cuda/README.md. Like fastmlp._core, it only checks and converts:
// every argument (dtype, shape, contiguity, writeability, names, order indices, batch_size) is
// checked BEFORE the device is touched, so argument errors read the same with or without a
// GPU; then a missing GPU raises RuntimeError("fastmlp CUDA: no usable GPU: ..."). The checks
// of names and network shapes are the CPU core's own (linked in), so messages match _core's.
// The GIL is released while the device computes.
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
#include "fastmlp/activation.hpp"
#include "fastmlp/loss.hpp"
#include "fastmlp/network.hpp"
#include "fastmlp/optimizer.hpp"
#include "network_args.hpp"

namespace py = pybind11;

namespace fastmlp::bindings {

namespace {

static_assert(int(Activation::identity) == int(cuda::Act::identity) &&
                  int(Activation::logistic) == int(cuda::Act::logistic) &&
                  int(Activation::tanh) == int(cuda::Act::tanh) &&
                  int(Activation::relu) == int(cuda::Act::relu) &&
                  int(Activation::step) == int(cuda::Act::step) &&
                  int(Activation::softmax) == int(cuda::Act::softmax) &&
                  int(Activation::exp) == int(cuda::Act::exp),
              "cuda::Act must list fastmlp::Activation's values in the same order");
static_assert(int(Loss::squared_error) == int(cuda::LossKind::squared_error) &&
                  int(Loss::log_loss) == int(cuda::LossKind::log_loss) &&
                  int(Loss::poisson) == int(cuda::LossKind::poisson),
              "cuda::LossKind must list fastmlp::Loss's values in the same order");
static_assert(int(Solver::sgd) == int(cuda::SolverKind::sgd) &&
                  int(Solver::adam) == int(cuda::SolverKind::adam),
              "cuda::SolverKind must list fastmlp::Solver's values in the same order");

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

// A network described by coefs[l] (fan_in, fan_out): its shape, checked by the CPU core's own
// rules (sizes, hidden/output activations, output/loss pair).
template <class T>
cuda::NetSpec describe_network(const py::list& coefs, const std::string& activation,
                               const std::string& output_activation, Loss loss) {
  const Network<T> net = network_shape<T>(coefs, activation, output_activation, loss);
  cuda::NetSpec spec;
  spec.sizes.assign(net.sizes.begin(), net.sizes.end());
  spec.hidden = static_cast<cuda::Act>(net.hidden);
  spec.output = static_cast<cuda::Act>(net.output);
  spec.loss = static_cast<cuda::LossKind>(loss);
  return spec;
}

// Raises ValueError, as the CPU core does, when training needs a derivative the network lacks
// (step units run forward only).
void check_trainable_spec(const cuda::NetSpec& spec) {
  Network<float> net;
  net.sizes.assign(spec.sizes.begin(), spec.sizes.end());
  net.hidden = static_cast<Activation>(spec.hidden);
  net.output = static_cast<Activation>(spec.output);
  check_trainable(net, static_cast<Loss>(spec.loss));
}

std::vector<Index> index_sizes(const cuda::NetSpec& spec) {
  return std::vector<Index>(spec.sizes.begin(), spec.sizes.end());
}

template <class T>
cuda::HostParams<T> host_params(const py::list& coefs, const py::list& intercepts,
                                const cuda::NetSpec& spec) {
  const auto sizes = index_sizes(spec);
  return {to_const_pointers(layer_pointers<T>(coefs, "coefs", sizes, true, false)),
          to_const_pointers(layer_pointers<T>(intercepts, "intercepts", sizes, false, false))};
}

template <class T>
cuda::HostParamsOut<T> host_grads(const py::list& coef_grads, const py::list& intercept_grads,
                                  const cuda::NetSpec& spec) {
  const auto sizes = index_sizes(spec);
  return {layer_pointers<T>(coef_grads, "coef_grads", sizes, true, true),
          layer_pointers<T>(intercept_grads, "intercept_grads", sizes, false, true)};
}

// Optimizer moments (see network_args.hpp), against the network's sizes.
template <class T>
std::vector<T*> moment_pointers_for(const py::list& arrays, const std::string& name,
                                    const cuda::NetSpec& spec, std::size_t count, bool writeable) {
  return moment_pointers<T>(arrays, name, index_sizes(spec), count, writeable);
}

template <class T>
py::array forward_typed(const py::array& X, const py::list& coefs, const py::list& intercepts,
                        const std::string& activation, const std::string& output_activation,
                        int device) {
  // squared_error accepts every output but softmax; softmax needs log_loss to pass the check.
  const Loss any_loss = output_activation == "softmax" ? Loss::log_loss : Loss::squared_error;
  const cuda::NetSpec spec = describe_network<T>(coefs, activation, output_activation, any_loss);
  const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec);
  check_array<T>(X, "X", {-1, py::ssize_t(spec.sizes.front())});
  check_device_argument(device);
  require_device(device);
  const std::int64_t rows = X.shape(0);
  py::array_t<T> out({py::ssize_t(rows), py::ssize_t(spec.sizes.back())});
  T* out_data = out.mutable_data();
  const T* x_data = const_data<T>(X);  // read from the Python object while the GIL is held
  {
    py::gil_scoped_release release;
    cuda::forward<T>(device, spec, params, x_data, rows, out_data);
  }
  return out;
}

template <class T>
double loss_and_gradients_typed(const py::array& X, const py::array& Y,
                                const py::object& sample_weight, const py::list& coefs,
                                const py::list& intercepts, const py::list& coef_grads,
                                const py::list& intercept_grads, const std::string& activation,
                                const std::string& output_activation, const std::string& loss,
                                double alpha, int device) {
  const Loss loss_kind = parse_loss(loss);
  const cuda::NetSpec spec = describe_network<T>(coefs, activation, output_activation, loss_kind);
  const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec);
  check_array<T>(X, "X", {-1, py::ssize_t(spec.sizes.front())});
  const py::ssize_t rows = X.shape(0);
  check_array<T>(Y, "Y", {rows, py::ssize_t(spec.sizes.back())});
  const T* w = sample_weight_pointer<T>(sample_weight, rows);
  const cuda::HostParamsOut<T> grads = host_grads<T>(coef_grads, intercept_grads, spec);
  check_trainable_spec(spec);
  check_device_argument(device);
  require_device(device);
  const T* x_data = const_data<T>(X);  // read from the Python objects while the GIL is held
  const T* y_data = const_data<T>(Y);
  py::gil_scoped_release release;
  return cuda::loss_and_gradients<T>(device, spec, params, x_data, y_data, w, rows, T(alpha),
                                     grads);
}

// Trainer's Python face: one of the two typed trainers, chosen by X's dtype.
class PyTrainer {
 public:
  PyTrainer(const py::array& X, const py::array& Y, const py::object& sample_weight,
            const py::list& coefs, const py::list& intercepts, const py::list& first,
            const py::list& second, const std::string& activation,
            const std::string& output_activation, const std::string& loss,
            const std::string& solver, int device, bool fused) {
    check_floating(X);
    float32_ = is_float32(X);
    const Loss loss_kind = parse_loss(loss);
    solver_ = static_cast<cuda::SolverKind>(parse_solver(solver));
    if (float32_) {
      construct<float>(f_, X, Y, sample_weight, coefs, intercepts, first, second, activation,
                       output_activation, loss_kind, device, fused);
    } else {
      construct<double>(d_, X, Y, sample_weight, coefs, intercepts, first, second, activation,
                        output_activation, loss_kind, device, fused);
    }
  }

  py::tuple train_epoch(const py::array& order, py::ssize_t batch_size, double alpha,
                        double learning_rate, double momentum, bool nesterov, double beta_1,
                        double beta_2, double epsilon, std::int64_t t) {
    const std::int64_t* idx = order_pointer(order, n_samples());
    if (batch_size < 1) throw py::value_error("batch_size must be at least 1");
    // As the CPU core: an empty epoch does nothing (and does not ask for a derivative).
    if (order.shape(0) > 0) check_trainable_spec(spec_);
    const cuda::StepConfig config{learning_rate, momentum, nesterov, beta_1, beta_2, epsilon};
    double accumulated;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      accumulated = float32_
                        ? f_->train_epoch(idx, order.shape(0), batch_size, float(alpha), config, t)
                        : d_->train_epoch(idx, order.shape(0), batch_size, alpha, config, t);
    }
    return py::make_tuple(accumulated, t);
  }

  void download(const py::list& coefs, const py::list& intercepts, const py::list& first,
                const py::list& second) {
    if (float32_) {
      download_typed<float>(*f_, coefs, intercepts, first, second);
    } else {
      download_typed<double>(*d_, coefs, intercepts, first, second);
    }
  }

  void upload(const py::list& coefs, const py::list& intercepts) {
    if (float32_) {
      upload_typed<float>(*f_, coefs, intercepts);
    } else {
      upload_typed<double>(*d_, coefs, intercepts);
    }
  }

  double loss_and_gradients(const py::list& coefs, const py::list& intercepts,
                            const py::list& coef_grads, const py::list& intercept_grads,
                            double alpha) {
    if (float32_) {
      return lag_typed<float>(*f_, coefs, intercepts, coef_grads, intercept_grads, alpha);
    }
    return lag_typed<double>(*d_, coefs, intercepts, coef_grads, intercept_grads, alpha);
  }

  py::array predict(const py::array& X) {
    if (float32_) return predict_typed<float>(*f_, X);
    return predict_typed<double>(*d_, X);
  }

  std::int64_t n_samples() const { return float32_ ? f_->n_samples() : d_->n_samples(); }
  py::dtype dtype() const { return float32_ ? py::dtype::of<float>() : py::dtype::of<double>(); }
  bool fused() const { return float32_ ? f_->fused() : d_->fused(); }

 private:
  template <class T>
  void construct(std::unique_ptr<cuda::Trainer<T>>& out, const py::array& X, const py::array& Y,
                 const py::object& sample_weight, const py::list& coefs, const py::list& intercepts,
                 const py::list& first, const py::list& second, const std::string& activation,
                 const std::string& output_activation, Loss loss, int device, bool fused) {
    spec_ = describe_network<T>(coefs, activation, output_activation, loss);
    const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec_);
    check_array<T>(X, "X", {-1, py::ssize_t(spec_.sizes.front())});
    const py::ssize_t rows = X.shape(0);
    check_array<T>(Y, "Y", {rows, py::ssize_t(spec_.sizes.back())});
    const T* w = sample_weight_pointer<T>(sample_weight, rows);
    const std::size_t L2 = 2 * std::size_t(spec_.n_layers());
    const bool adam = solver_ == cuda::SolverKind::adam;
    const auto m1 = to_const_pointers(moment_pointers_for<T>(first, "first", spec_, L2, false));
    const auto m2 =
        to_const_pointers(moment_pointers_for<T>(second, "second", spec_, adam ? L2 : 0, false));
    check_device_argument(device);
    require_device(device);
    const T* x_data = const_data<T>(X);  // read from the Python objects while the GIL is held
    const T* y_data = const_data<T>(Y);
    py::gil_scoped_release release;
    out = std::make_unique<cuda::Trainer<T>>(device, spec_, solver_, fused, x_data, y_data, w, rows,
                                             params, m1, m2);
  }

  template <class T>
  void download_typed(cuda::Trainer<T>& trainer, const py::list& coefs, const py::list& intercepts,
                      const py::list& first, const py::list& second) {
    const auto sizes = index_sizes(spec_);
    const cuda::HostParamsOut<T> params{
        layer_pointers<T>(coefs, "coefs", sizes, true, true),
        layer_pointers<T>(intercepts, "intercepts", sizes, false, true)};
    const std::size_t L2 = 2 * std::size_t(spec_.n_layers());
    const bool adam = solver_ == cuda::SolverKind::adam;
    const auto m1 = moment_pointers_for<T>(first, "first", spec_, L2, true);
    const auto m2 = moment_pointers_for<T>(second, "second", spec_, adam ? L2 : 0, true);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    trainer.download(params, m1, m2);
  }

  template <class T>
  void upload_typed(cuda::Trainer<T>& trainer, const py::list& coefs, const py::list& intercepts) {
    const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec_);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    trainer.upload(params);
  }

  template <class T>
  double lag_typed(cuda::Trainer<T>& trainer, const py::list& coefs, const py::list& intercepts,
                   const py::list& coef_grads, const py::list& intercept_grads, double alpha) {
    const cuda::HostParams<T> params = host_params<T>(coefs, intercepts, spec_);
    const cuda::HostParamsOut<T> grads = host_grads<T>(coef_grads, intercept_grads, spec_);
    check_trainable_spec(spec_);
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    return trainer.loss_and_gradients(params, T(alpha), grads);
  }

  template <class T>
  py::array predict_typed(cuda::Trainer<T>& trainer, const py::array& X) {
    check_array<T>(X, "X", {-1, py::ssize_t(spec_.sizes.front())});
    const std::int64_t rows = X.shape(0);
    py::array_t<T> out({py::ssize_t(rows), py::ssize_t(spec_.sizes.back())});
    T* out_data = out.mutable_data();
    const T* x_data = const_data<T>(X);  // read from the Python object while the GIL is held
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      trainer.predict(x_data, rows, out_data);
    }
    return out;
  }

  bool float32_ = true;
  cuda::SolverKind solver_ = cuda::SolverKind::sgd;
  cuda::NetSpec spec_;
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
      "fastmlp's CUDA kernels (private: use the fastmlp package). Importing needs no GPU and "
      "no CUDA runtime (cudart is linked statically); calls that need a device raise "
      "RuntimeError('fastmlp CUDA: no usable GPU: ...') without one. Arithmetic is plain "
      "FP32/FP64 fused multiply-add everywhere, the fused kernel included (no TF32 tensor "
      "cores), so results match fastmlp._core to rounding.";

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
         const std::string& activation, const std::string& output_activation,
         int device) -> py::array {
        check_floating(X);
        if (is_float32(X)) {
          return forward_typed<float>(X, coefs, intercepts, activation, output_activation, device);
        }
        return forward_typed<double>(X, coefs, intercepts, activation, output_activation, device);
      },
      py::arg("X"), py::arg("coefs"), py::arg("intercepts"), py::arg("activation"),
      py::arg("output_activation"), py::arg("device") = 0,
      "fastmlp._core.forward on the GPU: output activations (n_samples, n_outputs) of X "
      "(n_samples, n_inputs).");

  m.def(
      "loss_and_gradients",
      [](const py::array& X, const py::array& Y, const py::object& sample_weight,
         const py::list& coefs, const py::list& intercepts, const py::list& coef_grads,
         const py::list& intercept_grads, const std::string& activation,
         const std::string& output_activation, const std::string& loss, double alpha, int device) {
        check_floating(X);
        if (is_float32(X)) {
          return loss_and_gradients_typed<float>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                                 intercept_grads, activation, output_activation,
                                                 loss, alpha, device);
        }
        return loss_and_gradients_typed<double>(X, Y, sample_weight, coefs, intercepts, coef_grads,
                                                intercept_grads, activation, output_activation,
                                                loss, alpha, device);
      },
      py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"), py::arg("intercepts"),
      py::arg("coef_grads"), py::arg("intercept_grads"), py::arg("activation"),
      py::arg("output_activation"), py::arg("loss"), py::arg("alpha"), py::arg("device") = 0,
      "fastmlp._core.loss_and_gradients on the GPU: the mean loss of (X, Y) with its L2 term; "
      "writes the gradients into coef_grads and intercept_grads (host arrays) in place.");

  py::class_<PyTrainer>(
      m, "Trainer",
      "Data, parameters and optimizer moments resident on one GPU for a whole fit, with a CUDA "
      "stream of its own. fused=True lets a network whose every width (input and output "
      "included) is at most build_info()['fused_max_width'] and that has at most 16 weight "
      "layers run each batch's forward pass, "
      "loss, output error and backward deltas of all layers in ONE kernel launch, each block "
      "holding a tile of batch rows in shared memory; weight gradients and the optimizer step "
      "use the ordinary kernels. Its arithmetic is the same FP32/FP64 FMA as the unfused path "
      "(no TF32), so results differ from it only by summation order. Other networks run unfused; "
      "the fused property says which.")
      .def(py::init<const py::array&, const py::array&, const py::object&, const py::list&,
                    const py::list&, const py::list&, const py::list&, const std::string&,
                    const std::string&, const std::string&, const std::string&, int, bool>(),
           py::arg("X"), py::arg("Y"), py::arg("sample_weight"), py::arg("coefs"),
           py::arg("intercepts"), py::arg("first"), py::arg("second"), py::arg("activation"),
           py::arg("output_activation"), py::arg("loss"), py::arg("solver"), py::arg("device") = 0,
           py::arg("fused") = false)
      .def("train_epoch", &PyTrainer::train_epoch, py::arg("order"), py::arg("batch_size"),
           py::arg("alpha"), py::arg("learning_rate"), py::arg("momentum"), py::arg("nesterov"),
           py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("t"),
           "fastmlp._core.train_epoch's semantics on the resident data: returns (sum of batch "
           "loss * batch length, adam's step count). order (int64, host) is checked and "
           "uploaded; the batch rows are gathered on the device.")
      .def("download", &PyTrainer::download, py::arg("coefs"), py::arg("intercepts"),
           py::arg("first"), py::arg("second"),
           "Copies the device's parameters and optimizer moments into these host arrays.")
      .def("upload", &PyTrainer::upload, py::arg("coefs"), py::arg("intercepts"),
           "Replaces the device's parameters with these host arrays.")
      .def("loss_and_gradients", &PyTrainer::loss_and_gradients, py::arg("coefs"),
           py::arg("intercepts"), py::arg("coef_grads"), py::arg("intercept_grads"),
           py::arg("alpha"),
           "fastmlp._core.loss_and_gradients of the resident X, Y, sample_weight at these host "
           "parameters (the trained device parameters are left as they are); writes the host "
           "gradient arrays.")
      .def("predict", &PyTrainer::predict, py::arg("X"),
           "Output activations (n_samples, n_outputs) of host X with the resident parameters.")
      .def_property_readonly("n_samples", &PyTrainer::n_samples)
      .def_property_readonly("dtype", &PyTrainer::dtype)
      .def_property_readonly("fused", &PyTrainer::fused,
                             "Whether the fully fused kernel is in use.");
}
