#include "theory/table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "error.hpp"
#include "io/report.hpp"
#include "run/validate.hpp"
#include "theory/batchnorm.hpp"
#include "theory/meanfield.hpp"
#include "theory/predict.hpp"

namespace gradsim::theory {

namespace {

struct Row {
  std::string activation;
  double w2 = 0, b2 = 0;
  FixedPoint fp;
  std::string config;  // spec rows: the configuration
  double predicted = NAN;  // spec rows: the network's predicted log10(first/last)
  std::string none;        // spec rows: why theory has nothing to say
  double bn_before = NAN, bn_after = NAN;  // --batch-norm: log10 |dL/dh| gained per block
};

std::string text(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// JSON has no inf or NaN: infinities are the strings "inf" and "-inf", undefined values null.
std::string json_number(double v) {
  if (std::isnan(v)) return "null";
  if (std::isinf(v)) return v > 0 ? "\"inf\"" : "\"-inf\"";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s + ' ';
}

void print(std::ostream& os, const std::vector<Row>& rows, bool json, bool spec, std::size_t batch_norm = 0) {
  if (json) {
    for (const auto& r : rows) {
      os << "{\"activation\": " << json_quote(r.activation);
      if (spec) os << ", \"configuration\": " << json_quote(r.config);
      if (!r.none.empty()) {
        os << ", \"none\": " << json_quote(r.none) << "}\n";
        continue;
      }
      os << ", \"sigma_w2\": " << json_number(r.w2) << ", \"sigma_b2\": " << json_number(r.b2)
         << ", \"q_star\": " << json_number(r.fp.q_star) << ", \"chi_1\": " << json_number(r.fp.chi_1)
         << ", \"c_star\": " << json_number(r.fp.c_star) << ", \"chi_c\": " << json_number(r.fp.chi_c)
         << ", \"xi_c\": " << json_number(r.fp.xi_c) << ", \"xi_grad\": " << json_number(r.fp.xi_grad)
         << ", \"phase\": " << json_quote(r.fp.phase);
      if (spec) os << ", \"predicted_log10_first_over_last\": " << json_number(r.predicted);
      if (batch_norm)
        os << ", \"batch_norm_before_activation\": " << json_number(r.bn_before)
           << ", \"batch_norm_after_activation\": " << json_number(r.bn_after);
      os << "}\n";
    }
    return;
  }
  std::size_t name_width = 12;
  for (const auto& r : rows) name_width = std::max(name_width, r.activation.size());
  os << pad("activation", name_width) << pad("sigma_w2", 9) << pad("sigma_b2", 9) << pad("q*", 11) << pad("chi_1", 11)
     << pad("c*", 9) << pad("chi_c", 9) << pad("xi_c", 9) << pad("xi_grad", 13) << pad("phase", 9)
     << (spec ? "predicted log10(|dL/dh| first/last)  configuration" : "")
     << (batch_norm ? "BN before  BN after" : "") << '\n';
  for (const auto& r : rows) {
    os << pad(r.activation, name_width);
    if (!r.none.empty()) {
      os << "no prediction: " << r.none;
      if (!r.config.empty()) os << "  (" << r.config << ')';
      os << '\n';
      continue;
    }
    os << pad(text(r.w2), 9) << pad(text(r.b2), 9) << pad(text(r.fp.q_star), 11) << pad(text(r.fp.chi_1), 11)
       << pad(text(r.fp.c_star), 9) << pad(text(r.fp.chi_c), 9) << pad(text(r.fp.xi_c), 9)
       << pad(text(r.fp.xi_grad), 13) << pad(r.fp.phase, 9);
    if (spec) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%+.3f", r.predicted);
      os << pad(buf, 36) << (r.config.empty() ? "(base)" : r.config);
    }
    if (batch_norm) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "%+.4f    %+.4f", r.bn_before, r.bn_after);
      os << buf;
    }
    os << '\n';
  }
  if (spec) {
    os << "q* to phase: the fixed point of one dense layer and the activation (\"-\" for a network with norms or\n"
          "shortcuts, whose blocks they do not describe); the predicted log-ratio is the whole network's\n";
    return;
  }
  os << "q*: fixed point of the length map E[h^2] (from the input's); chi_1 = sigma_w2 E[phi'(h)^2] at q*, the\n"
        "factor |dL/dh|^2 gains per layer backwards; c*, chi_c: the correlation map's stable fixed point and slope;\n"
        "xi = -1/ln chi, in layers (negative: growth). \"-\": undefined (q* is 0 or inf: no signal to correlate).\n";
  if (batch_norm)
    os << "BN before/after: log10 |dL/dh| gained per block with batch norm (batch " << batch_norm
       << ") before or after the activation (finite-batch mean field, Yang et al. 2019; Monte Carlo, +-0.0001)\n";
}

// An activation in float64 and its Phi, kept together (Phi refers to the activation's functions).
struct Act {
  std::unique_ptr<Activation<double>> act;
  std::unique_ptr<Phi> phi;
};

