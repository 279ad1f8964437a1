#include "report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

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
  Row r{t.index(), t.spec().label(), status_text(t), {}};
  for (const auto& l : t.layers()) r.grad_norms.push_back(l.grad_norm());
  rows_.push_back(std::move(r));
}

void RunSummary::print(std::ostream& os, std::size_t max_columns) const {
  os << "sim  log10(|dL/dh| first/last)  status  label\n";
  for (const auto& r : rows_)
    os << fmt("%-4.0f ", double(r.index)) << fmt("%+25.2f", log10_first_over_last(r.grad_norms))
       << "  " << r.status << "  " << r.label << '\n';
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

void print_trace(std::ostream& os, const v1::SimTrace& t) {
  const auto& s = t.spec();
  os << "sim " << t.index() << "  " << s.label() << "  [" << status_text(t) << "]\n"
     << "  " << s.network().depth() << " x " << s.network().layer().name() << "(" << s.network().width()
     << ") + " << s.network().activation().name() << ", init " << s.init().name() << ", loss "
     << s.loss().name() << ", batch " << s.batch() << ", " << v1::DType_Name(s.dtype()) << ", seed "
     << s.seed() << '\n';
  if (t.status() != v1::SimTrace::OK) return;
  os << "  loss " << fmt("%.6g", t.loss()) << ", |dL/dx| " << fmt("%.3e", t.input_grad_norm()) << '\n'
     << "  layer  |dL/dh|    |dL/da|    |dL/dW|    |dL/db|    out.mean   out.var    out.zero  nonfinite out/grad\n";
  for (const auto& l : t.layers())
    os << fmt("  %-5.0f", double(l.index())) << fmt("  %9.3e", l.grad_norm())
       << fmt("  %9.3e", l.act_grad_norm()) << fmt("  %9.3e", l.weight_grad_norm())
       << fmt("  %9.3e", l.bias_grad_norm()) << fmt("  %+9.2e", l.output().mean())
       << fmt("  %9.3e", l.output().variance()) << fmt("  %8.3f", l.output().zero_fraction())
       << "  " << nonfinite(l.output()) << "/" << nonfinite(l.grad()) << '\n';
}

}  // namespace gradsim
