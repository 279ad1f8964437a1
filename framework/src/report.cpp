#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace gradsim {

namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string status_text(const v1::SimTrace& t) {
  return t.status() == v1::SimTrace::OK ? "ok" : "FAILED: " + t.message();
}

std::uint64_t nonfinite(const v1::TensorStats& s) { return s.nan() + s.pos_inf() + s.neg_inf(); }

}  // namespace

double log10_first_over_last(const std::vector<double>& g) {
  return g.empty() ? NAN : std::log10(g.front() / g.back());
}

void RunSummary::add(const v1::SimTrace& t) {
  Row r{t.index(), t.spec().label(), status_text(t), {}, ""};
  for (const auto& l : t.layers()) r.grad_norms.push_back(l.grad_norm());
  if (t.has_grad_overflow_layer()) r.flags += " grad overflow@" + std::to_string(t.grad_overflow_layer());
  if (t.has_grad_underflow_layer()) r.flags += " grad underflow@" + std::to_string(t.grad_underflow_layer());
  rows_.push_back(std::move(r));
}

void RunSummary::print(std::ostream& os, std::size_t max_columns) const {
  os << "sim  log10(|dL/dh| first/last)  status  label\n";
  for (const auto& r : rows_)
    os << fmt("%-4.0f ", double(r.index)) << fmt("%+25.2f", log10_first_over_last(r.grad_norms))
       << "  " << r.status << r.flags << "  " << r.label << '\n';
  std::size_t depth = 0;
  for (const auto& r : rows_) depth = std::max(depth, r.grad_norms.size());
  if (depth == 0) return;
  const std::size_t cols = std::min(max_columns, rows_.size());
  os << "\n|dL/dh| by layer (layer 0 is next to the input; gradients flow from the last)\nlayer";
  for (std::size_t c = 0; c < cols; ++c) os << fmt("   sim %-4.0f", double(rows_[c].index));
  os << '\n';
  const std::size_t step = std::max<std::size_t>(1, (depth + 9) / 10);
  std::vector<std::size_t> shown;
  for (std::size_t i = 0; i < depth; i += step) shown.push_back(i);
  if (shown.back() != depth - 1) shown.push_back(depth - 1);
  for (std::size_t i : shown) {
    os << fmt("%-5.0f", double(i));
    for (std::size_t c = 0; c < cols; ++c) {
      const auto& g = rows_[c].grad_norms;
      os << (i < g.size() ? fmt("  %9.3e", g[i]) : std::string(11, ' '));
    }
    os << '\n';
  }
  if (cols < rows_.size())
    os << "(" << rows_.size() - cols << " more simulations: see `gradsim inspect`)\n";
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
  const std::uint64_t depth = std::uint64_t(t.layers_size());
  auto from_output = [&](std::uint32_t i) { return ordinal(depth - i) + " from the output"; };
  if (t.has_forward_overflow_layer()) {
    const auto i = t.forward_overflow_layer();
    os << "  layer " << i << ": forward output overflowed to " << nonfinite_kinds(t.layers(int(i)).output()) << '\n';
  }
  if (t.has_grad_overflow_layer()) {
    const auto i = t.grad_overflow_layer();
    os << "  layer " << i << ": gradient overflowed to " << nonfinite_kinds(t.layers(int(i)).grad()) << " ("
       << from_output(i) << ")\n";
  }
  if (t.has_grad_underflow_layer()) {
    const auto i = t.grad_underflow_layer();
    os << "  layer " << i << ": gradient underflowed to 0 in all " << t.layers(int(i)).grad().count() << " values ("
       << from_output(i) << ")\n";
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

}  // namespace

void print_trace(std::ostream& os, const v1::SimTrace& t) {
  const auto& s = t.spec();
  os << "sim " << t.index() << "  " << s.label() << "  [" << status_text(t) << "]\n"
     << "  " << s.network().depth() << " x " << s.network().layer().name() << "(" << s.network().width()
     << ") + " << s.network().activation().name() << ", init " << s.init().name() << ", loss "
     << s.loss().name() << ", batch " << s.batch() << ", " << v1::DType_Name(s.dtype()) << ", seed "
     << s.seed();
  for (const auto& m : s.mitigations()) os << ", " << m.name();
  os << '\n';
  if (t.status() != v1::SimTrace::OK) return;
  os << "  loss " << fmt("%.6g", t.loss()) << ", |dL/dx| " << fmt("%.3e", t.input_grad_norm()) << '\n';
  print_events(os, t);
  os << "  layer  |dL/dh|    |dL/da|    |dL/dW|    |dL/db|    out.mean   out.var    out.zero  "
        "nonfinite(out/grad)  grad zero/subnormal\n";
  for (const auto& l : t.layers())
    os << fmt("  %-5.0f", double(l.index())) << fmt("  %9.3e", l.grad_norm())
       << fmt("  %9.3e", l.act_grad_norm()) << fmt("  %9.3e", l.weight_grad_norm())
       << fmt("  %9.3e", l.bias_grad_norm()) << fmt("  %+9.2e", l.output().mean())
       << fmt("  %9.3e", l.output().variance()) << fmt("  %8.3f", l.output().zero_fraction())
       << fmt("  %9.0f", double(nonfinite(l.output()))) << "/" << fmt("%-9.0f", double(nonfinite(l.grad())))
       << fmt("  %9.0f", double(l.grad().zero_fraction() * double(l.grad().count()) + 0.5)) << "/"
       << l.grad().subnormal() << '\n';
  if (t.steps_size()) {
    os << "  step  loss        |dL/dparams|  |dL/dh| first  last       loss scale  overflow  skipped\n";
    for (const auto& st : t.steps())
      os << fmt("  %-4.0f", double(st.step())) << fmt("  %-10.4g", st.loss()) << fmt("  %-12.4g", st.param_grad_norm())
         << fmt("  %-13.4g", st.first_grad_norm()) << fmt("  %-9.4g", st.last_grad_norm())
         << fmt("  %-10.4g", st.loss_scale()) << (st.overflow() ? "  yes     " : "  no      ")
         << (st.skipped() ? "  yes" : "  no") << '\n';
  }
}

}  // namespace gradsim