Act make_act(const Registry& registry, const std::string& name, const Params& params) {
  Act a{registry.get(Kind::activation, name).info->make<double>().activation(params), nullptr};
  if (const auto* e = a.act->elementwise()) a.phi = std::make_unique<Phi>(Phi::of(*e));
  return a;
}

// "leaky_relu" or "leaky_relu:slope=0.2,..." -> the resolved activation reference, its values
// checked against the plugin's declarations as a spec's would be.
v1::PluginRef activation_ref(const Registry& registry, const std::string& text) {
  const auto colon = text.find(':');
  v1::SimSpec sim;
  auto& ref = *sim.mutable_network()->mutable_activation();
  ref.set_name(text.substr(0, colon));
  if (colon != std::string::npos)
    for (const auto& item : detail::split(text.substr(colon + 1), ',')) {
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        throw Error("--activation " + text + ": \"" + item + "\" is not name=value; write e.g. leaky_relu:slope=0.2");
      auto& p = *ref.add_params();
      p.set_name(item.substr(0, eq));
      const std::string value = item.substr(eq + 1);
      char* end = nullptr;
      const double number = std::strtod(value.c_str(), &end);
      if (value == "true" || value == "false") p.set_flag(value == "true");
      else if (!value.empty() && end == value.c_str() + value.size()) p.set_number(number);
      else p.set_text(value);
    }
  sim.mutable_network()->set_depth(1), sim.mutable_network()->set_width(1);
  try {
    resolve(sim, registry);
  } catch (const SpecError& e) {
    throw Error("--activation " + text + ": " + e.what());
  }
  return sim.network().activation();
}

}  // namespace

void print_grid(std::ostream& os, const Registry& registry, const TableArgs& args) {
  std::vector<std::string> names = args.activations;
  if (names.empty())
    for (const auto& e : registry.entries())
      if (e.info->kind == Kind::activation && make_act(registry, e.info->name, defaults_of(e.info->params)).phi)
        names.push_back(e.info->name);
  std::vector<Row> rows;
  for (const auto& name : names) {
    const v1::PluginRef ref = activation_ref(registry, name);
    const Act a = make_act(registry, ref.name(), params_of(ref));
    if (!a.phi) throw Error("activation \"" + name + "\" is not elementwise, so mean-field theory does not apply to it");
    for (double b2 : args.bias_vars) {
      std::vector<double> w2s = args.weight_vars;
      if (args.critical) {
        const auto w2 = critical_weight_variance(*a.phi, b2, args.input_var);
        if (!w2) {
          Row r;
          r.activation = name, r.w2 = NAN, r.b2 = b2, r.none = "chi_1 does not cross 1 for sigma_w2 in [0.001, 10000]";
          rows.push_back(std::move(r));
          continue;
        }
        w2s = {*w2};
      }
      for (double w2 : w2s) {
        Row r;
        r.activation = name, r.w2 = w2, r.b2 = b2, r.fp = analyse(*a.phi, w2, b2, w2 * args.input_var + b2);
        if (args.batch_norm) {
          r.bn_before = 0.5 * std::log10(batch_norm_growth(*a.phi, args.batch_norm, true, w2, b2).value);
          r.bn_after = 0.5 * std::log10(batch_norm_growth(*a.phi, args.batch_norm, false, w2, b2).value);
        }
        rows.push_back(std::move(r));
      }
    }
  }
  print(os, rows, args.json, false, args.batch_norm);
}

void print_spec(std::ostream& os, const Registry& registry, const SpecFile& spec, bool json) {
  const Validation v = validate(spec, registry);  // located errors first
  const std::uint64_t replicas = std::max<std::uint32_t>(1, spec.sweep.replicas());
  constexpr std::uint64_t kMaxRows = 1000;
  std::vector<Row> rows;
  for (std::uint64_t index = 0; index < v.count && rows.size() < kMaxRows; index += replicas) {
    v1::SimSpec sim = sim_at(spec.sweep, index);
    resolve(sim, registry);
    Row r;
    r.activation = sim.network().activation().name();
    r.config = detail::configuration_text(spec.sweep, index);
    const auto p = predict(sim, registry);
    r.none = p->none;
    if (r.none.empty()) {
      const Act a = make_act(registry, r.activation, params_of(sim.network().activation()));
      r.w2 = p->sigma_w2, r.b2 = p->sigma_b2, r.predicted = p->log10_first_over_last;
      if (p->plain) {
        r.fp = analyse(*a.phi, r.w2, r.b2, p->q.size() > 1 ? p->q[1] : p->q[0]);
      } else {  // norms or shortcuts: the layer's own maps do not describe the network
        FixedPoint none;
        none.q_star = none.chi_1 = none.c_star = none.chi_c = none.xi_c = none.xi_grad = NAN;
        none.phase = std::string(1, '-');
        r.fp = std::move(none);
      }
    }
    rows.push_back(std::move(r));
  }
  print(os, rows, json, true);
  if (v.count / replicas > kMaxRows && !json)
    os << "(the first " << kMaxRows << " of " << v.count / replicas << " configurations)\n";
}

}  // namespace gradsim::theory
