// The host API of api.hpp over DeviceNet: the one-call forward and backward, and the Trainer
// that keeps data, parameters and optimizer moments on the device for a whole fit.
#include <algorithm>

#include "api.hpp"
#include "check.cuh"
#include "device_net.cuh"
#include "kernels.cuh"

namespace fastmlp::cuda {

namespace {

template <class T>
std::vector<const T*> layout_of(const HostParams<T>& p) {
  std::vector<const T*> arrays(p.coefs);
  arrays.insert(arrays.end(), p.intercepts.begin(), p.intercepts.end());
  return arrays;
}

template <class T>
std::vector<T*> layout_of(const HostParamsOut<T>& p) {
  std::vector<T*> arrays(p.coefs);
  arrays.insert(arrays.end(), p.intercepts.begin(), p.intercepts.end());
  return arrays;
}

}  // namespace

template <class T>
void forward(int device, const NetworkSpec& spec, const HostParams<T>& params, const T* X,
             std::int64_t rows, const std::vector<T*>& outputs) {
  DeviceGuard guard(device);
  // The fused kernel where the network fits it (the output alone: every layer's output comes
  // from the layer-by-layer pass, see predict_host).
  DeviceNet<T> net(device, spec, true);
  DeviceBuffer<T> p(std::size_t(spec.n_params()));
  net.upload_layout(layout_of(params), p.get());
  net.predict_host(p.get(), X, rows, outputs);
}

template <class T>
double backward(int device, const NetworkSpec& spec, const HostParams<T>& params, const T* X,
                const T* Y, const T* w, std::int64_t rows, T alpha, const HostParamsOut<T>& grads,
                const HostLayers<T>& internals) {
  DeviceGuard guard(device);
  DeviceNet<T> net(device, spec, false);
  DeviceBuffer<T> p(std::size_t(spec.n_params())), g(std::size_t(spec.n_params()));
  DeviceBuffer<T> x(std::size_t(rows * spec.n_inputs())), y(std::size_t(rows * spec.n_outputs()));
  DeviceBuffer<T> wd(w ? std::size_t(rows) : 0);
  net.upload_layout(layout_of(params), p.get());
  copy_to_device(x.get(), X, x.size(), net.stream());
  copy_to_device(y.get(), Y, y.size(), net.stream());
  if (w) copy_to_device(wd.get(), w, wd.size(), net.stream());
  const double value = net.loss_and_gradient(p.get(), x.get(), y.get(), w ? wd.get() : nullptr,
                                             rows, alpha, g.get(), &internals);
  net.download_layout(g.get(), layout_of(grads));
  return value;
}

template <class T>
struct Trainer<T>::Impl {
  Impl(int device, const NetworkSpec& spec, const OptimizerConfig& config, double alpha,
       std::int64_t batch_size, std::int64_t t, bool fused)
      : device(device),
        config(config),
        alpha(alpha),
        batch_size(batch_size),
        t(t),
        net(device, spec, fused) {}
  int device;
  OptimizerConfig config;  // learning_rate: the last run's
  double alpha;
  std::int64_t batch_size;
  std::int64_t t;  // adam's step count
  DeviceNet<T> net;
  std::int64_t n = 0;
  DeviceBuffer<T> X, Y, w;        // (n, n_in), (n, n_out), (n,) or empty
  DeviceBuffer<T> params, grads;  // the parameter layout
  DeviceBuffer<T> first, second;  // moments, the same layout, as moment_count(solver) asks
  DeviceBuffer<T> trial;          // loss_and_gradient's parameters, apart from the trained ones
  DeviceBuffer<std::int64_t> order;
  // sum ||W||^2 as the last update summed it, carried to the next run (as the CPU trainer
  // does, so that batch losses do not depend on where an epoch was cut); < 0: unknown.
  double sq_norm = -1.0;

