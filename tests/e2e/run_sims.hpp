// Running a sweep in-process for the tests that check what simulations show: the traces of a
// spec (shipped, or written in the test), each simulation's log-ratio, and the replicas of each
// configuration grouped together.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "../common.hpp"
#include "io/report.hpp"
#include "run/sweep.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"

namespace gradsim::test {

/// Every simulation of a parsed spec, in order; each must have run (status OK).
inline std::vector<v1::SimTrace> run_spec(const SpecFile& spec) {
  const auto v = validate(spec, builtins());
  std::vector<v1::SimTrace> out;
  run_sweep(spec, builtins(), v.count, SweepOptions{}, [&](const v1::SimTrace& t) { out.push_back(t); });
  for (const auto& t : out) EXPECT_EQ(t.status(), v1::SimTrace::OK) << spec.source << ": " << t.message();
  return out;
}

/// A spec shipped in sims/, by file name.
inline std::vector<v1::SimTrace> run_sim(const std::string& name) {
  return run_spec(read_spec(std::string(GRADSIM_SIMS_DIR) + "/" + name));
}

/// A spec written in the test, in text format.
inline std::vector<v1::SimTrace> run_text(const std::string& text) { return run_spec(parse_spec(text, "test.textproto")); }

/// log10(|dL/dh| at the first block / at the last).
inline double log_ratio(const v1::SimTrace& t) {
  std::vector<double> g;
  for (const auto& l : t.layers()) g.push_back(l.grad_norm());
  return log10_first_over_last(g);
}

/// Grouped by label (the axis values); replicas of a point share its label.
inline std::map<std::string, std::vector<const v1::SimTrace*>> by_label(const std::vector<v1::SimTrace>& ts) {
  std::map<std::string, std::vector<const v1::SimTrace*>> out;
  for (const auto& t : ts) out[t.spec().label()].push_back(&t);
  return out;
}

}  // namespace gradsim::test
