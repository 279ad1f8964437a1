#include "check/gradcheck.hpp"

#include "network/recurrent.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "network/engine.hpp"
#include "spec/spec.hpp"

namespace gradsim {

double relative_error(const Matrix<double>& a, const Matrix<double>& b, double floor) {
  if (a.rows() != b.rows() || a.cols() != b.cols()) return INFINITY;
  return (a - b).norm() / std::max({a.norm(), b.norm(), floor});
}

namespace {

Matrix<double> normal(Eigen::Index rows, Eigen::Index cols, Rng& rng, double std = 1) {
  Matrix<double> m(rows, cols);
  rng.fill_normal(m, std);
  return m;
}

// A layer's weights, held as the engine holds them, with a context per call. Each evaluation
// gets fresh contexts whose random streams restart, so a layer drawing in forward() (dropout)
// sees the same numbers at every finite-difference step.
struct Harness {
  const Layer<double>& layer;
  std::vector<WeightDecl> decls = layer.weights();
  std::vector<Weight<double>> store;
  std::vector<Weight<double>*> ptrs;

  Harness(const Layer<double>& l, Rng& rng) : layer(l), store(decls.size()) {
    for (std::size_t k = 0; k < decls.size(); ++k) {
      // Random values, also for constant-initialised weights: a check at gamma = 1 would miss
      // a backward pass that forgets gamma.
      store[k].value = normal(Eigen::Index(decls[k].rows), Eigen::Index(decls[k].cols), rng);
      store[k].grad = Matrix<double>::Zero(store[k].value.rows(), store[k].value.cols());
      ptrs.push_back(&store[k]);
    }
  }
  struct Call {
    Rng rng;
    Ctx<double> ctx;
    Matrix<double> y;
  };
  std::unique_ptr<Call> call(std::uint64_t k) {
    auto c = std::make_unique<Call>(Call{Rng(99, k), {}, {}});
    c->ctx = Ctx<double>(ptrs.data(), ptrs.size(), &c->rng);
    return c;
  }
};

// d f(x + t v) / dt at t = 0, entry by entry, by central differences (f: x -> y, same rows).
template <class F>
Matrix<double> along(const Matrix<double>& v, F&& f, const Matrix<double>& x) {
  Matrix<double> t = Matrix<double>::Zero(1, 1), y;
  f(x, y);
  Matrix<double> out(y.rows(), y.cols());
  for (Eigen::Index i = 0; i < out.size(); ++i)
    out(i) = numeric_gradient([&] {
      f(x + t(0) * v, y);
      return y(i);
    }, t)(0);
  return out;
}

}  // namespace

std::vector<CheckResult> check_layer(const Layer<double>& layer, std::size_t batch, std::size_t fan_in,
                                     std::size_t fan_out, Rng& rng) {
  Harness h(layer, rng);
  Matrix<double> x1 = normal(Eigen::Index(batch), Eigen::Index(fan_in), rng);
  Matrix<double> x2 = normal(Eigen::Index(batch), Eigen::Index(fan_in), rng);
  auto c1 = h.call(1), c2 = h.call(2);
  layer.forward(c1->ctx, x1, c1->y);
  layer.forward(c2->ctx, x2, c2->y);
  const Eigen::Index rows = Eigen::Index(batch), cols = Eigen::Index(fan_out);
  if (c1->y.rows() != rows || c1->y.cols() != cols) return {{"output shape", INFINITY, 0}};
  const Matrix<double> u1 = normal(rows, cols, rng), u2 = normal(rows, cols, rng);
  // Forward mode, where the layer has it: dy = (dy/dx) v against central differences of the
  // forward pass along v (each entry of y its own function of the step).
  const Matrix<double> v = normal(x1.rows(), x1.cols(), rng);
  Matrix<double> tangent;
  const bool has_tangent = layer.tangent(c1->ctx, x1, c1->y, v, tangent);
  Matrix<double> dx1, dx2;
  layer.backward(c2->ctx, x2, c2->y, u2, dx2);  // the later call first, as the engine would
  layer.backward(c1->ctx, x1, c1->y, u1, dx1);
  auto s = [&] {
    auto a = h.call(1), b = h.call(2);
    layer.forward(a->ctx, x1, a->y);
    layer.forward(b->ctx, x2, b->y);
    return u1.cwiseProduct(a->y).sum() + u2.cwiseProduct(b->y).sum();
  };
  std::vector<CheckResult> out{{"dx", relative_error(dx1, numeric_gradient(s, x1)), kGradTolerance},
                               {"dx (2nd call)", relative_error(dx2, numeric_gradient(s, x2)), kGradTolerance}};
  for (std::size_t k = 0; k < h.store.size(); ++k)
    out.push_back({h.decls[k].name, relative_error(h.store[k].grad, numeric_gradient(s, h.store[k].value)), kGradTolerance});
  if (has_tangent)
    out.push_back({"tangent", relative_error(tangent, along(v, [&](const Matrix<double>& x, Matrix<double>& y) {
                                               auto c = h.call(1);
                                               layer.forward(c->ctx, x, y);
                                             }, x1)), kGradTolerance});
  return out;
}

std::vector<CheckResult> check_cell(const PluginInfo& info, const Params& params, const Registry& registry, Rng& rng) {
  // The rnn cell applies the spec's activation: a smooth one here, as finite differences need.
  std::unique_ptr<Activation<double>> act;
  for (const char* name : {"tanh", "linear"})
    if (!act && registry.find(Kind::activation, name)) act = registry.get(Kind::activation, name).info->make<double>().activation({});
  const std::size_t in = 3, hidden = 4, batch = 3;
  auto make = [&](std::size_t input) {
    auto c = info.make<double>().cell(CellArgs<double>{input, hidden, params, act.get()});
    if (!c) throw std::runtime_error("the cell factory made no cell");
    return c;
  };
  std::vector<CheckResult> out;
  {  // one step: s = <u, cell(s_prev, x)>
    const auto cell = make(in);
    std::vector<WeightDecl> decls = cell->weights();
    std::vector<Weight<double>> store(decls.size());
    std::vector<Weight<double>*> ptrs;
    for (std::size_t k = 0; k < decls.size(); ++k) {
      store[k].value = normal(Eigen::Index(decls[k].rows), Eigen::Index(decls[k].cols), rng, 0.7);
      store[k].grad = Matrix<double>::Zero(store[k].value.rows(), store[k].value.cols());
      ptrs.push_back(&store[k]);
    }
    const auto cols = Eigen::Index(cell->state_cols());
    Matrix<double> sp = normal(Eigen::Index(batch), cols, rng), x = normal(Eigen::Index(batch), Eigen::Index(in), rng);
    const Matrix<double> u = normal(Eigen::Index(batch), cols, rng);
    Rng call_rng(99);
    Ctx<double> ctx(ptrs.data(), ptrs.size(), &call_rng);
    Matrix<double> s, dsp, dx;
    cell->forward(ctx, sp, x, s);
    if (s.rows() != sp.rows() || s.cols() != cols) return {{"state shape", INFINITY, 0}};
    cell->backward(ctx, sp, x, s, u, dsp, dx);
    auto f = [&] {
      Rng r(99);
      Ctx<double> c(ptrs.data(), ptrs.size(), &r);
      Matrix<double> y;
      cell->forward(c, sp, x, y);
      return u.cwiseProduct(y).sum();
    };
    out.push_back({"ds_prev", relative_error(dsp, numeric_gradient(f, sp)), kGradTolerance});
    out.push_back({"dx", relative_error(dx, numeric_gradient(f, x)), kGradTolerance});
    for (std::size_t k = 0; k < store.size(); ++k)
      out.push_back({decls[k].name, relative_error(store[k].grad, numeric_gradient(f, store[k].value)), kGradTolerance});
  }
  // Unrolled with shared weights: 20 steps of one layer, and 5 steps of two stacked layers;
  // s = sum over the steps of <u_t, s_t>, against the initial state and every weight.
  for (const auto& shape : {std::pair<std::size_t, std::size_t>{20, 1}, {5, 2}}) {
    const std::size_t steps = shape.first, layers = shape.second;  // (lambdas below capture them)
    std::vector<std::unique_ptr<Cell<double>>> cells;
    for (std::size_t k = 0; k < layers; ++k) cells.push_back(make(k ? hidden : in));
    const Unrolled<double> step(std::move(cells), in, hidden, layers > 1, 1.0, steps);
    Harness h(step, rng);
    for (auto& w : h.store) w.value *= 0.7 / std::sqrt(double(hidden));  // keep 20 steps in the smooth range
    const auto cols = Eigen::Index(step.state_cols());
    Matrix<double> s0 = normal(Eigen::Index(batch), cols, rng);
    std::vector<Matrix<double>> u;
    for (std::size_t t = 0; t < steps; ++t) u.push_back(normal(Eigen::Index(batch), cols, rng));
    auto run = [&](std::vector<std::unique_ptr<Harness::Call>>& calls) {
      double total = 0;
      const Matrix<double>* prev = &s0;
      for (std::size_t t = 0; t < steps; ++t) {
        calls.push_back(h.call(t));
        step.forward(calls[t]->ctx, *prev, calls[t]->y);
        total += u[t].cwiseProduct(calls[t]->y).sum();
        prev = &calls[t]->y;
      }
      return total;
    };
    std::vector<std::unique_ptr<Harness::Call>> calls;
    run(calls);
    Matrix<double> d = Matrix<double>::Zero(Eigen::Index(batch), cols), dprev;
    for (std::size_t t = steps; t-- > 0;) {
      d += u[t];
      step.backward(calls[t]->ctx, t ? calls[t - 1]->y : s0, calls[t]->y, d, dprev);
      d = dprev;
    }
    auto f = [&] {
      std::vector<std::unique_ptr<Harness::Call>> c;
      return run(c);
    };
    const std::string tag = " (" + std::to_string(steps) + " steps" + (layers > 1 ? ", 2 layers" : "") + ")";
    out.push_back({"ds_0" + tag, relative_error(d, numeric_gradient(f, s0)), kGradTolerance});
    for (std::size_t k = 0; k < h.store.size(); ++k)
      out.push_back({h.decls[k].name + tag, relative_error(h.store[k].grad, numeric_gradient(f, h.store[k].value)),
                     kGradTolerance});
  }
  return out;
}

std::vector<CheckResult> check_activation(const Activation<double>& act, std::size_t batch, std::size_t width, Rng& rng) {
  Matrix<double> h = normal(Eigen::Index(batch), Eigen::Index(width), rng, 2.0), a, dh;
  const Matrix<double> u = normal(h.rows(), h.cols(), rng);
  act.forward(h, a);
  act.backward(h, a, u, dh);
  auto s = [&] {
    Matrix<double> out;
    act.forward(h, out);
    return u.cwiseProduct(out).sum();
  };
  std::vector<CheckResult> out{{"dh", relative_error(dh, numeric_gradient(s, h)), kGradTolerance}};
  // Forward mode, where it has one: d act(h + t v) / dt at t = 0 by central differences.
  const Matrix<double> v = normal(h.rows(), h.cols(), rng);
  Matrix<double> tangent;
  if (act.tangent(h, a, v, tangent))
    out.push_back({"tangent", relative_error(tangent, along(v, [&](const Matrix<double>& x, Matrix<double>& y) {
                                                act.forward(x, y);
                                              }, h)), kGradTolerance});
  return out;
}

CheckResult check_loss(Loss<double>& loss, std::size_t batch, std::size_t width, Rng& rng) {
  Matrix<double> y = normal(Eigen::Index(batch), Eigen::Index(width), rng), dy;
  loss.setup(batch, width, rng);
  loss.backward(y, dy);
  return {"dy", relative_error(dy, numeric_gradient([&] { return loss.forward(y); }, y)), kGradTolerance};
}

std::vector<CheckResult> check_initializer(const Initializer& init, std::uint64_t seed) {
  std::vector<CheckResult> out;
  for (auto [fan_in, fan_out] : {std::pair<std::size_t, std::size_t>{400, 300}, {300, 400}}) {
    const std::string shape = std::to_string(fan_in) + "x" + std::to_string(fan_out);
    for (WeightRole role : {WeightRole::weight, WeightRole::bias}) {
      const bool w = role == WeightRole::weight;
      Matrix<double> m(w ? Eigen::Index(fan_in) : 1, w ? Eigen::Index(fan_out) : 4000), again(m.rows(), m.cols());
      Rng a(seed, 1), b(seed, 1);
      init.fill(role, fan_in, fan_out, m, a);
      init.fill(role, fan_in, fan_out, again, b);
      const std::string name = std::string(w ? "W " : "b ") + shape;
      if (const auto std = init.normal_std(role, fan_in, fan_out)) {  // what the engine draws instead of fill()
        Matrix<double> direct(m.rows(), m.cols());
        Rng(seed, 1).fill_normal(direct, *std);
        out.push_back({name + " = fill_normal(normal_std)", (m - direct).cwiseAbs().maxCoeff(), 0});
      }
      const auto v = init.variances(fan_in, fan_out);
      if (!v) {
        out.push_back({name + " finite", m.allFinite() ? 0.0 : 1.0, 0});
        out.push_back({name + " reproducible", (m - again).cwiseAbs().maxCoeff(), 0});
        continue;
      }
      // Var W = sigma_w2 / fan_in, Var b = sigma_b2. The sample second moment m2 of n draws has
      // standard error sqrt((m4 - m2^2) / n), estimated from the draws themselves, so that
      // heavy-tailed initialisers (sparse) are judged as fairly as Gaussian ones; the sample
      // mean has standard error sqrt(declared / n). Both within 5 standard errors.
      const double n = double(m.size()), declared = w ? v->sigma_w2 / double(fan_in) : v->sigma_b2;
      const double m2 = m.squaredNorm() / n, m4 = m.array().square().square().sum() / n;
      if (declared == 0) {
        out.push_back({"Var " + name + " (declared 0)", m.cwiseAbs().maxCoeff(), 0});
        continue;
      }
      const double se = std::sqrt(std::max(0.0, m4 - m2 * m2) / n);
      out.push_back({"Var " + name, std::fabs(m2 / declared - 1), std::max(5 * se / declared, 1e-12)});
      out.push_back({"mean " + name, std::fabs(m.mean()) / std::sqrt(declared), 5 / std::sqrt(n)});
    }
  }
  return out;
}

namespace {

void add_params(v1::PluginRef& ref, const std::vector<ParamDecl>& decls, const Params& params) {
  for (const auto& d : decls) {
    auto& p = *ref.add_params();
    p.set_name(d.name);
    if (d.type == ParamType::choice) p.set_text(params.text(d.name));
    else if (d.type == ParamType::boolean) p.set_flag(params.flag(d.name));
    else p.set_number(params.number(d.name));
  }
}

}  // namespace

std::vector<CheckResult> check_mitigation(const PluginInfo& info, const Params& params, const Registry& registry,
                                          std::uint64_t seed) {
  std::vector<CheckResult> out;
  Rng rng(seed);
  auto m = info.make<double>().mitigation(params);
  const char* sites[] = {"segment_in", "pre_activation", "post_activation", "segment_out"};
  for (int s = 0; s < 4; ++s)
    if (auto layer = m->insert(Site(s), 0, 6, 4))
      for (auto r : check_layer(*layer, 4, 6, 6, rng)) r.what = std::string(sites[s]) + " " + r.what, out.push_back(r);
  if (auto p = m->projection(5, 6))
    for (auto r : check_layer(*p, 4, 5, 6, rng)) r.what = "projection " + r.what, out.push_back(r);

  // The whole network, hooks included.
  v1::SimSpec spec;
  spec.set_seed(seed), spec.set_batch(6);
  auto& net = *spec.mutable_network();
  net.set_depth(3), net.set_width(5), net.set_input_width(4);
  net.mutable_activation()->set_name("tanh");
  spec.mutable_loss()->set_name("mse");
  auto& bias = *spec.mutable_init()->add_params();
  bias.set_name("bias_std"), bias.set_number(0.3);
  auto& ref = *spec.add_mitigations();
  ref.set_name(info.name);
  add_params(ref, info.params, params);
  resolve(spec, registry);
  Engine<double> engine(spec, registry);
  for (const auto& w : engine.weights())
    if (w.role == WeightRole::other) rng.fill_normal(*w.value);  // away from gamma = 1, beta = 0
  engine.forward();
  engine.backward();
  std::vector<Matrix<double>> numeric;
  for (const auto& w : engine.weights()) numeric.push_back(numeric_gradient([&] { return engine.forward(); }, *w.value));
  const Matrix<double> dx = engine.input_grad();
  const Matrix<double> dx_numeric = numeric_gradient([&] { return engine.forward(); }, engine.input());
  // The same hook on the central differences: a fresh instance, so that hook state starts
  // where the engine's did.
  auto fresh = info.make<double>().mitigation(params);
  std::vector<WeightRef<double>> refs;
  for (std::size_t k = 0; k < numeric.size(); ++k) {
    const auto& w = engine.weights()[k];
    refs.push_back({w.name, w.role, w.block, w.value, &numeric[k]});
  }
  fresh->param_grads(refs);
  for (std::size_t k = 0; k < numeric.size(); ++k) {
    const auto& w = engine.weights()[k];
    out.push_back({"network " + w.name + " of block " + std::to_string(w.block), relative_error(*w.grad, numeric[k]),
                   kGradTolerance});
  }
  out.push_back({"network dx", relative_error(dx, dx_numeric), kGradTolerance});
  return out;
}

std::vector<CheckResult> check_optimizer(const PluginInfo& info, const Params& params, Rng& rng) {
  Matrix<double> w0(4, 3), a(4, 3);
  rng.fill_normal(w0);
  rng.fill_uniform(a, 0.5, 2);
  auto loss = [&](const Matrix<double>& w) { return 0.5 * (a.array() * w.array().square()).sum(); };
  // `steps` steps at `lr` in format T from w0; returns w, with the first update in `first`.
  auto run = [&]<class T>(T, int steps, double lr, Matrix<double>* first) {
    auto opt = info.make<T>().optimizer(params);
    Matrix<T> w = w0.cast<T>(), g;
    std::vector<Matrix<T>> state(opt->state_slots(), Matrix<T>::Zero(4, 3));
    for (int t = 1; t <= steps; ++t) {
      g = (a.array() * w.template cast<double>().array()).matrix().template cast<T>();
      const Matrix<double> before = w.template cast<double>();
      opt->step(w, g, state.data(), StepInfo{lr, std::uint64_t(t)});
      if (t == 1 && first) *first = w.template cast<double>() - before;
    }
    return Matrix<double>(w.template cast<double>());
  };
  std::vector<CheckResult> out;
  Matrix<double> step;
  const Matrix<double> w50 = run(double(), 50, 0.01, &step);
  const Matrix<double> g0 = (a.array() * w0.array()).matrix();
  const double cos = step.cwiseProduct(g0).sum() / (step.norm() * g0.norm() + 1e-300);
  out.push_back({"first step downhill (cos(update, dL/dw) <= 0)", std::max(0.0, cos), 0});
  out.push_back({"L after 50 steps / L before", loss(w50) / loss(w0), 0.99});
  out.push_back({"lr 0 leaves w", (run(double(), 3, 0.0, nullptr) - w0).cwiseAbs().maxCoeff(), 0});
  out.push_back({"float32 steps = float64 steps", relative_error(run(float(), 5, 0.01, nullptr), run(double(), 5, 0.01, nullptr)),
                 1e-4});
  return out;
}

std::vector<CheckResult> check_plugin(const PluginInfo& info, const Registry& registry, std::uint64_t seed,
                                      const Params* given) {
  const Params params = given ? *given : defaults_of(info.params);
  Rng rng(seed);
  const auto& make = info.make<double>();
  switch (info.kind) {
    case Kind::layer: {  // square, and rectangular where the layer allows it (gain does not)
      std::vector<CheckResult> out;
      for (std::size_t fan_out : {5, 4}) {
        std::unique_ptr<Layer<double>> layer;
        try {
          layer = make.layer(LayerArgs{5, fan_out, params});
        } catch (const std::invalid_argument&) {
          continue;
        }
        for (auto r : check_layer(*layer, 3, 5, fan_out, rng)) r.what += " 5->" + std::to_string(fan_out), out.push_back(r);
      }
      // Rows in sequences (a transformer's tokens): 2 sequences of 3, where a layer may mix them.
      std::unique_ptr<Layer<double>> layer;
      try {
        layer = make.layer(LayerArgs{4, 4, params, 3});
      } catch (const std::invalid_argument&) {
        return out;
      }
      for (auto r : check_layer(*layer, 6, 4, 4, rng)) r.what += " in sequences of 3", out.push_back(r);
      return out;
    }
    case Kind::activation: return check_activation(*make.activation(params), 4, 6, rng);
    case Kind::loss: return {check_loss(*make.loss(params), 4, 6, rng)};
    case Kind::initializer: return check_initializer(*info.initializer(params), seed);
    case Kind::mitigation: return check_mitigation(info, params, registry, seed);
    case Kind::cell: return check_cell(info, params, registry, rng);
    case Kind::optimizer: return check_optimizer(info, params, rng);
  }
  return {};
}

}  // namespace gradsim
