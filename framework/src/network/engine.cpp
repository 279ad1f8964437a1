// The engine's body, and its only instantiations (four scalar types, one translation unit).
#include "network/engine.hpp"
#include "theory/predict.hpp"

#include <unistd.h>

#include "error.hpp"
#include "io/trace_io.hpp"
#include "spec/spec.hpp"
#include "train/task.hpp"

namespace gradsim {

namespace {

std::uint64_t name_hash(const std::string& name) {  // FNV-1a
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string shape(Eigen::Index r, Eigen::Index c) { return std::to_string(r) + " x " + std::to_string(c); }

}  // namespace

template <class T>
Engine<T>::Engine(const v1::SimSpec& spec, const Registry& registry, Deadline deadline)
    : Engine(spec, build_network<T>(spec, registry), deadline) {}

template <class T>
typename Engine<T>::Arrays& Engine<T>::spare() {
  thread_local Arrays arrays;
  return arrays;
}

template <class T>
std::vector<std::size_t> Engine<T>::shapes() const {
  std::vector<std::size_t> out{net_.batch, net_.input_width, net_.nodes.size()};
  for (const auto& w : net_.weights) out.push_back(w.decl.rows), out.push_back(w.decl.cols);
  for (const auto& n : net_.nodes)
    out.push_back(n.use ? n.use->out_cols : 0), out.push_back(n.projection ? n.projection->out_cols : 0);
  return out;
}

template <class T>
Engine<T>::~Engine() {
  auto& s = spare();
  if (!s.shapes.empty()) return;  // another engine on this thread keeps its own
  s.shapes = shapes();
  s.store = std::move(store_), s.values = std::move(values_), s.projected = std::move(projected_);
  s.d = std::move(d_), s.tmp = std::move(tmp_), s.skip_grad = std::move(skip_grad_), s.dx = std::move(dx_);
}

template <class T>
Engine<T>::Engine(const v1::SimSpec& spec, Network<T> net, Deadline deadline)
    : spec_(spec), net_(std::move(net)), deadline_(deadline) {
  if (auto& s = spare(); !s.shapes.empty()) {  // the arrays the last engine on this thread left
    if (s.shapes == shapes()) {
      store_ = std::move(s.store), values_ = std::move(s.values), projected_ = std::move(s.projected);
      d_ = std::move(s.d), tmp_ = std::move(s.tmp), skip_grad_ = std::move(s.skip_grad), dx_ = std::move(s.dx);
    }
    s = Arrays{};
  }
  // Weights: drawn in float64 and rounded to T, so every format starts from the same numbers.
  // Each has its own random stream, keyed by its block and name, so that adding a mitigation
  // (a projection, a norm) leaves the draws of every other weight as they were.
  // Gaussian draws go straight into T (the same values: fill_normal rounds each once).
  store_.resize(net_.weights.size());
  for (std::size_t k = 0; k < store_.size(); ++k) {
    const auto& slot = net_.weights[k];
    const auto& d = slot.decl;
    const auto rows = Eigen::Index(d.rows), cols = Eigen::Index(d.cols);
    Rng rng(spec.seed(), mix64(std::uint64_t(slot.block) + 0x100) ^ name_hash(d.name));
    auto& value = store_[k].value;
    if (const auto std = d.init == WeightInit::initializer ? net_.init->normal_std(d.role, d.fan_in, d.fan_out)
                                                           : std::nullopt) {
      value.resize(rows, cols);
      rng.fill_normal(value, *std * d.scale);
    } else {
      Matrix<double> w(rows, cols);  // a fresh one: Eigen frees before it allocates a new size
      switch (d.init) {
        case WeightInit::constant: w.setConstant(d.constant); break;
        case WeightInit::initializer: net_.init->fill(d.role, d.fan_in, d.fan_out, w, rng), w *= d.scale; break;
        case WeightInit::layer: slot.owner->init_weight(slot.index, w, rng); break;
      }
      if (w.rows() != rows || w.cols() != cols)
        throw Error("weight \"" + d.name + "\" of block " + std::to_string(slot.block) + " was initialised as " +
                    shape(w.rows(), w.cols()) + ", declared " + shape(rows, cols));
      value = w.cast<T>();
    }
    store_[k].grad.resize(rows, cols);  // zeroed by every backward()
    refs_.push_back({d.name, d.role, slot.block, &store_[k].value, &store_[k].grad});
  }
  // One context per node (and per projection): the weights it sees, a random stream.
  const std::size_t n = net_.nodes.size();
  use_weights_.reserve(2 * n), call_rngs_.reserve(2 * n);
  ctx_.resize(n), proj_ctx_.resize(n), projected_.resize(n);
  for (std::size_t j = 0; j < n; ++j) {
    const auto& node = net_.nodes[j];
    if (node.use) ctx_[j] = context(*node.use, j, use_weights_, call_rngs_);
    if (node.projection) proj_ctx_[j] = context(*node.projection, n + j, use_weights_, call_rngs_);
  }
  values_.resize(n + 1);
  blocks_.resize(net_.block_end.size());
  Rng data(spec.seed(), 2), targets(spec.seed(), 3);
  Matrix<double> x(Eigen::Index(net_.batch), Eigen::Index(net_.input_width));
  data.fill_normal(x, std::sqrt(spec.input().variance()));
  if (spec.input().has_correlation()) {  // row 2k+1 = c row 2k + sqrt(1 - c^2) row 2k+1
    const double c = spec.input().correlation(), s = std::sqrt(std::max(0.0, 1 - c * c));
    for (Eigen::Index r = 0; r + 1 < x.rows(); r += 2) x.row(r + 1) = c * x.row(r) + s * x.row(r + 1);
  }
  values_[0] = x.cast<T>();
  if (spec.train().has_task()) {  // the input is the task's first mini-batch
    auto task = std::make_unique<Task<T>>(spec, net_.input_width, net_.teacher);
    task_ = task.get();
    net_.loss = std::move(task);
    task_->next_batch(x);
    values_[0] = x.cast<T>();
  }
  net_.loss->setup(net_.batch, net_.width, targets);
}

template <class T>
Ctx<T> Engine<T>::context(const Use& use, std::size_t call, std::vector<std::vector<Weight<T>*>>& weights,
                          std::vector<Rng>& rngs) {
  auto& ws = weights.emplace_back();
  for (std::size_t k : use.weights) ws.push_back(&store_[k]);
  auto& rng = rngs.emplace_back(spec_.seed(), mix64(call + 0x10000));
  return Ctx<T>(ws.data(), ws.size(), &rng);
}

template <class T>
void Engine<T>::check_deadline() const {
  if (deadline_ != Deadline::max() && std::chrono::steady_clock::now() > deadline_)
    throw std::runtime_error("ran past its time limit (--sim-timeout)");
}

template <class T>
void Engine<T>::apply(const Use& use, Ctx<T>& ctx, const Matrix<T>& x, Matrix<T>& y) {
  check_deadline();
  use.layer->forward(ctx, x, y);
  if (y.rows() != x.rows() || y.cols() != Eigen::Index(use.out_cols))
    throw Error("\"" + use.name + "\" returned " + shape(y.rows(), y.cols()) + " from forward(), expected " +
                shape(x.rows(), Eigen::Index(use.out_cols)));
}

template <class T>
void Engine<T>::apply_backward(const Use& use, Ctx<T>& ctx, const Matrix<T>& x, const Matrix<T>& y,
                               const Matrix<T>& dy, Matrix<T>& dx) {
  check_deadline();
  use.layer->backward(ctx, x, y, dy, dx);
  if (dx.rows() != x.rows() || dx.cols() != x.cols())
    throw Error("\"" + use.name + "\" returned " + shape(dx.rows(), dx.cols()) + " from backward(), expected " +
                shape(x.rows(), x.cols()));
}

template <class T>
T Engine<T>::forward() {
  for (std::size_t j = 0; j < net_.nodes.size(); ++j) {
    const auto& n = net_.nodes[j];
    if (n.use) {
      apply(*n.use, ctx_[j], values_[j], values_[j + 1]);
    } else if (n.projection) {  // y = P(x_s) + alpha * F(x_s)
      apply(*n.projection, proj_ctx_[j], values_[n.skip_from], projected_[j]);
      values_[j + 1] = projected_[j] + T(n.alpha) * values_[j];
    } else if (n.skip_scale != 1) {
      values_[j + 1] = T(n.skip_scale) * values_[n.skip_from] + T(n.alpha) * values_[j];
    } else {
      values_[j + 1] = values_[n.skip_from] + T(n.alpha) * values_[j];
    }
  }
  for (std::size_t i = 0; i < blocks_.size(); ++i) blocks_[i].out = stats_of(values_[net_.block_end[i]]);
  return loss_value_ = net_.loss->forward(values_.back());
}

template <class T>
bool Engine<T>::backward() {
  for (auto& w : store_) w.grad.setZero();
  loss_scale_ = 1;
  for (auto& m : net_.mitigations) loss_scale_ *= m->loss_scale();
  net_.loss->backward(values_.back(), d_);  // d = dL/dy
  if (loss_scale_ != 1) d_ *= T(loss_scale_);
  const std::size_t none = std::size_t(-1);
  std::size_t pending = none;  // value index that still owes the shortcut's gradient
  for (std::size_t j = net_.nodes.size(); j-- > 0;) {
    const auto& n = net_.nodes[j];
    auto& b = blocks_[n.block];
    if (j + 1 == net_.block_end[n.block]) {  // d = dL/d(output of block n.block): the block boundary
      const double before = net_.mitigations.empty() ? 0 : norm_f64(d_);
      for (auto& m : net_.mitigations) m->backward_boundary(n.block, d_);
      b.act_grad = stats_of(d_);
      if (!net_.mitigations.empty() && !std::isnan(before) && norm_f64(d_) != before) flow_changed_ = true;
    }
    if (!n.use) {  // y = P(x_s) + alpha * F:  dF = alpha dy,  dx_s += P^T dy
      if (n.projection) apply_backward(*n.projection, proj_ctx_[j], values_[n.skip_from], projected_[j], d_, skip_grad_);
      else if (n.skip_scale != 1) skip_grad_ = T(n.skip_scale) * d_;
      else skip_grad_ = d_;
      d_ *= T(n.alpha);
      pending = n.skip_from;
    } else {
      if (n.main) b.grad = stats_of(d_);  // dL/dh
      apply_backward(*n.use, ctx_[j], values_[j], values_[j + 1], d_, tmp_);
      d_.swap(tmp_);
    }
    if (j == pending) d_ += skip_grad_, pending = none;
  }
  dx_ = d_;
  if (loss_scale_ != 1) {  // what the optimiser and the trace's dL/dx see is unscaled
    for (auto& w : store_) w.grad *= T(1 / loss_scale_);
    dx_ *= T(1 / loss_scale_);
  }
  bool overflow = false;
  for (auto& w : store_) overflow = overflow || !all_finite(w.grad);
  for (auto& m : net_.mitigations) {
    auto grads = refs_;  // a hook may reorder or filter its copy
    m->param_grads(grads);
  }
  return overflow;
}

template <class T>
void Engine<T>::collect_events(std::uint32_t step, v1::SimTrace& out) {
  for (std::size_t k = 0; k < net_.mitigations.size(); ++k)  // one per spec entry, in order
    for (auto& e : net_.mitigations[k]->take_events()) {
      auto& ev = *out.add_events();
      ev.set_mitigation(spec_.mitigations(int(k)).name());
      ev.set_step(step), ev.set_layer(int(e.block)), ev.set_what(e.what);
      ev.set_before(e.before), ev.set_after(e.after), ev.set_fired(e.fired);
    }
}

template <class T>
void Engine<T>::run(v1::SimTrace& out) {
  const auto& train = spec_.train();
  const std::uint32_t steps = train.steps();
  Matrix<double> batch;
  Progress since;
  std::vector<double> ratios;
  for (std::uint32_t s = 0; s < std::max<std::uint32_t>(1, steps); ++s) {
    if (task_ && s > 0) task_->next_batch(batch), values_[0] = batch.cast<T>();
    forward();
    Spectra spectra;
    if (s == 0 && spec_.jacobian().samples()) spectra = jacobian();
    const bool overflow = backward();
    bool apply = true;
    for (auto& m : net_.mitigations) apply = m->step_done(overflow) && apply;  // ask every one
    if (s == 0) {
      record(out);
      for (auto& sp : spectra.network) *out.add_jacobian() = std::move(sp);
      for (std::size_t i = 0; i < spectra.blocks.size(); ++i)
        for (auto& sp : spectra.blocks[i]) *out.mutable_layers(int(i))->add_jacobian() = std::move(sp);
    }
    collect_events(s, out);
    if (steps == 0) break;
    const double lr = scheduled_lr(train, s);
    auto& st = *out.add_steps();
    st.set_step(s), st.set_loss(task_ ? task_->loss() : to_double(loss_value_));
    double g2 = 0;
    std::uint64_t nonfinite = 0;
    for (auto& w : store_) {
      const Stats g = stats_of(w.grad);
      g2 += g.norm() * g.norm(), nonfinite += g.nonfinite();
    }
    st.set_param_grad_norm(std::sqrt(g2));
    st.set_first_grad_norm(blocks_.front().grad.norm()), st.set_last_grad_norm(blocks_.back().grad.norm());
    st.set_loss_scale(loss_scale_), st.set_overflow(overflow), st.set_skipped(!apply), st.set_lr(lr);
    if (task_) {
      since.loss += task_->loss(), since.steps += 1, since.correct += task_->correct();
      since.rows += net_.batch, since.nonfinite += nonfinite, since.skipped += !apply;
      if (s == 0) evaluate(0, lr, {}, since, out);  // at initialisation: the weights are as drawn
    }
    const bool evaluating = task_ && ((s + 1) % train.eval_every() == 0 || s + 1 == steps);
    ratios.clear();
    if (apply) optimizer_step(lr, evaluating ? &ratios : nullptr);
    if (evaluating) evaluate(s + 1, lr, ratios, since, out);
  }
  if (task_) out.set_verdict(verdict(out));
}

template <class T>
void Engine<T>::optimizer_step(double lr, std::vector<double>* ratios) {
  if (opt_state_.empty()) {
    opt_state_.resize(store_.size());
    for (std::size_t k = 0; k < store_.size(); ++k)
      opt_state_[k].assign(net_.optimizer->state_slots(),
                           Matrix<T>::Zero(store_[k].value.rows(), store_[k].value.cols()));
  }
  const StepInfo info{lr, ++opt_steps_};
  std::vector<double> dw2, w2;
  if (ratios) dw2.assign(blocks_.size(), 0), w2.assign(blocks_.size(), 0);
  Matrix<T> before;
  for (std::size_t k = 0; k < store_.size(); ++k) {
    auto& w = store_[k];
    if (ratios) before = w.value;
    net_.optimizer->step(w.value, w.grad, opt_state_[k].data(), info);
    if (ratios) {
      const auto b = std::size_t(net_.weights[k].block);
      dw2[b] += (w.value - before).template cast<double>().squaredNorm();
      w2[b] += before.template cast<double>().squaredNorm();
    }
  }
  if (ratios)
    for (std::size_t b = 0; b < dw2.size(); ++b) ratios->push_back(dw2[b] == 0 ? 0 : std::sqrt(dw2[b] / w2[b]));
}

template <class T>
void Engine<T>::evaluate(std::uint32_t step, double lr, const std::vector<double>& ratios, Progress& since,
                         v1::SimTrace& out) {
  auto& ev = *out.add_evaluations();
  ev.set_step(step), ev.set_lr(lr);
  ev.set_train_loss(since.loss / double(since.steps));
  if (task_->classification()) ev.set_train_accuracy(double(since.correct) / double(since.rows));
  for (const auto& b : blocks_) ev.add_grad_norm(b.grad.norm());
  for (double r : ratios) ev.add_update_ratio(r);
  ev.set_nonfinite(since.nonfinite), ev.set_skipped(std::uint32_t(since.skipped));
  since = {};
  double loss = 0, correct = 0, rows = 0;
  Matrix<double> x;
  for (std::size_t k = 0; k < task_->heldout_batches(); ++k) {
    task_->heldout(k, x);
    values_[0] = x.cast<T>();
    forward();
    loss += task_->loss(), correct += double(task_->correct()), rows += double(x.rows());
  }
  ev.set_test_loss(loss / double(task_->heldout_batches()));
  if (task_->classification()) ev.set_test_accuracy(correct / rows);
  ev.set_score(ev.test_loss() / task_->trivial_loss());
}

template <class T>
v1::Verdict Engine<T>::verdict(const v1::SimTrace& out) const {
  const auto& last = out.evaluations(out.evaluations_size() - 1);
  bool finite = std::isfinite(last.test_loss());
  for (const auto& w : store_) finite = finite && all_finite(w.value);
  if (!finite) return v1::DIVERGED;
  return last.score() <= spec_.train().trained_below() ? v1::TRAINED : v1::DID_NOT_TRAIN;
}

namespace {
// The correlation of rows 2k and 2k+1 pooled over k: sum <x_2k, x_2k+1> / sqrt(sum |x_2k|^2 sum |x_2k+1|^2).
template <class T>
double pair_correlation(const Matrix<T>& x) {
  double xy = 0, xx = 0, yy = 0;
  for (Eigen::Index r = 0; r + 1 < x.rows(); r += 2)
    for (Eigen::Index k = 0; k < x.cols(); ++k) {
      const double a = to_double(x(r, k)), b = to_double(x(r + 1, k));
      xy += a * b, xx += a * a, yy += b * b;
    }
  return xy / std::sqrt(xx * yy);
}


// ||X - 1 xbar^T||_F / ||X||_F within each sequence of `tokens` rows (xbar its mean row),
// pooled over the sequences, in float64.
template <class T>
double rank_collapse(const Matrix<T>& x, std::size_t tokens) {
  const Eigen::Index t = Eigen::Index(tokens);
  double off = 0, all = 0;
  for (Eigen::Index b = 0; b + t <= x.rows(); b += t) {
    const Matrix<double> s = x.middleRows(b, t).template cast<double>();
    const Eigen::RowVectorXd mean = s.colwise().mean();
    off += (s.rowwise() - mean).squaredNorm(), all += s.squaredNorm();
  }
  return std::sqrt(off / all);
}
}  // namespace

template <class T>
void Engine<T>::record(v1::SimTrace& out) {
  out.set_loss(to_double(loss_value_));
  out.set_input_grad_norm(stats_of(dx_).norm());
  std::vector<std::vector<const WeightRef<T>*>> by_block(blocks_.size());
  for (const auto& w : refs_) by_block[std::size_t(w.block)].push_back(&w);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    const auto& b = blocks_[i];
    auto& l = *out.add_layers();
    l.set_index(std::uint32_t(i));
    l.set_grad_norm(b.grad.norm());
    l.set_act_grad_norm(b.act_grad.norm());
    Stats w, bias;  // all weight (bias) gradients of the block together
    for (const auto* p : by_block[i])
      if (p->role != WeightRole::other) (p->role == WeightRole::weight ? w : bias).merge(stats_of(*p->grad));
    l.set_weight_grad_norm(w.norm());
    l.set_bias_grad_norm(bias.norm());
    w.to_proto(*l.mutable_weight_grad());
    bias.to_proto(*l.mutable_bias_grad());
    b.out.to_proto(*l.mutable_output());
    b.grad.to_proto(*l.mutable_grad());
    b.act_grad.to_proto(*l.mutable_act_grad());
    if (b.out.nonfinite() && !out.has_forward_overflow_layer()) out.set_forward_overflow_layer(std::uint32_t(i));
  }
  for (std::size_t j = 0; j < net_.nodes.size(); ++j) {  // the pre-activation h of each block
    if (!net_.nodes[j].main) continue;
    const Matrix<T>& h = values_[j + 1];
    auto& l = *out.mutable_layers(int(net_.nodes[j].block));
    const double norm = norm_f64(h);
    l.set_pre_activation_sq(norm * norm / double(h.size()));
    if (spec_.input().has_correlation()) l.set_pair_correlation(pair_correlation(h));
  }
  for (std::size_t j = 0; j < net_.nodes.size(); ++j)  // what the layers report about this pass
    if (const auto& n = net_.nodes[j]; n.use && n.block < blocks_.size())
      for (const auto& m : n.use->layer->measures(ctx_[j])) {
        auto& out_m = *out.mutable_layers(int(n.block))->add_measures();
        out_m.set_name(m.name), out_m.set_value(m.value);
      }
  if (net_.tokens > 1)
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      out.mutable_layers(int(i))->set_rank_collapse(rank_collapse(values_[net_.block_end[i]], net_.tokens));
  for (std::size_t i = blocks_.size(); i-- > 0;) {  // the order the gradient travels
    const auto& g = blocks_[i].grad;
    if (g.nonfinite() && !out.has_grad_overflow_layer()) out.set_grad_overflow_layer(std::uint32_t(i));
    if (g.zeros == g.count && !out.has_grad_underflow_layer()) out.set_grad_underflow_layer(std::uint32_t(i));
  }
}

void check_buildable(const v1::SimSpec& spec, const Registry& registry) {
  // Sizes first: building a network of a billion blocks would itself exhaust the memory.
  const double gb = 1e-9;
  if (const auto record = estimate_record_bytes(spec); record > kMaxRecordBytes / 2)
    throw SpecError(spec.train().steps() > 1000 ? "train.steps" : "network.depth",
                    "one simulation's record would be about " + detail::format_number(std::ceil(double(record) * 1e-6)) +
                        " MB (" + std::to_string(spec.network().depth()) + " blocks, " +
                        std::to_string(spec.train().steps()) + " steps); keep it under " +
                        std::to_string(kMaxRecordBytes / 2 >> 20) + " MB: fewer blocks or steps");
  const auto bytes = estimate_bytes(spec), ram = physical_memory_bytes();
  if (double(bytes) > 0.8 * double(ram))
    throw SpecError("network.depth", "one simulation needs about " + detail::format_number(std::ceil(double(bytes) * gb)) +
                                         " GB and this machine has " + detail::format_number(std::floor(double(ram) * gb)) +
                                         " GB; reduce depth, width or batch");
  const auto net = build_network<double>(spec, registry);
  if (spec.jacobian().samples())
    for (const auto& n : net.nodes)
      for (const auto* use : {n.use ? &*n.use : nullptr, n.projection ? &*n.projection : nullptr})
        if (use && use->layer->mixes_rows())
          throw SpecError("jacobian.samples", "layer \"" + use->name + "\" of block " + std::to_string(n.block) +
                                                  " mixes the rows of a batch (its statistics are over the batch), "
                                                  "so a row has no Jacobian of its own; drop jacobian, or normalise "
                                                  "per row (layer_norm, rms_norm)");
}

std::uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? std::uint64_t(pages) * std::uint64_t(size) : std::uint64_t(16) << 30;
}

