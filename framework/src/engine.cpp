// The engine's body, and its only instantiations (four scalar types, one translation unit).
#include "engine.hpp"

#include "error.hpp"
#include "spec.hpp"

namespace gradsim {

namespace {

// An activation seen as a layer without parameters: caches h and a for backward.
template <class T>
class ActivationLayer final : public Layer<T> {
 public:
  explicit ActivationLayer(std::unique_ptr<Activation<T>> act) : act_(std::move(act)) {}
  void forward(const Matrix<T>& h, Matrix<T>& a) override { h_ = &h, a_ = &a, act_->forward(h, a); }
  void backward(const Matrix<T>& da, Matrix<T>& dh) override { act_->backward(*h_, *a_, da, dh); }
  std::vector<ParamRef<T>> params() override { return {}; }

 private:
  std::unique_ptr<Activation<T>> act_;
  const Matrix<T>* h_ = nullptr;
  const Matrix<T>* a_ = nullptr;
};

template <class T>
bool all_finite(const Matrix<T>& m) {
  for (Eigen::Index i = 0; i < m.size(); ++i)
    if (!std::isfinite(to_double(m.data()[i]))) return false;
  return true;
}

}  // namespace

template <class T>
void Engine<T>::add_node(std::unique_ptr<Layer<T>> layer, std::size_t block, bool main) {
  Node n;
  n.layer = std::move(layer), n.block = block, n.main = main;
  nodes_.push_back(std::move(n));
}

template <class T>
void Engine<T>::add_inserts(Site site, std::size_t block, std::size_t width, std::size_t depth) {
  for (auto& m : mitigations_)
    if (auto layer = m->insert(site, block, width, depth)) add_node(std::move(layer), block);
}

template <class T>
Engine<T>::Engine(const v1::SimSpec& spec, const Registry& registry) : spec_(spec) {
  const auto& net = spec.network();
  const std::size_t depth = net.depth(), width = net.width();
  for (const auto& m : spec.mitigations())
    mitigations_.push_back(registry.get(Kind::mitigation, m.name()).info->template make<T>().mitigation(params_of(m)));
  std::optional<Shortcut> shortcut;
  for (auto& m : mitigations_)
    if (auto s = m->shortcut(depth)) {
      if (shortcut) throw Error("two mitigations add residual shortcuts; keep one");
      shortcut = s;
    }
  const std::size_t span = shortcut ? std::max<std::size_t>(1, shortcut->span) : 1;

  // The nodes, block by block (see mitigation.hpp for the sites).
  const auto& make_layer = registry.get(Kind::layer, net.layer().name()).info->template make<T>().layer;
  const auto& make_act = registry.get(Kind::activation, net.activation().name()).info->template make<T>().activation;
  blocks_.resize(depth);
  std::size_t segment_start = 0;
  for (std::size_t i = 0; i < depth; ++i) {
    const std::size_t fan_in = i ? width : net.input_width();
    if (i % span == 0) {
      segment_start = nodes_.size();
      add_inserts(Site::segment_in, i, fan_in, depth);
    }
    add_node(make_layer(LayerArgs{fan_in, width, params_of(net.layer())}), i, true);
    add_inserts(Site::pre_activation, i, width, depth);
    add_node(std::make_unique<ActivationLayer<T>>(make_act(params_of(net.activation()))), i);
    add_inserts(Site::post_activation, i, width, depth);
    if (i % span == span - 1 || i + 1 == depth) {
      if (shortcut) {
        Node merge;
        merge.block = i, merge.skip_from = segment_start, merge.alpha = shortcut->alpha;
        const std::size_t skip_width = segment_start == 0 ? net.input_width() : width;
        if (skip_width != width) {
          for (auto& m : mitigations_)
            if (!merge.projection) merge.projection = m->projection(skip_width, width);
          if (!merge.projection)
            throw Error("the residual shortcut goes from width " + std::to_string(skip_width) + " to " +
                        std::to_string(width) + " but its mitigation gives no projection");
        }
        nodes_.push_back(std::move(merge));
      }
      add_inserts(Site::segment_out, i, width, depth);
    }
    blocks_[i].end = nodes_.size();
  }
  values_.resize(nodes_.size() + 1);
  for (auto& n : nodes_)
    for (auto* layer : {n.layer.get(), n.projection.get()})
      if (layer)
        for (auto p : layer->params()) p.block = long(n.block), params_.push_back(p);

  // Parameters: weights and biases drawn in float64 and rounded to T, so every format starts
  // from the same numbers; fixed_init parameters keep their layer's values. Each parameter
  // has its own random stream, keyed by its block and name, so that adding a mitigation
  // (a projection, a norm) leaves the draws of every other parameter as they were.
  const auto init = registry.get(Kind::initializer, spec.init().name()).info->initializer(params_of(spec.init()));
  for (auto& p : params_) {
    if (p.role == ParamRole::fixed_init) continue;
    std::uint64_t name_hash = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : p.name) name_hash = (name_hash ^ c) * 0x100000001b3ull;
    Rng weights(spec.seed(), mix64(std::uint64_t(p.block) + 0x100) ^ name_hash);
    Eigen::MatrixXd w(p.value->rows(), p.value->cols());
    init->fill(p.role, p.fan_in, p.fan_out, w, weights);
    *p.value = w.cast<T>();
  }
  Rng data(spec.seed(), 2), targets(spec.seed(), 3);
  Eigen::MatrixXd x(spec.batch(), net.input_width());
  data.fill_normal(x);
  values_[0] = x.cast<T>();
  loss_ = registry.get(Kind::loss, spec.loss().name()).info->template make<T>().loss(params_of(spec.loss()));
  loss_->setup(spec.batch(), width, targets);
}


