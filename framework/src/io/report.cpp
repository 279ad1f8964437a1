#include "io/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "io/trace_io.hpp"
#include "spec/spec.hpp"

namespace gradsim {

namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s;
}

std::string status_text(const v1::SimTrace& t) {
  return t.status() == v1::SimTrace::OK ? "ok" : "FAILED: " + t.message();
}

std::uint64_t nonfinite(const v1::TensorStats& s) { return s.nan() + s.pos_inf() + s.neg_inf(); }

}  // namespace

double log10_first_over_last(const std::vector<double>& g) {
  return g.empty() ? NAN : std::log10(g.front() / g.back());
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string verdict(double m, double band) {
  if (std::isnan(m)) return "non-finite";
  return m < -band ? "vanishing" : m > band ? "exploding" : "stable";
}

void RunSummary::add(const v1::SimTrace& t) {
  const std::string config = detail::configuration_text(sweep_, t.index());
  auto [it, fresh] = group_of_.try_emplace(config, groups_.size());
  if (fresh) groups_.push_back({config, {}, 0, 0, {}, {}, {}, {}, {}, {}, {}});
  auto& g = groups_[it->second];
  std::vector<double> norms;
  for (const auto& l : t.layers()) norms.push_back(l.grad_norm());
  // A SUMMARY record keeps no blocks, only the two norms the ratio is made of.
  const double ratio = norms.empty() ? log10_first_over_last({t.first_grad_norm(), t.last_grad_norm()})
                                     : log10_first_over_last(norms);
  if (t.status() != v1::SimTrace::OK) ++g.failed;
  else if (std::isfinite(ratio)) g.ratios.push_back(ratio);
  else ++g.nonfinite;
  if (t.status() == v1::SimTrace::OK && t.prediction().none().empty())
    g.predicted.push_back(t.prediction().log10_first_over_last());
  for (const auto& sp : t.jacobian())  // NaN where the spectrum is (a Jacobian that overflowed)
    if (!std::isnan(sp.log10_spread())) g.spreads.push_back(sp.log10_spread());
  if (t.status() == v1::SimTrace::OK && t.evaluations_size()) {
    const auto &first = t.evaluations(0), &last = t.evaluations(t.evaluations_size() - 1);
    g.loss_ratios.push_back(last.test_loss() / first.test_loss());
    g.scores.push_back(last.score());
    ++g.verdicts[t.verdict()];
  }
  if (t.has_grad_overflow_layer()) g.overflow_layers.push_back(t.grad_overflow_layer());
  if (t.has_grad_underflow_layer()) g.underflow_layers.push_back(t.grad_underflow_layer());
  if (columns_.size() < columns_max_ && !norms.empty()) columns_.push_back({t.index(), std::move(norms)});
}

RunSummary::Row RunSummary::row(const Group& g) const {
  // Theory's value is the same for every replica but for rounding: its median.
  Row out{g.ratios.size() + g.nonfinite + g.failed, median(g.ratios), NAN, NAN, median(g.predicted),
          median(g.spreads), ""};
  if (!g.ratios.empty()) {
    const auto [lo, hi] = std::minmax_element(g.ratios.begin(), g.ratios.end());
    out.min = *lo, out.max = *hi;
  }
  // A verdict needs most simulations to have a finite ratio; otherwise the gradient left the
  // format (inf or NaN, or all zeros at one end) in most of them: "non-finite".
  out.verdict = g.ratios.size() + g.nonfinite == 0 ? "failed"
                : g.nonfinite * 2 > g.ratios.size() + g.nonfinite ? "non-finite"
                                                                   : verdict(out.median, band_);
  return out;
}

void RunSummary::print(std::ostream& os) const {
  const bool theory = std::any_of(groups_.begin(), groups_.end(), [](const Group& g) { return !g.predicted.empty(); });
  const bool spread = std::any_of(groups_.begin(), groups_.end(), [](const Group& g) { return !g.spreads.empty(); });
  os << "  n  log10(|dL/dh| first/last): median [min, max]  " << (theory ? "theory  " : "")
     << (spread ? "J spread  " : "") << "verdict     configuration\n";
  for (const auto& g : groups_) {
    const Row r = row(g);
    std::ostringstream notes;
    if (g.failed) notes << ' ' << g.failed << " failed";
    if (g.nonfinite) notes << ' ' << g.nonfinite << " non-finite";
    for (auto [layers, what] : {std::pair{&g.overflow_layers, "overflowed"}, {&g.underflow_layers, "underflowed"}}) {
      if (layers->empty()) continue;
      const auto [lo, hi] = std::minmax_element(layers->begin(), layers->end());
      notes << ' ' << layers->size() << ' ' << what << " (dL/dh at layer " << *hi;
      if (*lo != *hi) notes << " to " << *lo;
      notes << ')';
    }
    os << fmt("%3.0f", double(r.n)) << (std::isnan(r.median) ? std::string(29, ' ') : fmt("  %+27.2f", r.median))
       << (std::isnan(r.min) ? std::string(17, ' ') : fmt(" [%+6.2f,", r.min) + fmt(" %+6.2f]", r.max)) << "  "
       << (!theory ? "" : std::isnan(r.predicted) ? "   -    " : fmt("%+6.2f  ", r.predicted))
       << (!spread ? "" : std::isnan(r.spread) ? "    -     " : fmt("%8.2f  ", r.spread)) << pad(r.verdict, 10)
       << "  " << (g.label.empty() ? "(base)" : g.label) << notes.str() << '\n';
  }
  os << "verdict: |median| <= " << band_ << " stable (--stable-band), below vanishing, above exploding; "
        "non-finite: the gradient left the format (inf, NaN or all zeros) in most simulations\n";
  if (theory)
    os << "theory: mean-field theory's value of the same log-ratio (`gradsim theory SPEC` for q*, chi_1, depth "
          "scales); -: a network theory does not cover (`gradsim inspect` says why)\n";
  if (spread)
    os << "J spread: log10(largest / smallest non-zero singular value) of the input-output Jacobian dy/dx, median "
          "over its samples (`gradsim inspect` shows each spectrum)\n";
  if (std::any_of(groups_.begin(), groups_.end(), [](const Group& g) { return !g.scores.empty(); })) {
    os << "\ntraining on the task (held-out loss; medians over the replicas)\n"
          "  n  last/first     score  trained  not  diverged  configuration\n";
    for (const auto& g : groups_) {
      if (g.scores.empty()) continue;
      auto number = [](const char* f, double v) { return fmt(f, std::isnan(v) ? std::fabs(v) : v); };  // "nan", not "-nan"
      os << fmt("%3.0f", double(g.scores.size())) << number("  %10.3g", median(g.loss_ratios))
         << number("  %8.3g", median(g.scores)) << fmt("  %7.0f", double(g.verdicts[v1::TRAINED]))
         << fmt("  %3.0f", double(g.verdicts[v1::DID_NOT_TRAIN])) << fmt("  %8.0f", double(g.verdicts[v1::DIVERGED]))
         << "  " << (g.label.empty() ? "(base)" : g.label) << '\n';
    }
    os << "score: the last held-out loss / the trivial predictor's (TEACHER: the targets' variance; CLUSTERS: "
          "ln classes; NEXT_TOKEN: ln tokens); trained: score <= train.trained_below; diverged: an inf or NaN loss or weight\n";
  }
  std::size_t depth = 0;
  for (const auto& c : columns_) depth = std::max(depth, c.grad_norms.size());
  if (depth == 0) return;
  os << "\n|dL/dh| by layer (layer 0 is next to the input; gradients flow from the last)\nlayer";
  for (const auto& c : columns_) os << fmt("   sim %-4.0f", double(c.index));
  os << '\n';
  const std::size_t step = std::max<std::size_t>(1, (depth + 9) / 10);
  std::vector<std::size_t> shown;
  for (std::size_t i = 0; i < depth; i += step) shown.push_back(i);
  if (shown.back() != depth - 1) shown.push_back(depth - 1);
  for (std::size_t i : shown) {
    os << fmt("%-5.0f", double(i));
    for (const auto& c : columns_) os << (i < c.grad_norms.size() ? fmt("  %9.3e", c.grad_norms[i]) : std::string(11, ' '));
    os << '\n';
  }
}

void RunSummary::print_csv(std::ostream& os) const {
  os << "configuration,n,median_log10_first_over_last,min,max,verdict,failed,nonfinite,overflowed,underflowed,"
        "predicted_log10_first_over_last,median_jacobian_log10_spread,median_test_loss_last_over_first,"
        "median_score,trained,did_not_train,diverged\n";
  for (const auto& g : groups_) {
    const Row r = row(g);
    auto num = [](double v) { return std::isnan(v) ? std::string() : fmt("%.17g", v); };
    os << csv_field(g.label) << ',' << r.n << ',' << num(r.median) << ',' << num(r.min) << ',' << num(r.max) << ','
       << r.verdict << ',' << g.failed << ',' << g.nonfinite << ',' << g.overflow_layers.size() << ','
       << g.underflow_layers.size() << ',' << num(r.predicted) << ',' << num(r.spread) << ','
       << num(median(g.loss_ratios)) << ',' << num(median(g.scores)) << ',';
    if (g.scores.empty()) os << ",,\n";
    else os << g.verdicts[v1::TRAINED] << ',' << g.verdicts[v1::DID_NOT_TRAIN] << ',' << g.verdicts[v1::DIVERGED] << '\n';
  }
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void write_layers_csv(std::ostream& os, TraceReader& reader) {
  const auto& sweep = reader.header().spec();
  const std::uint32_t replicas = std::max<std::uint32_t>(1, sweep.replicas());
  os << "index,replica";
  for (const auto& a : sweep.axis()) os << ',' << csv_field(a.path());
  os << ",status,layer,grad_norm,act_grad_norm,weight_grad_norm,bias_grad_norm,output_mean,output_variance,"
        "output_zero_fraction,output_nonfinite,grad_nonfinite,grad_zero_fraction,grad_subnormal,"
        "pre_activation_sq,predicted_q,predicted_grad_norm\n";
  auto num = [](double v) { return fmt("%.17g", v); };
  v1::SimTrace t;
  while (reader.next(t)) {
    std::ostringstream row;
    row << t.index() << ',' << t.index() % replicas;
    const auto idx = detail::axis_indices(sweep, t.index());
    for (int k = 0; k < sweep.axis_size(); ++k) row << ',' << csv_field(detail::value_text(sweep.axis(k), idx[k]));
    row << ',' << (t.status() == v1::SimTrace::OK ? "ok" : "failed");
    const std::string prefix = row.str();
    for (const auto& l : t.layers()) {
      const auto &o = l.output(), &g = l.grad();
      os << prefix << ',' << l.index() << ',' << num(l.grad_norm()) << ',' << num(l.act_grad_norm()) << ','
         << num(l.weight_grad_norm()) << ',' << num(l.bias_grad_norm()) << ',';
      if (l.has_output())
        os << num(o.mean()) << ',' << num(o.variance()) << ',' << num(o.zero_fraction()) << ',' << nonfinite(o) << ','
           << nonfinite(g) << ',' << num(g.zero_fraction()) << ',' << g.subnormal() << ',';
      else
        os << ",,,,,,,";  // detail NORMS: no statistics recorded
      os << num(l.pre_activation_sq()) << ',' << (l.has_predicted_q() ? num(l.predicted_q()) : "") << ','
         << (l.has_predicted_grad_norm() ? num(l.predicted_grad_norm()) : "") << '\n';
    }
    if (t.layers_size() == 0) os << prefix << ",,,,,,,,,,,,,,,\n";  // a failed simulation: one row, no numbers
  }
}

Progress::Progress(std::uint64_t total, std::uint64_t already_done, bool enabled)
    : total_(total), start_done_(already_done), enabled_(enabled), start_(Clock::now()), last_(start_) {}

void Progress::update(std::uint64_t done, std::uint64_t failed) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(200) && done != total_) return;
  last_ = now;
  draw(done, failed);
}

