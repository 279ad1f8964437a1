// The network builder, instantiated for the four formats.
#include <cmath>
#include <set>

#include "error.hpp"
#include "network/network.hpp"
#include "network/recurrent.hpp"
#include "spec/spec.hpp"

namespace gradsim {

namespace {

// An activation seen as a layer without weights: backward gets h and a from the engine.
template <class T>
class ActivationLayer final : public Layer<T> {
 public:
  explicit ActivationLayer(const Activation<T>& act) : act_(act) {}
  void forward(Ctx<T>&, const Matrix<T>& h, Matrix<T>& a) const override { act_.forward(h, a); }
  void backward(Ctx<T>&, const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& da, Matrix<T>& dh) const override {
    act_.backward(h, a, da, dh);
  }
  bool tangent(Ctx<T>&, const Matrix<T>& h, const Matrix<T>& a, const Matrix<T>& dh, Matrix<T>& da) const override {
    return act_.tangent(h, a, dh, da);
  }

 private:
  const Activation<T>& act_;
};

// ReZero's gate: y = g x with g a learnt scalar, starting at 0.
template <class T>
class Gate final : public Layer<T> {
 public:
  std::vector<WeightDecl> weights() const override {
    return {{"g", 1, 1, WeightRole::other, 1, 1, WeightInit::constant, 0.0}};
  }
  void forward(Ctx<T>& ctx, const Matrix<T>& x, Matrix<T>& y) const override { y = ctx.w(0)(0, 0) * x; }
  // dx = g dy, dg += <x, dy>.
  void backward(Ctx<T>& ctx, const Matrix<T>& x, const Matrix<T>&, const Matrix<T>& dy, Matrix<T>& dx) const override {
    double dot = 0;
    for (Eigen::Index i = 0; i < x.size(); ++i) dot += to_double(x(i)) * to_double(dy(i));
    ctx.dw(0)(0, 0) += T(dot);
    dx = ctx.w(0)(0, 0) * dy;
  }
};

// Runs make(); a plugin's exception becomes a SpecError at `field`, naming the plugin.
template <class F>
auto attempt(const std::string& field, const std::string& name, F&& make) {
  try {
    return make();
  } catch (const SpecError&) {
    throw;
  } catch (const std::exception& e) {
    throw SpecError(field, "\"" + name + "\" cannot be built: " + e.what());
  } catch (...) {
    throw SpecError(field, "\"" + name + "\" cannot be built: it threw an exception that is not a "
                           "std::exception; a plugin should throw std::invalid_argument with a message");
  }
}

template <class T>
class Builder {
 public:
  /// `task_input`: the network learns a task (its own or, as a teacher, another's), whose input
  /// is a recurrent network's initial state, so its x_t are zero.
  Builder(const v1::SimSpec& spec, const Registry& registry, bool task_input)
      : spec_(spec), registry_(registry), task_input_(task_input) {}

