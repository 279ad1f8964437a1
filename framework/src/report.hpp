// Human-readable tables: the summary `gradsim run` prints, and `gradsim inspect`'s view.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "gradsim.pb.h"

namespace gradsim {

/// Collects what the end-of-run summary needs from each trace (a few numbers per layer, not
/// the whole trace), then prints it.
class RunSummary {
 public:
  void add(const v1::SimTrace& t);
  /// One line per simulation, then a table of ||dL/dh|| by layer for up to `max_columns` sims.
  void print(std::ostream& os, std::size_t max_columns = 6) const;

 private:
  struct Row {
    std::uint64_t index;
    std::string label, status;
    std::vector<double> grad_norms;
    std::string flags;  // where the gradient overflowed or underflowed, if it did
  };
  std::vector<Row> rows_;
};

/// log10(||dL/dh|| at the first block / at the last block): < 0 vanishing, > 0 exploding.
double log10_first_over_last(const std::vector<double>& grad_norms);

/// `gradsim inspect`: one simulation, every layer.
void print_trace(std::ostream& os, const v1::SimTrace& t);

}  // namespace gradsim