template <class T>
T Engine<T>::forward() {
  for (std::size_t j = 0; j < nodes_.size(); ++j) {
    auto& n = nodes_[j];
    if (n.layer) {
      n.layer->forward(values_[j], values_[j + 1]);
    } else if (n.projection) {  // y = P(x_s) + alpha * F(x_s)
      n.projection->forward(values_[n.skip_from], n.projected);
      values_[j + 1] = n.projected + T(n.alpha) * values_[j];
    } else {
      values_[j + 1] = values_[n.skip_from] + T(n.alpha) * values_[j];
    }
  }
  for (auto& b : blocks_) b.out = stats_of(values_[b.end]);
  return loss_value_ = loss_->forward(values_.back());
}

template <class T>
bool Engine<T>::backward() {
  for (auto& p : params_) p.grad->setZero();
  loss_scale_ = 1;
  for (auto& m : mitigations_) loss_scale_ *= m->loss_scale();
  loss_->backward(values_.back(), d_);  // d = dL/dy
  if (loss_scale_ != 1) d_ *= T(loss_scale_);
  const std::size_t none = std::size_t(-1);
  std::size_t pending = none;  // value index that still owes the shortcut's gradient
  for (std::size_t j = nodes_.size(); j-- > 0;) {
    auto& n = nodes_[j];
    auto& b = blocks_[n.block];
    if (j + 1 == b.end) {  // d = dL/d(output of block n.block): the block boundary
      for (auto& m : mitigations_) m->backward_boundary(n.block, d_);
      b.act_grad = stats_of(d_);
    }
    if (!n.layer) {  // y = P(x_s) + alpha * F:  dF = alpha dy,  dx_s += P^T dy
      if (n.projection) n.projection->backward(d_, skip_grad_);
      else skip_grad_ = d_;
      d_ *= T(n.alpha);
      pending = n.skip_from;
    } else {
      if (n.main) b.grad = stats_of(d_);  // dL/dh
      n.layer->backward(d_, tmp_);
      d_.swap(tmp_);
    }
    if (j == pending) d_ += skip_grad_, pending = none;
  }
  dx_ = d_;
  if (loss_scale_ != 1)
    for (auto& p : params_) *p.grad *= T(1 / loss_scale_);
  bool overflow = false;
  for (auto& p : params_) overflow = overflow || !all_finite(*p.grad);
  for (auto& m : mitigations_) {
    auto grads = params_;  // a hook may reorder or filter its copy
    m->param_grads(grads);
  }
  return overflow;
}

template <class T>
void Engine<T>::collect_events(std::uint32_t step, v1::SimTrace& out) {
  for (std::size_t k = 0; k < mitigations_.size(); ++k)  // one per spec entry, in order
    for (auto& e : mitigations_[k]->take_events()) {
      auto& ev = *out.add_events();
      ev.set_mitigation(spec_.mitigations(int(k)).name());
      ev.set_step(step), ev.set_layer(int(e.block)), ev.set_what(e.what);
      ev.set_before(e.before), ev.set_after(e.after), ev.set_fired(e.fired);
    }
}