  Network<T> build() {
    const auto& net = spec_.network();
    const std::size_t depth = net.depth(), width = net.width();
    n_.batch = spec_.batch(), n_.input_width = net.input_width(), n_.width = width;
    for (int k = 0; k < spec_.mitigations_size(); ++k) {
      const auto& m = spec_.mitigations(k);
      n_.mitigations.push_back(attempt(field(k), m.name(), [&] {
        return registry_.get(Kind::mitigation, m.name()).info->template make<T>().mitigation(params_of(m));
      }));
    }
    std::optional<Shortcut> shortcut;
    for (std::size_t k = 0; k < n_.mitigations.size(); ++k)
      if (auto s = n_.mitigations[k]->shortcut(depth)) {
        if (shortcut) throw SpecError(field(int(k)), "two mitigations add residual shortcuts; keep one");
        shortcut = s;
      }
    const std::size_t span = shortcut ? std::max<std::size_t>(1, shortcut->span) : 1;

    const auto& act_ref = net.activation();
    n_.activations.push_back(attempt("network.activation.name", act_ref.name(), [&] {
      return registry_.get(Kind::activation, act_ref.name()).info->template make<T>().activation(params_of(act_ref));
    }));
    const Layer<T>& act = own(std::make_unique<ActivationLayer<T>>(*n_.activations.back()));
    if (!net.recurrent().cell().name().empty()) return build_recurrent();
    if (net.transformer().arrangement() != v1::Transformer::ARRANGEMENT_UNSPECIFIED) return build_transformer(act);

    // The nodes, block by block (see mitigation.hpp for the sites).
    std::optional<Use> tied;  // network.tie_weights: block 0's layer and weights, for every block
    n_.block_end.resize(depth);
    std::size_t segment_start = 0;
    for (std::size_t i = 0; i < depth; ++i) {
      const std::size_t fan_in = i ? width : net.input_width();
      if (i % span == 0) {
        segment_start = n_.nodes.size();
        inserts(Site::segment_in, i, fan_in, depth);
      }
      auto main_layer = [&] {
        if (tied) return add(*tied, i, true);
        const auto& ref = net.layer();
        auto layer = attempt("network.layer.name", ref.name(), [&] {
          return registry_.get(Kind::layer, ref.name()).info->template make<T>().layer(LayerArgs{fan_in, width, params_of(ref)});
        });
        Use use = new_use(std::move(layer), ref.name(), i, fan_in, width, "network.layer.name");
        if (net.tie_weights()) tied = use;
        add(std::move(use), i, true);
      };
      // layer, then activation; or (activation_first) activation, then layer.
      const std::size_t act_width = net.activation_first() ? fan_in : width;
      if (!net.activation_first()) main_layer();
      inserts(Site::pre_activation, i, act_width, depth);
      if (!net.linear_readout() || i + 1 < depth) add(Use{&act, act_ref.name(), {}, act_width, act_width}, i);
      inserts(Site::post_activation, i, act_width, depth);
      if (net.activation_first()) main_layer();
      if (i % span == span - 1 || i + 1 == depth) {
        if (shortcut) merge(segment_start, i, *shortcut);
        inserts(Site::segment_out, i, width, depth);
      }
      n_.block_end[i] = n_.nodes.size();
    }
    return finish();
  }

 private:
  using Use = typename Network<T>::Use;

  // Block t is time step t: the one Unrolled layer (every layer's cell) with the same weights,
  // then the mitigations' inserts; the last block ends with the read-out the loss sees.
  Network<T> build_recurrent() {
    const auto& net = spec_.network();
    const auto& rec = net.recurrent();
    const std::size_t depth = net.depth(), hidden = net.width();
    for (std::size_t k = 0; k < n_.mitigations.size(); ++k)
      if (n_.mitigations[k]->shortcut(depth))
        throw SpecError(field(int(k)), "a residual shortcut across time steps is not supported in a recurrent network; "
                                       "drop it (clipping, loss scaling and normalisation work)");
    std::vector<std::unique_ptr<Cell<T>>> cells;
    for (std::uint32_t k = 0; k < rec.layers(); ++k) {
      const CellArgs<T> args{k ? hidden : rec.input_width(), hidden, params_of(rec.cell()), n_.activations.back().get()};
      auto cell = attempt("network.recurrent.cell.name", rec.cell().name(), [&] {
        return registry_.get(Kind::cell, rec.cell().name()).info->template make<T>().cell(args);
      });
      if (!cell) throw SpecError("network.recurrent.cell.name", "\"" + rec.cell().name() + "\" made no cell");
      cells.push_back(std::move(cell));
    }
    auto step = attempt("network.recurrent.cell.name", rec.cell().name(), [&] {
      return std::make_unique<Unrolled<T>>(std::move(cells), rec.input_width(), hidden, rec.read() == v1::Recurrent::EVERY,
                                           task_input_ ? 0.0 : std::sqrt(rec.input_variance()), depth);
    });
    const std::size_t cols = step->state_cols(), read = step->read_offset();
    n_.input_width = cols;  // the network's input is the initial state
    const Use use = new_use(std::move(step), rec.cell().name(), 0, cols, cols, "network.recurrent.cell.name");
    n_.block_end.resize(depth);
    for (std::size_t t = 0; t < depth; ++t) {
      inserts(Site::segment_in, t, cols, depth);
      add(use, t, true);
      inserts(Site::pre_activation, t, cols, depth);
      inserts(Site::post_activation, t, cols, depth);
      inserts(Site::segment_out, t, cols, depth);
      if (t + 1 == depth) add(Use{&own(std::make_unique<Readout<T>>(read, hidden)), "readout", {}, cols, hidden}, t);
      n_.block_end[t] = n_.nodes.size();
    }
    return finish();
  }

