// Resolving a simulation against the registry: defaults filled in, every value checked
// against the plugins' declarations.
#include <algorithm>
#include <cmath>

#include "error.hpp"
#include "spec/spec.hpp"

namespace gradsim {

using detail::format_number;

namespace {

std::string range_text(const ParamDecl& d) {
  if (d.type == ParamType::choice) {
    std::string s;
    for (std::size_t i = 0; i < d.choices.size(); ++i) s += (i ? ", " : "") + d.choices[i];
    return "one of " + s;
  }
  return "[" + format_number(d.min) + ", " + format_number(d.max) + "]";
}

// Checks one given value against its declaration and writes it back in canonical form.
void resolve_param(v1::Param& p, const ParamDecl& d, const std::string& where) {
  const bool is_num = p.value_case() == v1::Param::kNumber;
  const std::string got = is_num ? format_number(p.number())
                          : p.value_case() == v1::Param::kText ? "\"" + p.text() + "\""
                          : p.value_case() == v1::Param::kFlag ? (p.flag() ? "true" : "false")
                                                                : "nothing";
  const std::string bad = where + " = " + got + ": ";
  switch (d.type) {
    case ParamType::real:
    case ParamType::integer:
      if (!is_num) throw SpecError(where, bad + "expected a number (number: ...)");
      if (!(p.number() >= d.min && p.number() <= d.max))
        throw SpecError(where, bad + "out of range " + range_text(d) + " (" + d.help + ")");
      if (d.type == ParamType::integer && p.number() != std::floor(p.number()))
        throw SpecError(where, bad + "expected an integer");
      break;
    case ParamType::boolean:
      if (is_num && (p.number() == 0 || p.number() == 1)) p.set_flag(p.number() == 1);
      if (p.value_case() != v1::Param::kFlag)
        throw SpecError(where, bad + "expected true or false (flag: ...)");
      break;
    case ParamType::choice:
      if (p.value_case() != v1::Param::kText ||
          std::find(d.choices.begin(), d.choices.end(), p.text()) == d.choices.end())
        throw SpecError(where, bad + "expected " + range_text(d) + " (text: ...)");
      break;
  }
}

void resolve_plugin(v1::PluginRef& ref, Kind kind, const std::string& where,
                    const std::string& fallback, const Registry& registry) {
  if (ref.name().empty()) ref.set_name(fallback);
  const Registry::Entry* e = registry.find(kind, ref.name());
  if (!e) {
    try {
      registry.get(kind, ref.name());
    } catch (const Error& err) {
      throw SpecError(where + ".name", err.what());
    }
  }
  const auto& decls = e->info->params;
  for (auto& p : *ref.mutable_params()) {
    const std::string pwhere = where + ".params." + p.name();
    auto d = std::find_if(decls.begin(), decls.end(), [&](auto& d) { return d.name == p.name(); });
    if (d == decls.end()) {
      std::string names;
      for (const auto& x : decls) names += (names.empty() ? "" : ", ") + x.name;
      throw SpecError(pwhere, std::string(kind_name(kind)) + " \"" + ref.name() +
                                  "\" has no parameter \"" + p.name() + "\" (" +
                                  (names.empty() ? "it takes none" : "it takes " + names) + ")");
    }
    resolve_param(p, *d, pwhere);
  }
  // Rebuild in declaration order, defaults for what was left out.
  v1::PluginRef out;
  out.set_name(ref.name());
  for (const auto& d : decls) {
    v1::Param* q = out.add_params();
    q->set_name(d.name);
    int given = 0;
    for (const auto& p : ref.params())
      if (p.name() == d.name) *q = p, ++given;
    if (given > 1) throw SpecError(where + ".params." + d.name, "parameter \"" + d.name + "\" is given twice");
    if (given) continue;
    if (d.type == ParamType::choice) q->set_text(d.default_text);
    else if (d.type == ParamType::boolean) q->set_flag(d.default_number != 0);
    else q->set_number(d.default_number);
  }
  ref = std::move(out);
}

}  // namespace

void resolve_train(v1::SimSpec& sim, const Registry& registry);

namespace {
void resolve_transformer(v1::SimSpec& sim) {
  auto& net = *sim.mutable_network();
  auto& tr = *net.mutable_transformer();
  if (!v1::Transformer::Arrangement_IsValid(tr.arrangement()))
    throw SpecError("network.transformer.arrangement",
                    "network.transformer.arrangement must be PLAIN, RESIDUAL, POST_LN, PRE_LN, DEEPNORM or REZERO");
  if (!net.recurrent().cell().name().empty())
    throw SpecError("network.transformer", "a network is a transformer or recurrent, not both; drop one");
  for (auto [on, what] : {std::pair{net.tie_weights(), "tie_weights"}, {net.linear_readout(), "linear_readout"},
                          {net.activation_first(), "activation_first"}})
    if (on)
      throw SpecError("network." + std::string(what), "network." + std::string(what) +
                                                          " shapes feed-forward blocks; a transformer's arrangement "
                                                          "shapes its own: drop it");
  if (net.input_width() != net.width())
    throw SpecError("network.input_width", "a transformer keeps its width from the input on (its shortcuts add "
                                           "the input); make input_width equal width, or leave it out");
  if (tr.tokens() == 0) tr.set_tokens(16);
  if (tr.heads() == 0) tr.set_heads(1);
  if (net.width() % tr.heads())
    throw SpecError("network.transformer.heads", std::to_string(tr.heads()) + " heads do not divide the width " +
                                                     std::to_string(net.width()) + "; each head takes width / heads features");
  if (tr.mlp_ratio() == 0) tr.set_mlp_ratio(4);
  const bool deepnorm = tr.arrangement() == v1::Transformer::DEEPNORM;
  const bool scaled = tr.arrangement() == v1::Transformer::RESIDUAL || tr.arrangement() == v1::Transformer::POST_LN ||
                      tr.arrangement() == v1::Transformer::PRE_LN;
  if (tr.scale() != 0 && !scaled)
    throw SpecError("network.transformer.scale", "scale multiplies the branch of RESIDUAL, POST_LN and PRE_LN; "
                                                 "DEEPNORM has alpha and beta, REZERO a learnt gate, PLAIN no shortcut");
  if (scaled && tr.scale() == 0) tr.set_scale(1);
  if (!deepnorm && (tr.alpha() != 0 || tr.beta() != 0))
    throw SpecError("network.transformer.alpha", "alpha and beta are DEEPNORM's; drop them or set arrangement: DEEPNORM");
  // Wang et al. 2022, encoder-only: alpha = (2N)^(1/4), beta = (8N)^(-1/4).
  if (deepnorm && tr.alpha() == 0) tr.set_alpha(std::pow(2.0 * net.depth(), 0.25));
  if (deepnorm && tr.beta() == 0) tr.set_beta(std::pow(8.0 * net.depth(), -0.25));
  for (auto [v, what] : {std::pair{tr.scale(), "scale"}, {tr.alpha(), "alpha"}, {tr.beta(), "beta"}})
    if (!(v >= 0 && std::isfinite(v)))
      throw SpecError("network.transformer." + std::string(what), "network.transformer." + std::string(what) +
                                                                      " must be a finite number >= 0");
  if (sim.input().has_correlation())
    throw SpecError("input.correlation", "input.correlation pairs rows, and a transformer's rows are tokens of "
                                         "sequences; drop it");
  if (sim.jacobian().samples())
    throw SpecError("jacobian.samples", "Jacobian spectra are taken per input row, and attention mixes the tokens of "
                                        "a sequence (rows have no Jacobian of their own); drop jacobian");
  if (const auto kind = sim.train().task().kind(); kind == v1::Task::TEACHER || kind == v1::Task::CLUSTERS)
    throw SpecError("train.task.kind", "a transformer reads sequences of tokens: its task is NEXT_TOKEN");
  if (sim.train().task().kind() == v1::Task::NEXT_TOKEN && !tr.causal())
    throw SpecError("network.transformer.causal", "NEXT_TOKEN asks each token for the next one, which attention "
                                                  "without a causal mask can read; set causal: true");
}
}  // namespace

void resolve(v1::SimSpec& sim, const Registry& registry) {
  auto& net = *sim.mutable_network();
  if (net.depth() < 1) throw SpecError("network.depth", "network.depth must be at least 1");
  if (net.width() < 1) throw SpecError("network.width", "network.width must be at least 1");
  if (net.input_width() == 0) net.set_input_width(net.width());
  if (sim.batch() == 0) sim.set_batch(64);
  if (sim.dtype() == v1::DTYPE_UNSPECIFIED) sim.set_dtype(v1::FLOAT64);
  if (sim.detail() == v1::DETAIL_UNSPECIFIED) sim.set_detail(v1::FULL);
  if (!v1::DType_IsValid(sim.dtype()))
    throw SpecError("dtype", "dtype " + std::to_string(int(sim.dtype())) +
                                 " is not a format; use FLOAT64, FLOAT32, BFLOAT16 or FLOAT16");
  const bool transformer = net.transformer().arrangement() != v1::Transformer::ARRANGEMENT_UNSPECIFIED;
  if (transformer && net.activation().name().empty()) net.mutable_activation()->set_name("gelu");  // the MLP's
  resolve_plugin(*net.mutable_layer(), Kind::layer, "network.layer", "dense", registry);
  resolve_plugin(*net.mutable_activation(), Kind::activation, "network.activation", "linear", registry);
  resolve_plugin(*sim.mutable_init(), Kind::initializer, "init", "gaussian", registry);
  const bool task = sim.train().task().kind() != v1::Task::KIND_UNSPECIFIED;
  if (task && !sim.loss().name().empty())
    throw SpecError("loss.name", "train.task brings its own loss (mean squared error or cross-entropy against its "
                                 "targets); drop loss");
  if (!task) resolve_plugin(*sim.mutable_loss(), Kind::loss, "loss", "linear_probe", registry);
  // An entry with an empty name is off (an axis may switch it): drop it, params and all.
  auto* ms = sim.mutable_mitigations();
  ms->erase(std::remove_if(ms->begin(), ms->end(), [](const auto& m) { return m.name().empty(); }), ms->end());
  for (int i = 0; i < sim.mitigations_size(); ++i)
    resolve_plugin(*sim.mutable_mitigations(i), Kind::mitigation,
                   "mitigations[" + std::to_string(i) + "]", "", registry);
  if (!net.recurrent().cell().name().empty()) {  // (a feed-forward record keeps no empty recurrent {})
    auto& rec = *net.mutable_recurrent();
    resolve_plugin(*rec.mutable_cell(), Kind::cell, "network.recurrent.cell", "", registry);
    if (rec.layers() == 0) rec.set_layers(1);
    if (rec.input_width() == 0) rec.set_input_width(net.width());
    if (rec.read() == v1::Recurrent::READ_UNSPECIFIED) rec.set_read(v1::Recurrent::LAST);
    if (!v1::Recurrent::Read_IsValid(rec.read()))
      throw SpecError("network.recurrent.read", "network.recurrent.read must be LAST or EVERY");
    if (rec.input_variance() == 0) rec.set_input_variance(1);
    if (!(rec.input_variance() > 0 && std::isfinite(rec.input_variance())))
      throw SpecError("network.recurrent.input_variance", "network.recurrent.input_variance must be a positive finite number");
    for (auto [on, what] : {std::pair{net.tie_weights(), "tie_weights"}, {net.linear_readout(), "linear_readout"},
                            {net.activation_first(), "activation_first"}})
      if (on)
        throw SpecError("network." + std::string(what), "network." + std::string(what) + " shapes feed-forward blocks; a recurrent network's "
                        "steps share their weights already and the loss reads h: drop it");
    if (sim.jacobian().samples())
      throw SpecError("jacobian.samples", "Jacobian spectra of recurrent networks are not computed yet; drop jacobian");
    if (sim.train().task().kind() != v1::Task::KIND_UNSPECIFIED && rec.input_variance() != 1)
      throw SpecError("network.recurrent.input_variance", "with train.task a recurrent network reads the task's input as "
                                                          "its initial state and its x_t are zero; drop input_variance");
  }
  if (transformer) resolve_transformer(sim);
  else net.clear_transformer();  // (a record without one keeps no empty transformer {})
  auto& in = *sim.mutable_input();
  if (in.variance() == 0) in.set_variance(1);
  if (!(in.variance() > 0 && std::isfinite(in.variance())))
    throw SpecError("input.variance", "input.variance must be a positive finite number (the variance of each input feature)");
  if (in.has_correlation()) {
    if (!(std::fabs(in.correlation()) <= 1))
      throw SpecError("input.correlation", "input.correlation must be in [-1, 1]");
    if (sim.batch() % 2)
      throw SpecError("batch", "input.correlation pairs the rows of the batch, so batch must be even (it is " +
                                   std::to_string(sim.batch()) + ")");
  }
  resolve_train(sim, registry);
  auto& jac = *sim.mutable_jacobian();
  if (jac.samples() > sim.batch())
    throw SpecError("jacobian.samples", "jacobian.samples = " + std::to_string(jac.samples()) +
                                            " input rows, but the batch has " + std::to_string(sim.batch()) +
                                            "; ask for at most batch rows (or a larger batch)");
  if (jac.per_block() && !jac.samples())
    throw SpecError("jacobian.per_block", "jacobian.per_block needs jacobian.samples >= 1 (how many input rows)");
  if (jac.per_block() && sim.detail() == v1::SUMMARY)
    throw SpecError("jacobian.per_block", "jacobian.per_block keeps a spectrum in every block's record, and detail "
                                          "SUMMARY keeps no block records; use detail NORMS (or FULL), or drop per_block");
  if (jac.max_values() == 0) jac.set_max_values(512);
  if (jac.exact_width() == 0) jac.set_exact_width(2048);
  if (jac.krylov_dim() == 0) jac.set_krylov_dim(128);
  if (jac.per_block() && std::max(net.width(), net.input_width()) > jac.exact_width())
    throw SpecError("jacobian.per_block", "jacobian.per_block needs exact spectra, and this network (width " +
                                              std::to_string(std::max(net.width(), net.input_width())) +
                                              ") is wider than jacobian.exact_width (" +
                                              std::to_string(jac.exact_width()) +
                                              "): raise exact_width (minutes per block at widths of thousands) "
                                              "or drop per_block");
  if (jac.max_values() < -1)
    throw SpecError("jacobian.max_values", "jacobian.max_values must be -1 (never store the values) or positive");
}

namespace {
bool positive(double x) { return x > 0 && std::isfinite(x); }
}  // namespace

void resolve_train(v1::SimSpec& sim, const Registry& registry) {
  auto& train = *sim.mutable_train();
  if (train.lr() == 0) train.set_lr(0.01);
  if (!std::isfinite(train.lr())) throw SpecError("train.lr", "train.lr must be a finite number");
  auto& task = *train.mutable_task();
  const bool has_task = task.kind() != v1::Task::KIND_UNSPECIFIED;
  if (!has_task) {
    for (auto [set, what] : {std::pair{train.eval_every() != 0, "eval_every"}, {train.eval_batches() != 0, "eval_batches"},
                             {train.trained_below() != 0, "trained_below"}})
      if (set) throw SpecError("train." + std::string(what), "train." + std::string(what) +
                                                                 " is about held-out evaluations, which need train.task");
    train.clear_task();
  }
  if (!train.steps()) {
    if (has_task) throw SpecError("train.steps", "train.task trains the network: give train.steps (e.g. 500)");
    if (!train.optimizer().name().empty() || train.has_schedule())
      throw SpecError("train.steps", "train.optimizer and train.schedule need train.steps >= 1");
    return;  // a record without training keeps no optimiser
  }
  resolve_plugin(*train.mutable_optimizer(), Kind::optimizer, "train.optimizer", "sgd", registry);
  auto& sch = *train.mutable_schedule();
  if (sch.kind() == v1::Schedule::KIND_UNSPECIFIED) sch.set_kind(v1::Schedule::CONSTANT);
  if (!v1::Schedule::Kind_IsValid(sch.kind()))
    throw SpecError("train.schedule.kind", "train.schedule.kind must be CONSTANT or COSINE");
  if (!(sch.final_fraction() >= 0 && sch.final_fraction() <= 1))
    throw SpecError("train.schedule.final_fraction", "train.schedule.final_fraction must be in [0, 1] (a fraction of lr)");
  if (sch.final_fraction() != 0 && sch.kind() != v1::Schedule::COSINE)
    throw SpecError("train.schedule.final_fraction", "train.schedule.final_fraction is where COSINE decays to; set kind: COSINE");
  if (!has_task) return;
  if (!v1::Task::Kind_IsValid(task.kind()))
    throw SpecError("train.task.kind", "train.task.kind must be TEACHER, CLUSTERS or NEXT_TOKEN");
  const bool next_token = task.kind() == v1::Task::NEXT_TOKEN;
  if (next_token && !sim.network().has_transformer())
    throw SpecError("train.task.kind", "NEXT_TOKEN predicts the tokens of sequences: it needs network.transformer");
  if (!next_token && task.sharpness() != 0)
    throw SpecError("train.task.sharpness", "sharpness is NEXT_TOKEN's; drop it");
  if (next_token) {
    if (task.has_teacher() || task.has_teacher_init() || task.noise() != 0 || task.separation() != 0)
      throw SpecError("train.task.teacher", "teacher, teacher_init, noise and separation are not NEXT_TOKEN's; drop them");
    if (task.outputs() == 0) task.set_outputs(16);
    if (task.sharpness() == 0) task.set_sharpness(3);
    if (task.outputs() < 2)
      throw SpecError("train.task.outputs", "NEXT_TOKEN needs a vocabulary of at least 2 tokens (train.task.outputs)");
    if (!positive(task.sharpness()))
      throw SpecError("train.task.sharpness", "train.task.sharpness must be a positive finite number");
  }
  if (sim.jacobian().samples())
    throw SpecError("jacobian.samples", "Jacobian spectra are of the network, and a task adds a read-out the loss reads "
                                        "through; run the spectra in a spec without train.task");
  const bool teacher = task.kind() == v1::Task::TEACHER;
  if (task.outputs() == 0) task.set_outputs(teacher ? 1 : 10);
  if (!teacher && task.outputs() < 2)
    throw SpecError("train.task.outputs", "CLUSTERS needs at least 2 classes (train.task.outputs)");
  if (train.eval_every() == 0) train.set_eval_every(std::max<std::uint32_t>(1, train.steps() / 20));
  if (train.eval_batches() == 0) train.set_eval_batches(4);
  if (train.trained_below() == 0) train.set_trained_below(0.5);
  if (!positive(train.trained_below()))
    throw SpecError("train.trained_below", "train.trained_below must be a positive fraction of the trivial predictor's loss");
  if (!(task.noise() >= 0 && std::isfinite(task.noise())))
    throw SpecError("train.task.noise", "train.task.noise must be a finite standard deviation >= 0");
  if (teacher) {
    if (task.separation() != 0) throw SpecError("train.task.separation", "separation is CLUSTERS'; drop it for TEACHER");
    if (task.teacher().input_width() && task.teacher().input_width() != sim.network().input_width())
      throw SpecError("train.task.teacher.input_width", "the teacher reads the network's input (" +
                                                            std::to_string(sim.network().input_width()) + " features); drop input_width");
    v1::SimSpec t = teacher_spec(sim);
    try {
      resolve(t, registry);
    } catch (const SpecError& e) {
      throw SpecError(teacher_path(e.path), e.what());
    }
    *task.mutable_teacher() = t.network(), *task.mutable_teacher_init() = t.init();
  } else if (!next_token) {
    if (task.has_teacher() || task.has_teacher_init() || task.noise() != 0)
      throw SpecError("train.task.teacher", "teacher, teacher_init and noise are TEACHER's; drop them for CLUSTERS");
    if (task.separation() == 0) task.set_separation(3);
    if (!positive(task.separation()))
      throw SpecError("train.task.separation", "train.task.separation must be a positive finite number");
  }
}

v1::SimSpec teacher_spec(const v1::SimSpec& sim) {
  const auto& task = sim.train().task();
  v1::SimSpec t;
  auto& net = *t.mutable_network();
  if (!task.has_teacher()) {
    net = sim.network();
  } else {  // the teacher's own fields; depth, width, layer, activation and cell where it gives none
    net = task.teacher();
    const auto& s = sim.network();
    if (!net.depth()) net.set_depth(s.depth());
    if (!net.width()) net.set_width(s.width());
    if (net.layer().name().empty()) *net.mutable_layer() = s.layer();
    if (net.activation().name().empty()) *net.mutable_activation() = s.activation();
    if (!net.has_recurrent() && s.has_recurrent()) *net.mutable_recurrent() = s.recurrent();
  }
  net.set_input_width(sim.network().input_width());
  *t.mutable_init() = task.teacher_init();
  t.mutable_loss()->set_name("linear_probe");  // read by nothing: the task reads the teacher's output
  t.set_batch(sim.batch());
  t.set_dtype(v1::FLOAT64);
  t.mutable_input()->set_variance(sim.input().variance());
  t.set_seed(mix64((task.seed() ? task.seed() : sim.seed()) + 0x7eac4e7));
  return t;
}

std::string teacher_path(const std::string& path) {
  if (path.rfind("network.", 0) == 0) return "train.task.teacher." + path.substr(8);
  if (path.rfind("init", 0) == 0) return "train.task.teacher_" + path;
  return "train.task.teacher (" + path + ")";
}

Params params_of(const v1::PluginRef& ref) {
  Params out;
  for (const auto& p : ref.params())
    out.set(p.name(), {p.value_case() == v1::Param::kFlag ? double(p.flag()) : p.number(), p.text()});
  return out;
}

}  // namespace gradsim