void Progress::draw(std::uint64_t done, std::uint64_t failed) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 ? double(done - start_done_) / elapsed : 0;
  const double eta = rate > 0 ? double(total_ - done) / rate : NAN;
  auto hms = [](double sec) {
    if (!std::isfinite(sec)) return std::string("?");
    const long s = long(sec + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    return std::string(buf);
  };
  std::fprintf(stderr, "\r\033[K%llu/%llu simulations  %.1f sims/s  elapsed %s  ETA %s  failed %llu",
               (unsigned long long)done, (unsigned long long)total_, rate, hms(elapsed).c_str(),
               hms(eta).c_str(), (unsigned long long)failed);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::finish() {
  if (enabled_ && drawn_) std::fputc('\n', stderr);
}

namespace {

std::string ordinal(std::uint64_t n) {
  const char* suffix = n % 100 / 10 == 1 ? "th" : n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
  return std::to_string(n) + suffix;
}

std::string nonfinite_kinds(const v1::TensorStats& s) {
  std::string out;
  for (auto [n, name] : {std::pair{s.pos_inf(), "+inf"}, {s.neg_inf(), "-inf"}, {s.nan(), "NaN"}})
    if (n) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

// The first places where numbers left the format, in the order they happened.
void print_events(std::ostream& os, const v1::SimTrace& t) {
  const std::uint64_t depth = t.layers_size() ? std::uint64_t(t.layers_size()) : t.spec().network().depth();
  auto from_output = [&](std::uint32_t i) { return ordinal(depth - i) + " from the output"; };
  // The block's statistics, where the record has them (not with detail NORMS or SUMMARY).
  auto stats = [&](std::uint32_t i, bool grad) -> const v1::TensorStats* {
    if (i >= std::uint32_t(t.layers_size())) return nullptr;
    const auto& l = t.layers(int(i));
    return grad ? (l.has_grad() ? &l.grad() : nullptr) : (l.has_output() ? &l.output() : nullptr);
  };
  if (t.has_forward_overflow_layer()) {
    const auto i = t.forward_overflow_layer();
    const auto* s = stats(i, false);
    os << "  layer " << i << ": forward output overflowed" << (s ? " to " + nonfinite_kinds(*s) : "") << '\n';
  }
  if (t.has_grad_overflow_layer()) {
    const auto i = t.grad_overflow_layer();
    const auto* s = stats(i, true);
    os << "  layer " << i << ": gradient overflowed" << (s ? " to " + nonfinite_kinds(*s) : "") << " ("
       << from_output(i) << ")\n";
  }
  if (t.has_grad_underflow_layer()) {
    const auto i = t.grad_underflow_layer();
    const auto* s = stats(i, true);
    os << "  layer " << i << ": gradient underflowed to 0 in all" << (s ? " " + std::to_string(s->count()) : "")
       << " values (" << from_output(i) << ")\n";
  }
  // Mitigation events, one line per kind: how often they fired, and the last one.
  std::vector<std::string> order;
  std::map<std::string, std::pair<int, int>> counts;
  std::map<std::string, const v1::MitigationEvent*> last;
  for (const auto& e : t.events()) {
    const std::string key = e.mitigation() + " " + e.what();
    if (!counts.count(key)) order.push_back(key);
    auto& c = counts[key];
    ++c.second, c.first += e.fired();
    if (e.fired()) last[key] = &e;
  }
  for (const auto& key : order) {
    os << "  " << key << ": fired " << counts[key].first << " of " << counts[key].second << " times";
    if (const auto* e = last[key])
      os << " (last: step " << e->step() << (e->layer() >= 0 ? ", layer " + std::to_string(e->layer()) : "")
         << ", " << fmt("%.4g", e->before()) << " -> " << fmt("%.4g", e->after()) << ")";
    os << '\n';
  }
}

// "128 s in [9.54e-06, 2.31], spread 5.38 (0 zero), E[s^2] 1.007, E[s^4] 2.473, 99% within 10x of 1; ..."
std::string spectrum_text(const v1::Spectrum& sp) {
  if (sp.method() == "krylov") {
    std::string top;
    for (int k = 0; k < std::min(4, sp.ritz_size()); ++k)
      top += (k ? ", " : "") + fmt("%.4g", sp.ritz(k)) + fmt(" +- %.1g", sp.ritz_bound(k));
    return "sample " + std::to_string(sp.sample()) + ": estimated (Krylov, " + std::to_string(sp.ritz_size()) +
           " Ritz values of " + std::to_string(sp.count()) + "): largest " + top + "; smallest Ritz value " +
           fmt("%.3g", sp.min()) + " (>= the smallest s), spread >= " + fmt("%.2f", sp.log10_spread()) + ", E[s^2] " +
           fmt("%.4g", sp.mean_sq()) + fmt(" +- %.2g", sp.mean_sq_error()) + ", E[s^4] " + fmt("%.4g", sp.mean_4()) +
           fmt(" +- %.2g", sp.mean_4_error());
  }
  std::string q;
  for (double v : sp.quantiles()) {
    if (!q.empty()) q += ' ';
    q += fmt("%.3g", v);
  }
  return "sample " + std::to_string(sp.sample()) + ": " + std::to_string(sp.count()) + " s in " +
         fmt("[%.3g, ", sp.min()) + fmt("%.3g]", sp.max()) + ", spread " + fmt("%.2f", sp.log10_spread()) + " (" +
         std::to_string(sp.zeros()) + " zero), E[s^2] " + fmt("%.4g", sp.mean_sq()) + ", E[s^4] " +
         fmt("%.4g", sp.mean_4()) + ", " + fmt("%.0f%%", 100 * sp.near_one()) + " within 10x of 1; quantiles 1%..99%: " + q;
}

double block_spread(const v1::LayerTrace& l) {
  std::vector<double> v;
  for (const auto& sp : l.jacobian())
    if (!std::isnan(sp.log10_spread())) v.push_back(sp.log10_spread());
  return median(v);
}

}  // namespace

void print_trace(std::ostream& os, const v1::SimTrace& t) {
  const auto& s = t.spec();
  const auto& rec = s.network().recurrent();
  os << "sim " << t.index() << "  " << s.label() << "  [" << status_text(t) << "]\n";
  if (const auto& tr = s.network().transformer(); s.network().has_transformer())
    os << "  " << s.network().depth() << " transformer blocks, " << v1::Transformer::Arrangement_Name(tr.arrangement())
       << " (width " << s.network().width() << ", " << tr.heads() << " heads" << (tr.causal() ? " causal" : "")
       << (tr.attention_only() ? ", attention only" : ", MLP " + std::to_string(tr.mlp_ratio()) + "x " +
                                                          s.network().activation().name())
       << "), sequences of " << tr.tokens() << " tokens";
  else if (rec.cell().name().empty())
    os << "  " << s.network().depth() << " x " << s.network().layer().name() << "(" << s.network().width() << ") + "
       << s.network().activation().name();
  else  // a recurrent network: its blocks are time steps
    os << "  " << s.network().depth() << " steps of " << rec.layers() << " x " << rec.cell().name() << "("
       << s.network().width() << ")" << (rec.cell().name() == "rnn" ? " + " + s.network().activation().name() : "")
       << ", x_t of " << rec.input_width() << ", loss reads " << v1::Recurrent::Read_Name(rec.read());
  const auto& task = s.train().task();
  os << ", init " << s.init().name()
     << (task.kind() == v1::Task::KIND_UNSPECIFIED ? ", loss " + s.loss().name()
                                                    : ", task " + v1::Task::Kind_Name(task.kind()) + "(" +
                                                          std::to_string(task.outputs()) + ")")
     << ", batch " << s.batch() << ", " << v1::DType_Name(s.dtype()) << ", seed "
     << s.seed();
  for (const auto& m : s.mitigations()) os << ", " << m.name();
  os << '\n';
  if (t.status() != v1::SimTrace::OK) return;
  os << "  loss " << fmt("%.6g", t.loss()) << ", |dL/dx| " << fmt("%.3e", t.input_grad_norm()) << '\n';
  if (s.detail() == v1::SUMMARY)
    os << "  |dL/dh| at layer 0 " << fmt("%.3e", t.first_grad_norm()) << ", at the last layer "
       << fmt("%.3e", t.last_grad_norm()) << ": log10(first/last) "
       << fmt("%+.3f", log10_first_over_last({t.first_grad_norm(), t.last_grad_norm()}))
       << (t.prediction().none().empty() ? fmt(", theory %+.3f", t.prediction().log10_first_over_last()) +
                                               fmt(" +- %.2f", t.prediction().log10_spread())
                                         : std::string())
       << " (written with detail SUMMARY: no per-layer records)\n";
  const auto& p = t.prediction();
  const bool theory = p.none().empty() && t.layers_size();
  const bool stats = s.detail() != v1::NORMS && s.detail() != v1::SUMMARY;  // files before detail: full
  if (theory) {
    std::vector<double> norms;
    for (const auto& l : t.layers()) norms.push_back(l.grad_norm());
    os << "  theory: log10(|dL/dh| first/last) predicted " << fmt("%+.3f", p.log10_first_over_last())
       << fmt(" +- %.2f", p.log10_spread()) << " at this width, measured "
       << fmt("%+.3f", log10_first_over_last(norms)) << " (mean field, sigma_w2 " << fmt("%.6g", p.sigma_w2())
       << ", sigma_b2 " << fmt("%.6g", p.sigma_b2())
       << (p.has_xi_c() ? ", xi_c " + fmt("%.4g", p.xi_c()) : std::string()) << "); q = E[h^2] and |dL/dh| predicted beside the measured, |dL/dh| anchored at the last layer\n";
    if (p.log10_spread() > 1)
      os << "  theory: this network is deep for its width (spread > 1 decade): theory gives E|dL/dh|^2, "
            "which a typical simulation falls far short of (Hanin 2018)\n";
  } else if (!p.none().empty()) {
    os << "  theory: no prediction: " << p.none() << '\n';
  }
  for (const auto& sp : t.jacobian()) os << "  jacobian: " << spectrum_text(sp) << '\n';
  if (t.jacobian_size())
    os << "  jacobian: dy/dx at an input row; s: its singular values (float64, from the format's values), "
          "spread = log10(max / smallest non-zero)\n";
  print_events(os, t);
  const bool per_block = t.layers_size() && t.layers(0).jacobian_size();
  if (t.layers_size() && t.layers(0).has_rank_collapse()) {
    os << "  transformer sub-layers (" << (s.network().transformer().attention_only() ? "attention" : "2l: attention, 2l+1: MLP")
       << "): rank collapse ||X - mean token|| / ||X|| of the output, attention entropy (nats; uniform ln "
       << s.network().transformer().tokens() << " = " << fmt("%.3g", std::log(double(s.network().transformer().tokens())))
       << ")\n  block  rank       entropy\n";
    for (const auto& l : t.layers()) {
      double entropy = NAN;
      for (const auto& m : l.measures())
        if (m.name() == "attention_entropy") entropy = m.value();
      os << fmt("  %-5.0f", double(l.index())) << fmt("  %-9.3g", l.rank_collapse())
         << (std::isnan(entropy) ? "  -" : fmt("  %.3g", entropy)) << '\n';
    }
  }
  if (t.layers_size()) os << "  layer  |dL/dh|    " << (theory ? "predicted  " : "") << "|dL/da|    |dL/dW|    |dL/db|    "
     << (theory ? "q          predicted  " : "") << (per_block ? "J spread  " : "")
     << (stats ? "out.mean   out.var    out.zero  nonfinite(out/grad)  grad zero/subnormal" : "(detail NORMS: no statistics)")
     << '\n';
  for (const auto& l : t.layers())
    os << fmt("  %-5.0f", double(l.index())) << fmt("  %9.3e", l.grad_norm())
       << (!theory ? "" : l.has_predicted_grad_norm() ? fmt("  %9.3e", l.predicted_grad_norm()) : "  -        ")
       << fmt("  %9.3e", l.act_grad_norm()) << fmt("  %9.3e", l.weight_grad_norm())
       << fmt("  %9.3e", l.bias_grad_norm())
       << (theory ? fmt("  %9.3e", l.pre_activation_sq()) + fmt("  %9.3e", l.predicted_q()) : "")
       << (per_block ? fmt("  %8.2f", block_spread(l)) : "")
       << (!stats ? std::string()
                  : fmt("  %+9.2e", l.output().mean()) + fmt("  %9.3e", l.output().variance()) +
                        fmt("  %8.3f", l.output().zero_fraction()) + fmt("  %9.0f", double(nonfinite(l.output()))) +
                        "/" + fmt("%-9.0f", double(nonfinite(l.grad()))) +
                        fmt("  %9.0f", double(l.grad().zero_fraction() * double(l.grad().count()) + 0.5)) + "/" +
                        std::to_string(l.grad().subnormal()))
       << '\n';
  if (t.evaluations_size()) {
    const bool acc = t.evaluations(0).has_test_accuracy();
    os << "  " << t.steps_size() << " steps of " << s.train().optimizer().name() << "; held-out evaluations (score = "
       << "held-out loss / the trivial predictor's; update = largest |update|/|weights| of a block):\n"
       << "  step  lr          train loss  test loss   score     " << (acc ? "train acc  test acc  " : "")
       << "|dL/dh| first  last       update     nonfinite  skipped\n";
    for (const auto& e : t.evaluations()) {
      double update = 0;
      for (double r : e.update_ratio()) update = std::max(update, r);
      os << fmt("  %-4.0f", double(e.step())) << fmt("  %-10.4g", e.lr()) << fmt("  %-10.4g", e.train_loss())
         << fmt("  %-10.4g", e.test_loss()) << fmt("  %-8.4g", e.score())
         << (acc ? fmt("  %-9.3f", e.train_accuracy()) + fmt("  %-8.3f", e.test_accuracy()) : "")
         << (e.grad_norm_size() ? fmt("  %-13.4g", e.grad_norm(0)) + fmt("  %-9.4g", e.grad_norm(e.grad_norm_size() - 1))
                                : std::string(26, ' '))
         << (e.update_ratio_size() ? fmt("  %-9.3g", update) : "  -        ") << fmt("  %-9.0f", double(e.nonfinite()))
         << fmt("  %.0f", double(e.skipped())) << '\n';
    }
    os << "  verdict: " << v1::Verdict_Name(t.verdict()) << " (trained: last score <= "
       << fmt("%g", s.train().trained_below()) << "; diverged: an inf or NaN held-out loss or weight)\n";
  } else if (t.steps_size()) {
    os << "  step  loss        |dL/dparams|  |dL/dh| first  last       loss scale  overflow  skipped\n";
    for (const auto& st : t.steps())
      os << fmt("  %-4.0f", double(st.step())) << fmt("  %-10.4g", st.loss()) << fmt("  %-12.4g", st.param_grad_norm())
         << fmt("  %-13.4g", st.first_grad_norm()) << fmt("  %-9.4g", st.last_grad_norm())
         << fmt("  %-10.4g", st.loss_scale()) << (st.overflow() ? "  yes     " : "  no      ")
         << (st.skipped() ? "  yes" : "  no") << '\n';
  }
}

}  // namespace gradsim