  // Block l's sub-layers, attention and MLP, are blocks 2l and 2l+1 of the record (l with
  // attention_only), each F wrapped as the arrangement says (proto: Transformer).
  Network<T> build_transformer(const Layer<T>& act) {
    const auto& net = spec_.network();
    const auto& tr = net.transformer();
    const std::size_t depth = net.depth(), width = net.width(), hidden = tr.mlp_ratio() * width;
    n_.tokens = tr.tokens(), n_.batch = std::size_t(spec_.batch()) * tr.tokens();
    for (std::size_t k = 0; k < n_.mitigations.size(); ++k) {
      bool inserts = bool(n_.mitigations[k]->shortcut(depth));
      for (Site site : {Site::segment_in, Site::pre_activation, Site::post_activation, Site::segment_out})
        inserts = inserts || n_.mitigations[k]->insert(site, 0, width, depth);
      if (inserts)
        throw SpecError(field(int(k)), "network.transformer.arrangement places the shortcuts and norms; drop \"" +
                                           spec_.mitigations(int(k)).name() + "\" (clipping and loss scaling work)");
    }
    const auto arrangement = tr.arrangement();
    const double scale = arrangement == v1::Transformer::DEEPNORM || arrangement == v1::Transformer::REZERO ? 1 : tr.scale();
    const std::size_t per_block = tr.attention_only() ? 1 : 2;
    n_.block_end.resize(depth * per_block);
    for (std::size_t l = 0; l < depth; ++l)
      for (std::size_t part = 0; part < per_block; ++part) {
        const std::size_t b = l * per_block + part;
        const std::size_t x = n_.nodes.size();  // the value the sub-layer reads
        if (arrangement == v1::Transformer::PRE_LN) norm(b);
        const std::size_t first_weight = n_.weights.size();
        if (part == 0) {
          const auto* info = registry_.get(Kind::layer, "attention").info;
          Params p = defaults_of(info->params);
          p.set("heads", {double(tr.heads()), ""}), p.set("causal", {double(tr.causal()), ""});
          auto layer = attempt("network.transformer", "attention", [&] {
            return info->template make<T>().layer(LayerArgs{width, width, p, tr.tokens()});
          });
          add(new_use(std::move(layer), "attention", b, width, width, "network.transformer"), b, true);
        } else {
          add(spec_layer(b, width, hidden), b, true);
          add(Use{&act, net.activation().name(), {}, hidden, hidden}, b);
          add(spec_layer(b, hidden, width), b);
        }
        if (arrangement == v1::Transformer::DEEPNORM)  // Wv, Wo and the MLP's weights: times beta
          for (std::size_t k = first_weight; k < n_.weights.size(); ++k) {
            auto& d = n_.weights[k].decl;
            if (d.role == WeightRole::weight && d.name != "Wq" && d.name != "Wk") d.scale *= tr.beta();
          }
        if (arrangement == v1::Transformer::REZERO)
          add(new_use(std::make_unique<Gate<T>>(), "rezero", b, width, width, "network.transformer"), b);
        if (arrangement != v1::Transformer::PLAIN) {
          typename Network<T>::Node m;
          m.block = b, m.skip_from = x, m.alpha = scale;
          if (arrangement == v1::Transformer::DEEPNORM) m.skip_scale = tr.alpha();
          n_.nodes.push_back(std::move(m));
        }
        if (arrangement == v1::Transformer::POST_LN || arrangement == v1::Transformer::DEEPNORM) norm(b);
        if (arrangement == v1::Transformer::PRE_LN && b + 1 == n_.block_end.size()) norm(b);  // the final norm
        n_.block_end[b] = n_.nodes.size();
      }
    return finish();
  }

