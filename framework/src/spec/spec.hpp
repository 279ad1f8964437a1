// Specs: parsing a spec file (text format or JSON), expanding a sweep into simulations, and
// resolving a simulation against the registry (defaults filled in, every value checked).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <utility>
#include <string>

#include "gradsim.pb.h"
#include "plugin/registry.hpp"

namespace gradsim {

/// The largest spec file read (a spec is a few kilobytes).
inline constexpr std::size_t kMaxSpecBytes = std::size_t(16) << 20;
/// The most simulations a sweep may have unless the user raises it (--max-sims): validation
/// expands every one (about 20 microseconds each) before anything runs.
inline constexpr std::uint64_t kDefaultMaxSims = 10'000'000;

/// A parsed spec and where each of its fields was written.
struct SpecFile {
  std::string source;  ///< the file name, for messages
  v1::SweepSpec sweep;
  std::shared_ptr<void> locations;  ///< text format's ParseInfoTree; null for JSON
};

/// Parses text format (JSON if the name ends in .json). Throws Error "file:line:col: error: ...".
SpecFile parse_spec(const std::string& text, const std::string& source);
SpecFile read_spec(const std::filesystem::path& file);

/// A mistake in one field of a simulation spec; `path` names the field as an axis would
/// ("network.depth", "init.params.gain").
class SpecError : public std::runtime_error {
 public:
  SpecError(std::string path, const std::string& what)
      : std::runtime_error(what), path(std::move(path)) {}
  std::string path;
};

/// Number of simulations: product of the axis lengths, times replicas. Throws SpecError if it
/// does not fit in 64 bits.
std::uint64_t sim_count(const v1::SweepSpec& sweep);

/// The seed of replica `replica` of a sweep.
std::uint64_t sim_seed(std::uint64_t sweep_seed, std::uint64_t replica);

/// Simulation `index` of the sweep (axes vary last-fastest, replicas fastest of all), with
/// its seed set: sim_seed(sweep seed, index % replicas), so it depends on the sweep seed and
/// the index only, and every configuration of one replica shares its random draws.
/// Throws SpecError (path "axis[k]...") for a bad axis.
v1::SimSpec sim_at(const v1::SweepSpec& sweep, std::uint64_t index);
/// The same, written into `out` (in place: a record's spec in its arena is not copied twice).
void sim_at(const v1::SweepSpec& sweep, std::uint64_t index, v1::SimSpec& out);

/// Sets `path` of `sim` to a number or a text. Throws SpecError naming what is wrong.
void set_field(v1::SimSpec& sim, const std::string& path, double number, const std::string* text);

/// Fills every default and checks every value against the plugins' declarations.
/// Throws SpecError.
void resolve(v1::SimSpec& sim, const Registry& registry);

/// What validate() found: the number of simulations and every plugin they use.
struct Validation {
  std::uint64_t count = 0;
  std::uint64_t max_sim_bytes = 0;  ///< the largest estimate of one simulation's memory
  std::set<std::pair<Kind, std::string>> plugins;
};

/// Expands and resolves every simulation and calls `build` once per distinct configuration
/// (not per replica, seed or dtype; build throws SpecError for a field it cannot build). The
/// first problem becomes an Error located at the line and column that caused it
/// ("sims/x.textproto:12:7: error: ..."). run/validate.hpp passes the network builder.
Validation validate_with(const SpecFile& spec, const Registry& registry,
                         const std::function<void(const v1::SimSpec&)>& build,
                         std::uint64_t max_sims = kDefaultMaxSims);

}  // namespace gradsim

namespace gradsim {
/// A TEACHER task's simulation, from a resolved spec: its network (train.task.teacher, what it
/// leaves out the student's), its initialiser, the student's input and batch, float64, and a
/// seed of its own.
v1::SimSpec teacher_spec(const v1::SimSpec& sim);
/// Where an error in the teacher's spec is in the student's ("network.width" ->
/// "train.task.teacher.width").
std::string teacher_path(const std::string& path);

/// The Params a plugin is built from (the PluginRef must be resolved).
Params params_of(const v1::PluginRef& ref);

namespace detail {  // shared by the spec sources
std::vector<std::string> split(const std::string& s, char sep);
/// 4294967295 rather than 4.29497e+09; 1.41421 rather than 1.4142135623730951.
std::string format_number(double v);
/// "name[12]" -> 12 in `index`; false unless the brackets hold only digits and end the name.
bool parse_index(const std::string& name, int& index);
/// Which value of each axis simulation `index` takes.
std::vector<int> axis_indices(const v1::SweepSpec& sweep, std::uint64_t index);
/// Value j of an axis as text ("tanh", "1.41421", "(off)" for an empty text).
std::string value_text(const v1::Axis& a, int j);
/// The configuration of simulation `index`: "path=value" for each axis, space-separated
/// ("" without axes). Replicas of one configuration share it.
std::string configuration_text(const v1::SweepSpec& sweep, std::uint64_t index);
/// Where value j of axis k is written ("axis[k].numbers[j]"), for messages.
std::string value_path(const v1::Axis& a, int k, int j);
}  // namespace detail
}  // namespace gradsim