namespace {
void fail(v1::SimTrace& out, const std::string& message) {
  out.clear_layers(), out.clear_steps(), out.clear_events(), out.clear_evaluations(), out.clear_verdict();
  out.set_status(v1::SimTrace::FAILED);
  out.set_message(message);
}
}  // namespace

void keep_detail(v1::Detail detail, v1::SimTrace& out) {
  if (out.layers_size()) {
    out.set_first_grad_norm(out.layers(0).grad_norm());
    out.set_last_grad_norm(out.layers(out.layers_size() - 1).grad_norm());
  }
  if (detail == v1::SUMMARY) {
    out.clear_layers();
    for (auto& e : *out.mutable_evaluations()) e.clear_grad_norm(), e.clear_update_ratio();
  }
  if (detail == v1::NORMS)
    for (auto& l : *out.mutable_layers())
      l.clear_output(), l.clear_grad(), l.clear_weight_grad(), l.clear_act_grad(), l.clear_bias_grad();
}

void simulate(const v1::SimSpec& spec, const Registry& registry, v1::SimTrace& out, Deadline deadline) {
  try {
    bool flow_changed = false;
    auto run = [&]<class T>(T) {
      Engine<T> engine(spec, registry, deadline);
      engine.run(out);
      flow_changed = engine.flow_changed();
    };
    switch (spec.dtype()) {
      case v1::FLOAT32: run(float()); break;
      case v1::BFLOAT16: run(bfloat16()); break;
      case v1::FLOAT16: run(float16()); break;
      default: run(double()); break;
    }
    out.set_status(v1::SimTrace::OK);
    theory::annotate(*theory::predict(spec, registry), flow_changed, out);
    keep_detail(spec.detail(), out);
  } catch (const std::bad_alloc&) {
    throw ResourceError("out of memory");  // not a result: with fewer simulations at once it would run
  } catch (const std::exception& e) {
    fail(out, e.what());
  } catch (...) {
    fail(out, "a plugin threw an exception that is not a std::exception; throw std::runtime_error (or "
              "another class derived from std::exception) with a message");
  }
}

#define GRADSIM_INSTANTIATE_ENGINE(T) template class Engine<T>;
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_ENGINE)

}  // namespace gradsim