  // The spec's layer (the MLP's), fan_in -> fan_out, in block b.
  Use spec_layer(std::size_t b, std::size_t fan_in, std::size_t fan_out) {
    const auto& ref = spec_.network().layer();
    auto layer = attempt("network.layer.name", ref.name(), [&] {
      return registry_.get(Kind::layer, ref.name()).info->template make<T>().layer(
          LayerArgs{fan_in, fan_out, params_of(ref), spec_.network().transformer().tokens()});
    });
    return new_use(std::move(layer), ref.name(), b, fan_in, fan_out, "network.layer.name");
  }

  // A layer norm (the layer_norm plugin's, affine, eps 1e-5) in block b.
  void norm(std::size_t b) {
    const auto* info = registry_.get(Kind::mitigation, "layer_norm").info;
    Params p = defaults_of(info->params);
    p.set("placement", {0, "residual_post"});
    const std::size_t width = n_.width;
    auto layer = attempt("network.transformer", "layer_norm", [&] {
      return info->template make<T>().mitigation(p)->insert(Site::segment_out, b, width, n_.block_end.size());
    });
    add(new_use(std::move(layer), "layer_norm", b, width, width, "network.transformer"), b);
  }

  // The task's read-out (after the last block's end: the records are the network's), the
  // initialiser, the loss (a task's is made by the engine) and the optimiser, last.
  Network<T> finish() {
    const auto& train = spec_.train();
    if (const auto& task = train.task(); task.kind() != v1::Task::KIND_UNSPECIFIED) {
      const auto* dense = registry_.get(Kind::layer, "dense").info;
      auto head = attempt("train.task", "dense", [&] {
        return dense->template make<T>().layer(LayerArgs{n_.width, task.outputs(), defaults_of(dense->params)});
      });
      const std::size_t last = n_.block_end.size() - 1;
      add(new_use(std::move(head), "dense", last, n_.width, task.outputs(), "train.task"), last);
      if (task.kind() == v1::Task::TEACHER) n_.teacher = teacher();
    }
    n_.init = attempt("init.name", spec_.init().name(), [&] {
      return registry_.get(Kind::initializer, spec_.init().name()).info->initializer(params_of(spec_.init()));
    });
    if (!spec_.loss().name().empty())
      n_.loss = attempt("loss.name", spec_.loss().name(), [&] {
        return registry_.get(Kind::loss, spec_.loss().name()).info->template make<T>().loss(params_of(spec_.loss()));
      });
    if (train.steps())
      n_.optimizer = attempt("train.optimizer.name", train.optimizer().name(), [&] {
        return registry_.get(Kind::optimizer, train.optimizer().name()).info->template make<T>().optimizer(
            params_of(train.optimizer()));
      });
    return std::move(n_);
  }

  // The teacher, in float64; its errors name its fields (train.task.teacher...).
  std::shared_ptr<TeacherNet> teacher() {
    auto t = std::make_shared<TeacherNet>();
    t->spec = teacher_spec(spec_);
    try {
      t->net = Builder<double>(t->spec, registry_, true).build();
    } catch (const SpecError& e) {
      throw SpecError(teacher_path(e.path), e.what());
    }
    if (t->net.input_width != n_.input_width)
      throw SpecError("train.task.teacher", "the teacher reads " + std::to_string(t->net.input_width) +
                                                " input features and the network " + std::to_string(n_.input_width) +
                                                "; give the teacher the network's input (for a recurrent network: the "
                                                "same cell, layers and width)");
    return t;
  }

  static std::string field(int k) { return "mitigations[" + std::to_string(k) + "].name"; }

  const Layer<T>& own(std::unique_ptr<Layer<T>> layer) {
    n_.layers.push_back(std::move(layer));
    return *n_.layers.back();
  }

  // A first use of a new layer: its declared weights become new entries of the network.
  Use new_use(std::unique_ptr<Layer<T>> layer, const std::string& name, std::size_t block, std::size_t in,
              std::size_t out, const std::string& where) {
    if (!layer) throw SpecError(where, "\"" + name + "\" made no layer");
    Use use{&own(std::move(layer)), name, {}, in, out};
    const auto decls = attempt(where, name, [&] { return use.layer->weights(); });
    std::set<std::string> names;
    for (std::size_t k = 0; k < decls.size(); ++k) {
      if (!names.insert(decls[k].name).second)
        throw SpecError(where, "\"" + name + "\" declares weight \"" + decls[k].name + "\" twice; give each weight its own name");
      use.weights.push_back(n_.weights.size());
      n_.weights.push_back({decls[k], long(block), use.layer, k});
    }
    return use;
  }

