// The host API of api.hpp over DeviceNet: the one-call forward and loss_and_gradients, and the
// Trainer that keeps data, parameters and optimizer moments on the device for a whole fit.
#include <algorithm>
#include <cmath>

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

// Adam's step size at step t (counted from 1), as the CPU core's adam_step_rate:
// lr sqrt(1 - b2^t) / (1 - b1^t). Host-side: t is known for every batch of the epoch.
double adam_step_rate(const StepConfig& c, std::int64_t t) {
  return c.learning_rate * std::sqrt(1.0 - std::pow(c.beta_2, double(t))) /
         (1.0 - std::pow(c.beta_1, double(t)));
}

}  // namespace

template <class T>
void forward(int device, const NetSpec& spec, const HostParams<T>& params, const T* X,
             std::int64_t rows, T* out) {
  DeviceGuard guard(device);
  DeviceNet<T> net(device, spec, false);
  DeviceBuffer<T> p(std::size_t(spec.n_params()));
  net.upload_layout(layout_of(params), p.get());
  net.predict_host(p.get(), X, rows, out);
}

template <class T>
double loss_and_gradients(int device, const NetSpec& spec, const HostParams<T>& params, const T* X,
                          const T* Y, const T* w, std::int64_t rows, T alpha,
                          const HostParamsOut<T>& grads) {
  DeviceGuard guard(device);
  DeviceNet<T> net(device, spec, false);
  const std::int64_t n_in = spec.sizes.front(), n_out = spec.sizes.back();
  DeviceBuffer<T> p(std::size_t(spec.n_params())), g(std::size_t(spec.n_params()));
  DeviceBuffer<T> x(std::size_t(rows * n_in)), y(std::size_t(rows * n_out));
  DeviceBuffer<T> wd(w ? std::size_t(rows) : 0);
  net.upload_layout(layout_of(params), p.get());
  copy_to_device(x.get(), X, x.size(), net.stream());
  copy_to_device(y.get(), Y, y.size(), net.stream());
  if (w) copy_to_device(wd.get(), w, wd.size(), net.stream());
  const double value = net.loss_and_gradients(p.get(), x.get(), y.get(), w ? wd.get() : nullptr,
                                              rows, alpha, g.get());
  net.download_layout(g.get(), layout_of(grads));
  return value;
}

template <class T>
struct Trainer<T>::Impl {
  Impl(int device, const NetSpec& spec, SolverKind solver, bool fused)
      : device(device), solver(solver), net(device, spec, fused) {}
  int device;
  SolverKind solver;
  DeviceNet<T> net;
  std::int64_t n = 0;
  DeviceBuffer<T> X, Y, w;        // (n, n_in), (n, n_out), (n,) or empty
  DeviceBuffer<T> params, grads;  // the parameter layout
  DeviceBuffer<T> first, second;  // moments, the same layout (second: adam only)
  DeviceBuffer<T> trial;          // loss_and_gradients' parameters, apart from the trained ones
  DeviceBuffer<std::int64_t> order;
};

template <class T>
Trainer<T>::Trainer(int device, const NetSpec& spec, SolverKind solver, bool fused, const T* X,
                    const T* Y, const T* w, std::int64_t n_samples, const HostParams<T>& params,
                    const std::vector<const T*>& first, const std::vector<const T*>& second) {
  // Every call makes the trainer's device current for its duration (DeviceGuard), and frees
  // what it allocated on that device if it fails half-way.
  DeviceGuard guard(device);
  try {
    impl_ = std::make_unique<Impl>(device, spec, solver, fused);
    upload_all(X, Y, w, n_samples, params, first, second);
  } catch (...) {
    impl_.reset();
    throw;
  }
}

