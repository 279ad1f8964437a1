// The engine's body, and its only instantiations (four scalar types, one translation unit).
#include "engine.hpp"

#include "spec.hpp"

namespace gradsim {

template <class T>
Engine<T>::Engine(const v1::SimSpec& spec, const Registry& registry) {
  const auto& net = spec.network();
  const auto& make_layer = registry.get(Kind::layer, net.layer().name()).info->template make<T>().layer;
  const auto& make_act = registry.get(Kind::activation, net.activation().name()).info->template make<T>().activation;
  const auto init = registry.get(Kind::initializer, spec.init().name()).info->initializer(params_of(spec.init()));
  Rng weights(spec.seed(), 1), data(spec.seed(), 2), targets(spec.seed(), 3);

  blocks_.resize(net.depth());
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    auto& b = blocks_[i];
    b.layer = make_layer(LayerArgs{i ? net.width() : net.input_width(), net.width(), params_of(net.layer())});
    b.act = make_act(params_of(net.activation()));
    b.params = b.layer->params();
    for (auto& p : b.params) {
      // Drawn in float64, then rounded to T: every format starts from the same weights.
      Eigen::MatrixXd w(p.value->rows(), p.value->cols());
      init->fill(p.role, p.fan_in, p.fan_out, w, weights);
      *p.value = w.cast<T>();
    }
  }
  Eigen::MatrixXd x(spec.batch(), net.input_width());
  data.fill_normal(x);
  x_ = x.cast<T>();
  loss_ = registry.get(Kind::loss, spec.loss().name()).info->template make<T>().loss(params_of(spec.loss()));
  loss_->setup(spec.batch(), net.width(), targets);
  for (const auto& m : spec.mitigations())
    mitigations_.push_back(registry.get(Kind::mitigation, m.name()).info->template make<T>().mitigation(params_of(m)));
}

template <class T>
T Engine<T>::forward() {
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    auto& b = blocks_[i];
    b.layer->forward(input_of(i), b.h);  // h_i = layer(x_i)
    b.act->forward(b.h, b.a);            // a_i = act(h_i)
    b.out = stats_of(b.a);
  }
  return loss_value_ = loss_->forward(blocks_.back().a);
}

template <class T>
void Engine<T>::backward() {
  for (auto& b : blocks_)
    for (auto& p : b.params) p.grad->setZero();
  loss_->backward(blocks_.back().a, da_);  // da = dL/da_{depth-1}
  for (std::size_t i = blocks_.size(); i-- > 0;) {
    auto& b = blocks_[i];
    for (auto& m : mitigations_) m->backward_boundary(i, da_);
    b.act_grad_norm = stats_of(da_).norm();
    b.act->backward(b.h, b.a, da_, dh_);  // dh_i = act'(h_i) * da_i
    b.grad = stats_of(dh_);
    b.layer->backward(dh_, i ? da_ : dx_);  // da_{i-1} = dL/dx_i (the layer reads dh_ only)
  }
  if (!mitigations_.empty()) {
    auto all = params();
    for (auto& m : mitigations_) m->param_grads(all);
  }
}

template <class T>
std::vector<ParamRef<T>> Engine<T>::params() {
  std::vector<ParamRef<T>> all;
  for (auto& b : blocks_) all.insert(all.end(), b.params.begin(), b.params.end());
  return all;
}

template <class T>
void Engine<T>::record(v1::SimTrace& out) const {
  out.set_loss(to_double(loss_value_));
  out.set_input_grad_norm(stats_of(dx_).norm());
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const auto& b = blocks_[i];
    auto& l = *out.add_layers();
    l.set_index(std::uint32_t(i));
    l.set_grad_norm(b.grad.norm());
    l.set_act_grad_norm(b.act_grad_norm);
    double w2 = 0, b2 = 0;
    for (const auto& p : b.params) {
      const Stats s = stats_of(*p.grad);
      (p.role == ParamRole::bias ? b2 : w2) += s.norm() * s.norm();
      if (p.role == ParamRole::weight) s.to_proto(*l.mutable_weight_grad());
    }
    l.set_weight_grad_norm(std::sqrt(w2));
    l.set_bias_grad_norm(std::sqrt(b2));
    b.out.to_proto(*l.mutable_output());
    b.grad.to_proto(*l.mutable_grad());
  }
}

template <class T>
static void run(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out) {
  Engine<T> engine(spec, registry);
  engine.forward();
  engine.backward();
  engine.record(out);
}

void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out) {
  try {
    switch (spec.dtype()) {
      case v1::FLOAT32: run<float>(spec, registry, out); break;
      case v1::BFLOAT16: run<bfloat16>(spec, registry, out); break;
      case v1::FLOAT16: run<float16>(spec, registry, out); break;
      default: run<double>(spec, registry, out); break;
    }
    out.set_status(v1::SimTrace::OK);
  } catch (const std::exception& e) {
    out.clear_layers();
    out.set_status(v1::SimTrace::FAILED);
    out.set_message(e.what());
  }
}

template class Engine<double>;
template class Engine<float>;
template class Engine<bfloat16>;
template class Engine<float16>;

}  // namespace gradsim