  void add(Use use, std::size_t block, bool main = false) {
    typename Network<T>::Node n;
    n.use = std::move(use), n.block = block, n.main = main;
    n_.nodes.push_back(std::move(n));
  }

  void inserts(Site site, std::size_t block, std::size_t width, std::size_t depth) {
    for (std::size_t k = 0; k < n_.mitigations.size(); ++k) {
      const auto& name = spec_.mitigations(int(k)).name();
      auto layer = attempt(field(int(k)), name, [&] { return n_.mitigations[k]->insert(site, block, width, depth); });
      if (layer) add(new_use(std::move(layer), name, block, width, width, field(int(k))), block);
    }
  }

  void merge(std::size_t segment_start, std::size_t block, const Shortcut& s) {
    typename Network<T>::Node m;
    m.block = block, m.skip_from = segment_start, m.alpha = s.alpha;
    const std::size_t skip_width = segment_start == 0 ? n_.input_width : n_.width;
    if (skip_width != n_.width) {
      for (std::size_t k = 0; k < n_.mitigations.size() && !m.projection; ++k) {
        const auto& name = spec_.mitigations(int(k)).name();
        auto p = attempt(field(int(k)), name, [&] { return n_.mitigations[k]->projection(skip_width, n_.width); });
        if (p) m.projection = new_use(std::move(p), name, block, skip_width, n_.width, field(int(k)));
      }
      if (!m.projection)
        throw SpecError("network.input_width", "the residual shortcut goes from width " + std::to_string(skip_width) +
                                                   " to " + std::to_string(n_.width) +
                                                   " but its mitigation gives no projection; make input_width equal width");
    }
    n_.nodes.push_back(std::move(m));
  }