template <class T>
void Trainer<T>::upload_all(const T* X, const T* Y, const T* w, std::int64_t n_samples,
                            const HostParams<T>& params, const std::vector<const T*>& first,
                            const std::vector<const T*>& second) {
  Impl& m = *impl_;
  const NetSpec& spec = m.net.spec();
  const SolverKind solver = m.solver;
  DeviceNet<T>& net = m.net;
  const std::size_t n_params = std::size_t(spec.n_params());
  m.n = n_samples;
  m.X.resize(std::size_t(n_samples * spec.sizes.front()));
  m.Y.resize(std::size_t(n_samples * spec.sizes.back()));
  if (w) m.w.resize(std::size_t(n_samples));
  m.params.resize(n_params);
  m.grads.resize(n_params);
  m.first.resize(n_params);
  if (solver == SolverKind::adam) m.second.resize(n_params);
  copy_to_device(m.X.get(), X, m.X.size(), net.stream());
  copy_to_device(m.Y.get(), Y, m.Y.size(), net.stream());
  if (w) copy_to_device(m.w.get(), w, m.w.size(), net.stream());
  net.upload_layout(layout_of(params), m.params.get());
  net.upload_layout(first, m.first.get());
  if (solver == SolverKind::adam) net.upload_layout(second, m.second.get());
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(net.stream()));
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
double Trainer<T>::train_epoch(const std::int64_t* order, std::int64_t n_order,
                               std::int64_t batch_size, T alpha, const StepConfig& config,
                               std::int64_t& t) {
  Impl& m = *impl_;
  const std::int64_t batch = std::min(batch_size, n_order);
  if (batch < 1) return 0.0;
  DeviceGuard guard(m.device);
  DeviceNet<T>& net = m.net;
  const NetSpec& spec = net.spec();
  const cudaStream_t stream = net.stream();
  net.reserve_rows(batch);
  m.order.reserve(std::size_t(n_order));
  copy_to_device(m.order.get(), order, std::size_t(n_order), stream);

  PassScalars* s = net.scalars();
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(s, 0, sizeof(PassScalars), stream));
  const bool want_sq_norm = alpha != T(0);
  if (want_sq_norm) add_sum<T>(m.params.get(), spec.n_coefs(), true, &s->sq_norm, stream);

  const bool adam = m.solver == SolverKind::adam;
  UpdateRule rule;
  rule.solver = m.solver;
  rule.learning_rate = config.learning_rate;
  rule.momentum = config.momentum;
  rule.nesterov = config.nesterov;
  rule.beta_1 = config.beta_1;
  rule.beta_2 = config.beta_2;
  rule.epsilon = config.epsilon;
  const std::int64_t t0 = t;
  const std::int64_t n_batches = (n_order + batch - 1) / batch;
  for (std::int64_t b = 0; b < n_batches; ++b) {
    const std::int64_t start = b * batch;
    const std::int64_t rows = std::min(batch, n_order - start);
    const T* wb = net.train_pass(m.params.get(), m.X.get(), m.Y.get(), m.w.get(),
                                 m.order.get() + start, rows, m.grads.get(), false);
    finish_batch<T>(wb, rows, double(alpha), want_sq_norm, s, stream);
    rule.adam_rate = adam ? adam_step_rate(config, t0 + b + 1) : 0.0;
    update_parameters<T>(rule, m.params.get(), m.grads.get(), m.first.get(), m.second.get(),
                         spec.n_params(), spec.n_coefs(), alpha, s,
                         want_sq_norm ? &s->sq_norm : nullptr, net.sm_count(), stream);
  }
  // The epoch's one synchronisation.
  PassScalars host{};
  copy_to_host(&host, s, 1, stream);
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(stream));
  t = t0 + (adam ? n_batches : 0);
  return host.accumulated;
}

template <class T>
void Trainer<T>::download(const HostParamsOut<T>& params, const std::vector<T*>& first,
                          const std::vector<T*>& second) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.net.download_layout(m.params.get(), layout_of(params));
  m.net.download_layout(m.first.get(), first);
  if (m.solver == SolverKind::adam) m.net.download_layout(m.second.get(), second);
}

template <class T>
void Trainer<T>::upload(const HostParams<T>& params) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.net.upload_layout(layout_of(params), m.params.get());
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(m.net.stream()));
}

template <class T>
double Trainer<T>::loss_and_gradients(const HostParams<T>& params, T alpha,
                                      const HostParamsOut<T>& grads) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.trial.reserve(std::size_t(m.net.spec().n_params()));
  m.net.upload_layout(layout_of(params), m.trial.get());
  const double value = m.net.loss_and_gradients(m.trial.get(), m.X.get(), m.Y.get(), m.w.get(), m.n,
                                                alpha, m.grads.get());
  m.net.download_layout(m.grads.get(), layout_of(grads));
  return value;
}

template <class T>
void Trainer<T>::predict(const T* X, std::int64_t rows, T* out) {
  Impl& m = *impl_;
  DeviceGuard guard(m.device);
  m.net.predict_host(m.params.get(), X, rows, out);
}

template <class T>
std::int64_t Trainer<T>::n_samples() const {
  return impl_->n;
}

template <class T>
bool Trainer<T>::fused() const {
  return impl_->net.fused();
}

#define FASTMLP_INSTANTIATE_API(T)                                                                 \
  template void forward<T>(int, const NetSpec&, const HostParams<T>&, const T*, std::int64_t, T*); \
  template double loss_and_gradients<T>(int, const NetSpec&, const HostParams<T>&, const T*,       \
                                        const T*, const T*, std::int64_t, T,                       \
                                        const HostParamsOut<T>&);                                  \
  template class Trainer<T>;

FASTMLP_INSTANTIATE_API(float)
FASTMLP_INSTANTIATE_API(double)

}  // namespace fastmlp::cuda