  int moments() const { return moment_count(config.solver); }
  void upload_state(const HostParams<T>& p, const std::vector<const T*>& m1,
                    const std::vector<const T*>& m2) {
    sq_norm = -1.0;  // new weights: their norm is summed afresh at the next run
    net.upload_layout(layout_of(p), params.get());
    if (moments() >= 1) net.upload_layout(m1, first.get());
    if (moments() >= 2) net.upload_layout(m2, second.get());
    FASTMLP_CUDA_CHECK(cudaStreamSynchronize(net.stream()));
  }
};

template <class T>
Trainer<T>::Trainer(int device, const NetworkSpec& spec, const OptimizerConfig& config,
                    double alpha, std::int64_t batch_size, std::int64_t t, bool fused, const T* X,
                    const T* Y, const T* w, std::int64_t n_samples, const HostParams<T>& params,
                    const std::vector<const T*>& first, const std::vector<const T*>& second) {
  // Every call makes the trainer's device current for its duration (DeviceGuard), and frees
  // what it allocated on that device if it fails half-way.
  DeviceGuard guard(device);
  try {
    impl_ = std::make_unique<Impl>(device, spec, config, alpha, batch_size, t, fused);
    Impl& m = *impl_;
    const std::size_t n_params = std::size_t(spec.n_params());
    m.n = n_samples;
    m.X.resize(std::size_t(n_samples * spec.n_inputs()));
    m.Y.resize(std::size_t(n_samples * spec.n_outputs()));
    if (w) m.w.resize(std::size_t(n_samples));
    m.params.resize(n_params);
    m.grads.resize(n_params);
    if (m.moments() >= 1) m.first.resize(n_params);
    if (m.moments() >= 2) m.second.resize(n_params);
    copy_to_device(m.X.get(), X, m.X.size(), m.net.stream());
    copy_to_device(m.Y.get(), Y, m.Y.size(), m.net.stream());
    if (w) copy_to_device(m.w.get(), w, m.w.size(), m.net.stream());
    m.upload_state(params, first, second);
  } catch (...) {
    impl_.reset();
    throw;
  }
}

template <class T>
Trainer<T>::~Trainer() {
  if (!impl_) return;
  try {
    DeviceGuard guard(impl_->device);
    impl_.reset();  // frees on the trainer's device
  } catch (...) {
    // No device to switch to any more: there is nothing left to free either.
  }
}

template <class T>
double Trainer<T>::run(const std::int64_t* order, std::int64_t n_order, double learning_rate,
                       double loss_sum) {
  Impl& m = *impl_;
  if (m.moments() == 0) {
    throw std::invalid_argument("run: an lbfgs trainer only computes loss_and_gradient");
  }
  const std::int64_t batch = std::min(m.batch_size, n_order);
  if (batch < 1) return loss_sum;
  DeviceGuard guard(m.device);
  DeviceNet<T>& net = m.net;
  const NetworkSpec& spec = net.spec();
  const cudaStream_t stream = net.stream();
  m.config.learning_rate = learning_rate;
  net.reserve_rows(batch);
  m.order.reserve(std::size_t(n_order));
  copy_to_device(m.order.get(), order, std::size_t(n_order), stream);

  const T alpha = T(m.alpha);  // in the working precision, as every use of it below
  PassScalars* s = net.scalars();
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(s, 0, sizeof(PassScalars), stream));
  const bool want_sq_norm = alpha != T(0);
  if (want_sq_norm && m.sq_norm < 0) {
    add_sum<T>(m.params.get(), spec.n_coefs(), true, &s->sq_norm, stream);
  }
  PassScalars start{};
  start.accumulated = loss_sum;
  start.sq_norm = m.sq_norm;
  if (want_sq_norm && m.sq_norm >= 0) {
    copy_to_device(&s->sq_norm, &start.sq_norm, 1, stream);
  }
  copy_to_device(&s->accumulated, &start.accumulated, 1, stream);

  const bool adam = m.config.solver == Solver::adam;
  const std::int64_t t0 = m.t;
  const std::int64_t n_batches = (n_order + batch - 1) / batch;
  for (std::int64_t b = 0; b < n_batches; ++b) {
    const std::int64_t start = b * batch;
    const std::int64_t rows = std::min(batch, n_order - start);
    const T* wb = net.train_pass(m.params.get(), m.X.get(), m.Y.get(), m.w.get(),
                                 m.order.get() + start, rows, m.grads.get(), false);
    finish_batch<T>(wb, rows, double(alpha), want_sq_norm, s, stream);
    // Adam's rate for step t (from 1) is the shared rule, on the host: t is known per batch.
    const double adam_rate = adam ? adam_step_rate(m.config, t0 + b + 1) : 0.0;
    update_parameters<T>(m.config, adam_rate, m.params.get(), m.grads.get(), m.first.get(),
                         m.second.get(), spec.n_params(), spec.n_coefs(), alpha, s,
                         want_sq_norm ? &s->sq_norm : nullptr, net.sm_count(), stream);
  }
  // The call's one synchronisation.
  PassScalars host{};
  copy_to_host(&host, s, 1, stream);
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (adam) m.t = t0 + n_batches;
  if (want_sq_norm) m.sq_norm = host.sq_norm;
  return host.accumulated;
}

template <class T>
std::int64_t Trainer<T>::t() const {
  return impl_->t;
}

template <class T>
double Trainer<T>::loss_and_gradient(const T* params, T* grad) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  // The flat vector is the device's parameter layout: one copy up, one down.
  const std::size_t n_params = std::size_t(m.net.spec().n_params());
  m.trial.reserve(n_params);
  copy_to_device(m.trial.get(), params, n_params, m.net.stream());
  const double value = m.net.loss_and_gradient(m.trial.get(), m.X.get(), m.Y.get(), m.w.get(), m.n,
                                               T(m.alpha), m.grads.get());
  copy_to_host(grad, m.grads.get(), n_params, m.net.stream());
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(m.net.stream()));
  return value;
}

template <class T>
void Trainer<T>::set_parameters(const HostParams<T>& params, const std::vector<const T*>& first,
                                const std::vector<const T*>& second) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.upload_state(params, first, second);
}

template <class T>
void Trainer<T>::get_parameters(const HostParamsOut<T>& params, const std::vector<T*>& first,
                                const std::vector<T*>& second) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.net.download_layout(m.params.get(), layout_of(params));
  if (m.moments() >= 1) m.net.download_layout(m.first.get(), first);
  if (m.moments() >= 2) m.net.download_layout(m.second.get(), second);
}

template <class T>
bool Trainer<T>::fused() const {
  return impl_->net.fused();
}

#define FASTMLP_INSTANTIATE_API(T)                                                                \
  template void forward<T>(int, const NetworkSpec&, const HostParams<T>&, const T*, std::int64_t, \
                           const std::vector<T*>&);                                               \
  template double backward<T>(int, const NetworkSpec&, const HostParams<T>&, const T*, const T*,  \
                              const T*, std::int64_t, T, const HostParamsOut<T>&,                 \
                              const HostLayers<T>&);                                              \
  template class Trainer<T>;

FASTMLP_INSTANTIATE_API(float)
FASTMLP_INSTANTIATE_API(double)

}  // namespace fastmlp::cuda
