// Human-readable output: the summary `gradsim run` prints, its live progress line, and
// `gradsim inspect`'s view of one simulation.
#pragma once

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "gradsim.pb.h"

namespace gradsim {

/// log10(||dL/dh|| at the first block / at the last block): < 0 vanishing, > 0 exploding.
double log10_first_over_last(const std::vector<double>& grad_norms);

/// "vanishing" if median < -band, "exploding" if median > band, "stable" otherwise
/// ("non-finite" for NaN). band = 1 means a factor of 10 over the whole depth.
std::string verdict(double median_log_ratio, double band);

/// The end-of-run summary, grouped by configuration: the values the sweep's axes give a
/// simulation (never its label), replicas pooled. Keeps one number per simulation plus the
/// per-layer norms of the first few, not whole traces.
class RunSummary {
 public:
  explicit RunSummary(const v1::SweepSpec& sweep, double stable_band = 1.0, std::size_t layer_columns = 6)
      : sweep_(sweep), band_(stable_band), columns_max_(layer_columns) {}
  void add(const v1::SimTrace& t);
  /// One line per configuration: n, median and range of log10(first/last) over the finite
  /// ones, theory's value, the Jacobian's spread (with `jacobian`), verdict; with a training
  /// task, a second table: held-out loss last / first, score and the training verdicts; then
  /// ||dL/dh|| by layer for the first simulations.
  void print(std::ostream& os) const;
  /// The same per-configuration numbers as CSV, one row per configuration.
  void print_csv(std::ostream& os) const;

 private:
  struct Group {
    std::string label;
    std::vector<double> ratios;  // finite log-ratios of the simulations that ran
    std::uint64_t nonfinite = 0;  // simulations whose log-ratio is inf or NaN
    std::uint64_t failed = 0;
    std::vector<std::uint32_t> overflow_layers, underflow_layers;  // where dL/dh left the format
    std::vector<double> predicted;  // theory's log-ratio, of the simulations it covers
    std::vector<double> spreads;    // log10 max/min singular value of dy/dx, every sample
    // With train.task: held-out loss last / first evaluation, the last score, the verdicts.
    std::vector<double> loss_ratios, scores;
    std::uint64_t verdicts[4] = {0, 0, 0, 0};  // indexed by v1::Verdict
  };
  struct Column {
    std::uint64_t index;
    std::vector<double> grad_norms;
  };
  struct Row {  // one configuration's numbers, for print and print_csv
    std::uint64_t n;
    double median, min, max;
    double predicted;  // NaN: no prediction
    double spread;     // median log10 max/min singular value of dy/dx; NaN: not asked for
    std::string verdict;
  };
  Row row(const Group& g) const;
  v1::SweepSpec sweep_;
  double band_;
  std::size_t columns_max_;
  std::vector<Group> groups_;
  std::map<std::string, std::size_t> group_of_;
  std::vector<Column> columns_;
};

/// The live progress line on stderr: done/total, simulations per second, elapsed, ETA,
/// failures. Redrawn at most 5 times a second; nothing at all when disabled.
class Progress {
 public:
  Progress(std::uint64_t total, std::uint64_t already_done, bool enabled);
  void update(std::uint64_t done, std::uint64_t failed);
  /// Ends the line (leaves the last state visible).
  void finish();

 private:
  void draw(std::uint64_t done, std::uint64_t failed);
  using Clock = std::chrono::steady_clock;
  std::uint64_t total_, start_done_;
  bool enabled_, drawn_ = false;
  Clock::time_point start_, last_;
};

class TraceReader;
/// Every layer of every simulation in `reader`, one CSV row each (long format): index,
/// replica, one column per axis (named by its path), status, layer, and the layer's numbers
/// (%.17g: they read back exactly).
void write_layers_csv(std::ostream& os, TraceReader& reader);

/// A CSV field: as is, or quoted (with "" for ") when it holds a comma, quote or newline.
std::string csv_field(const std::string& s);
/// `s` as a JSON string, quoted, with `"`, `\` and control characters escaped.
std::string json_quote(const std::string& s);

/// The median of `v` (NaN if empty).
double median(std::vector<double> v);

/// `gradsim inspect`: one simulation, every layer, its events and training steps.
void print_trace(std::ostream& os, const v1::SimTrace& t);

}  // namespace gradsim
