// `gradsim theory`: mean-field numbers for activations x sigma_w2 x sigma_b2 (from flags or
// from a spec's configurations), as a table or as JSON.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "plugin/registry.hpp"
#include "spec/spec.hpp"

namespace gradsim::theory {

struct TableArgs {
  std::vector<std::string> activations;     ///< default: every elementwise activation found
  std::vector<double> weight_vars{1, 2};    ///< sigma_w2
  std::vector<double> bias_vars{0};         ///< sigma_b2
  double input_var = 1;                     ///< q0
  bool critical = false;                    ///< find sigma_w2 with chi_1 = 1 instead
  std::size_t batch_norm = 0;               ///< > 0: batch norm's growth at this batch, too
  bool json = false;
};

/// The table for the flags' grid. Throws Error for an unknown or non-elementwise activation.
void print_grid(std::ostream& os, const Registry& registry, const TableArgs& args);

/// The table for each configuration of a spec (replicas pooled): the activation, sigma_w2 and
/// sigma_b2 of its hidden layers, its input variance, and the network's predicted
/// log10(|dL/dh| first/last), or why theory has none.
void print_spec(std::ostream& os, const Registry& registry, const SpecFile& spec, bool json);

}  // namespace gradsim::theory