  const v1::SimSpec& spec_;
  const Registry& registry_;
  bool task_input_;
  Network<T> n_;
};

}  // namespace

namespace {
// Jacobian spectra in the record: a summary of about 200 bytes, and 9 bytes per value stored.
double jacobian_bytes(const v1::SimSpec& spec) {
  const auto& j = spec.jacobian();
  const double n = std::min(spec.network().width(), spec.network().input_width() ? spec.network().input_width()
                                                                                    : spec.network().width());
  const double each = 200 + (j.max_values() < 0 || n > j.max_values() ? 0 : 9 * n);
  return double(j.samples()) * (1 + (j.per_block() ? spec.network().depth() : 0)) * each;
}
}  // namespace

std::uint64_t estimate_record_bytes(const v1::SimSpec& spec) {
  // Records: a transformer's sub-layers are its blocks.
  const double depth = spec.network().depth() * (spec.network().has_transformer() ? 2 : 1),
               mitigations = spec.mitigations_size();
  // A LayerTrace is 5 TensorStats of about 90 bytes; a StepTrace about 60 bytes; a hook
  // event about 60 bytes, and a per-block hook fires once per block and step.
  const double steps = std::max<std::uint32_t>(1, spec.train().steps());
  // An evaluation: about 80 bytes and 18 per block.
  const double evaluations = spec.train().has_task() ? (steps / spec.train().eval_every() + 2) * (80 + 18 * depth) : 0;
  return std::uint64_t(600 * depth + steps * (70 + 60 * mitigations * (depth + 1)) + evaluations + 2000 +
                       jacobian_bytes(spec));
}

std::uint64_t estimate_bytes(const v1::SimSpec& spec) {
  const auto& net = spec.network();
  if (net.has_transformer()) {  // rows = sequences x tokens; per sub-layer about 6 values of up to the MLP's width
    const auto& tr = net.transformer();
    const double rows = double(spec.batch()) * tr.tokens(), width = net.width(), depth = net.depth();
    const double hidden = std::max<double>(1, tr.mlp_ratio()) * width;
    const double scalar = spec.dtype() == v1::FLOAT32 ? 4 : spec.dtype() == v1::FLOAT64 || spec.dtype() == 0 ? 8 : 2;
    const double values = depth * 2 * 6 * rows * hidden * scalar;
    const double saved = depth * (4 * rows * width + rows * tr.heads() * tr.tokens()) * scalar * 2;
    const double weights = depth * (4 + 2 * tr.mlp_ratio()) * width * width * ((spec.train().steps() ? 4 : 2) * scalar + 8);
    const double steps = std::max<std::uint32_t>(1, spec.train().steps());
    return std::uint64_t(values + saved + weights + depth * 2 * (20 * 700 + 2000) + steps * 400 +
                         double(estimate_record_bytes(spec)) + 1e6);
  }
  const double depth = net.depth(), width = net.width();
  const bool recurrent = !net.recurrent().cell().name().empty();
  const double layers = std::max<std::uint32_t>(1, net.recurrent().layers());
  // A recurrent state holds every layer's (an lstm's [h, c]) and the running mean: at most
  // (2 layers + 1) hidden columns; each step saves about 8 hidden columns per layer, and x_t.
  const double in = recurrent ? (2 * layers + 1) * width : net.input_width() ? net.input_width() : width;
  const double batch = spec.batch(), mitigations = spec.mitigations_size();
  const double scalar = spec.dtype() == v1::FLOAT32 ? 4 : spec.dtype() == v1::FLOAT64 || spec.dtype() == 0 ? 8 : 2;
  // Nodes per block: layer, activation, an inserted layer per mitigation, a merge.
  const double nodes = depth * (3 + mitigations);
  const double values = (nodes + 1) * batch * std::max(width, in) * scalar;
  const double saved = depth * mitigations * 2 * batch * in * scalar +  // e.g. a norm's xhat
                       (recurrent ? depth * batch * (layers * 8 * width + net.recurrent().input_width()) * scalar : 0);
  // value, grad, float64 draw, and up to two optimiser states (Adam's moments) when training
  const double weights = depth * (std::max(width, in) + 1) * width * ((spec.train().steps() ? 4 : 2) * scalar + 8);
  const double bookkeeping = nodes * 700;  // node, context, stream, heap headers
  // The record as protobuf objects while it is built (a LayerTrace about 2 KB, a StepTrace
  // 200 bytes, an event 450 bytes with its strings, measured), then serialised once more.
  const double steps = std::max<std::uint32_t>(1, spec.train().steps());
  const double record = depth * 2000 + steps * (200 + 520 * mitigations * (depth + 1)) +
                        double(estimate_record_bytes(spec));
  // Jacobian spectra. Exact: one piece (a block or a residual segment) at a time, its values for
  // `width` replicated rows, and float64 factors (the piece's Jacobian, U, the SVD's copies and
  // work). Krylov: every node's values for 16 rows, and three float64 bases of krylov_dim.
  const double wide = std::max(width, in), dim = spec.jacobian().krylov_dim();
  const double jacobian = !spec.jacobian().samples() ? 0
                          : wide <= spec.jacobian().exact_width()
                              ? (3 + mitigations) * 2 * width * wide * scalar + 12 * wide * wide * 8
                              : (nodes + 1) * 2 * 16 * wide * scalar + 4 * wide * dim * 8;
  // A task: its held-out set and a training batch (inputs and targets, float64), and a teacher.
  const auto& task = spec.train().task();
  const double held = task.kind() ? (spec.train().eval_batches() + 1) * batch * (in + task.outputs()) * 8 : 0;
  const double teacher = task.kind() == v1::Task::TEACHER ? double(estimate_bytes(teacher_spec(spec))) : 0;
  return std::uint64_t(values + saved + weights + bookkeeping + record + jacobian + held + teacher + 1e6);
}

template <class T>
Network<T> build_network(const v1::SimSpec& spec, const Registry& registry) {
  if (spec.network().tie_weights() && spec.network().input_width() != spec.network().width())
    throw SpecError("network.tie_weights", "tie_weights shares block 0's weights with every block, so "
                                           "network.input_width must equal network.width");
  return Builder<T>(spec, registry, spec.train().has_task()).build();
}

#define GRADSIM_INSTANTIATE_BUILD(T) template Network<T> build_network<T>(const v1::SimSpec&, const Registry&);
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_BUILD)

}  // namespace gradsim