template <class T>
void Engine<T>::run(v1::SimTrace& out) {
  const std::uint32_t steps = spec_.train().steps();
  for (std::uint32_t s = 0; s < std::max<std::uint32_t>(1, steps); ++s) {
    forward();
    const bool overflow = backward();
    bool apply = true;
    for (auto& m : mitigations_) apply = m->step_done(overflow) && apply;  // ask every one
    if (s == 0) record(out);
    collect_events(s, out);
    if (steps == 0) break;
    auto& st = *out.add_steps();
    st.set_step(s), st.set_loss(to_double(loss_value_));
    double g2 = 0;
    for (auto& p : params_) g2 += std::pow(stats_of(*p.grad).norm(), 2);
    st.set_param_grad_norm(std::sqrt(g2));
    st.set_first_grad_norm(blocks_.front().grad.norm()), st.set_last_grad_norm(blocks_.back().grad.norm());
    st.set_loss_scale(loss_scale_), st.set_overflow(overflow), st.set_skipped(!apply);
    if (apply)  // plain SGD: W -= lr dL/dW
      for (auto& p : params_) *p.value -= T(spec_.train().lr()) * *p.grad;
  }
}

template <class T>
void Engine<T>::record(v1::SimTrace& out) const {
  out.set_loss(to_double(loss_value_));
  out.set_input_grad_norm(stats_of(dx_).norm());
  std::vector<std::vector<const ParamRef<T>*>> by_block(blocks_.size());
  for (const auto& p : params_) by_block[std::size_t(p.block)].push_back(&p);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const auto& b = blocks_[i];
    auto& l = *out.add_layers();
    l.set_index(std::uint32_t(i));
    l.set_grad_norm(b.grad.norm());
    l.set_act_grad_norm(b.act_grad.norm());
    Stats w, bias;  // all weight (bias) gradients of the block together
    for (const auto* p : by_block[i])
      if (p->role != ParamRole::fixed_init) (p->role == ParamRole::weight ? w : bias).merge(stats_of(*p->grad));
    l.set_weight_grad_norm(w.norm());
    l.set_bias_grad_norm(bias.norm());
    w.to_proto(*l.mutable_weight_grad());
    bias.to_proto(*l.mutable_bias_grad());
    b.out.to_proto(*l.mutable_output());
    b.grad.to_proto(*l.mutable_grad());
    b.act_grad.to_proto(*l.mutable_act_grad());
    if (b.out.nonfinite() && !out.has_forward_overflow_layer()) out.set_forward_overflow_layer(std::uint32_t(i));
  }
  for (std::size_t i = blocks_.size(); i-- > 0;) {  // the order the gradient travels
    const auto& g = blocks_[i].grad;
    if (g.nonfinite() && !out.has_grad_overflow_layer()) out.set_grad_overflow_layer(std::uint32_t(i));
    if (g.zeros == g.count && !out.has_grad_underflow_layer()) out.set_grad_underflow_layer(std::uint32_t(i));
  }
}

void check_constructible(const v1::SimSpec& spec, const Registry& registry) {
  const auto& net = spec.network();
  auto attempt = [](const std::string& where, const std::string& name, auto&& make) {
    try {
      make();
    } catch (const std::exception& e) {
      throw SpecError(where, "\"" + name + "\" cannot be built: " + e.what());
    }
  };
  const auto& layer = registry.get(Kind::layer, net.layer().name()).info->make<double>().layer;
  for (std::size_t fan_in : {std::size_t(net.input_width()), std::size_t(net.width())})
    attempt("network.layer.name", net.layer().name(),
            [&] { layer(LayerArgs{fan_in, net.width(), params_of(net.layer())}); });
  attempt("network.activation.name", net.activation().name(), [&] {
    registry.get(Kind::activation, net.activation().name()).info->make<double>().activation(params_of(net.activation()));
  });
  attempt("init.name", spec.init().name(),
          [&] { registry.get(Kind::initializer, spec.init().name()).info->initializer(params_of(spec.init())); });
  attempt("loss.name", spec.loss().name(),
          [&] { registry.get(Kind::loss, spec.loss().name()).info->make<double>().loss(params_of(spec.loss())); });
  for (int i = 0; i < spec.mitigations_size(); ++i)
    attempt("mitigations[" + std::to_string(i) + "].name", spec.mitigations(i).name(), [&] {
      registry.get(Kind::mitigation, spec.mitigations(i).name()).info->make<double>().mitigation(params_of(spec.mitigations(i)));
    });
}

void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out) {
  try {
    switch (spec.dtype()) {
      case v1::FLOAT32: Engine<float>(spec, registry).run(out); break;
      case v1::BFLOAT16: Engine<bfloat16>(spec, registry).run(out); break;
      case v1::FLOAT16: Engine<float16>(spec, registry).run(out); break;
      default: Engine<double>(spec, registry).run(out); break;
    }
    out.set_status(v1::SimTrace::OK);
  } catch (const std::exception& e) {
    out.clear_layers(), out.clear_steps(), out.clear_events();
    out.set_status(v1::SimTrace::FAILED);
    out.set_message(e.what());
  }
}

template class Engine<double>;
template class Engine<float>;
template class Engine<bfloat16>;
template class Engine<float16>;

}  // namespace gradsim
