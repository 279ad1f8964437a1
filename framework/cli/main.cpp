// The gradsim command line: run | validate | plugins | gradcheck | inspect | merge.
#include <CLI/CLI.hpp>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "check/gradcheck.hpp"
#include "error.hpp"
#include "plugin/registry.hpp"
#include "io/report.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"
#include "run/sweep.hpp"
#include "io/trace_io.hpp"

namespace fs = std::filesystem;
using namespace gradsim;

namespace {

constexpr const char* kDefaultSpec = "default.textproto";

// Errors that already say where ("file:line:col: error: ...") print as they are.
int report_error(const std::string& what) {
  if (what.find(": error: ") != std::string::npos) std::cerr << what << '\n';
  else std::cerr << "gradsim: error: " << what << '\n';
  return 1;
}

// Loads the plugins of --plugin-dir, $GRADSIM_PLUGIN_PATH and the built-in directory;
// prints every failure; throws if any.
Registry load_plugins(const std::vector<std::string>& dirs) {
  std::vector<fs::path> paths(dirs.begin(), dirs.end());
  for (auto& p : default_plugin_paths()) paths.push_back(p);
  Registry registry;
  const auto failures = registry.load(paths);
  for (std::size_t i = 0; i + 1 < failures.size(); ++i) report_error(failures[i]);
  if (!failures.empty()) throw Error(failures.back());
  if (registry.entries().empty())
    throw Error("no plugins found (searched " + default_plugin_dir().string() +
                "); pass --plugin-dir DIR or set GRADSIM_PLUGIN_PATH");
  return registry;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return '"' + out + '"';
}

std::string default_text(const ParamDecl& d) {
  switch (d.type) {
    case ParamType::choice: return d.default_text;
    case ParamType::boolean: return d.default_number ? "true" : "false";
    default: {
      std::ostringstream s;
      s << d.default_number;
      return s.str();
    }
  }
}

std::string range_text(const ParamDecl& d) {
  if (d.type == ParamType::boolean) return "true|false";
  if (d.type == ParamType::choice) {
    std::string s;
    for (const auto& c : d.choices) s += (s.empty() ? "" : "|") + c;
    return s;
  }
  std::ostringstream s;
  s << "[" << d.min << ", " << d.max << "]";
  return s.str();
}

const char* type_text(ParamType t) {
  constexpr const char* names[] = {"real", "integer", "boolean", "choice"};
  return names[int(t)];
}

void list_plugins(const Registry& registry, bool json) {
  if (json) {
    std::cout << "[";
    bool first = true;
    for (const auto& e : registry.entries()) {
      const auto& p = *e.info;
      std::cout << (first ? "\n" : ",\n") << "  {\"kind\": " << json_escape(kind_name(p.kind))
                << ", \"name\": " << json_escape(p.name) << ", \"version\": " << json_escape(p.version)
                << ", \"library\": " << json_escape(e.library->file.string())
                << ", \"help\": " << json_escape(p.help) << ", \"params\": [";
      for (std::size_t i = 0; i < p.params.size(); ++i) {
        const auto& d = p.params[i];
        std::cout << (i ? ", " : "") << "{\"name\": " << json_escape(d.name)
                  << ", \"type\": " << json_escape(type_text(d.type))
                  << ", \"default\": " << json_escape(default_text(d))
                  << ", \"range\": " << json_escape(range_text(d)) << ", \"help\": " << json_escape(d.help) << "}";
      }
      std::cout << "]}";
      first = false;
    }
    std::cout << "\n]\n";
    return;
  }
  for (const auto& e : registry.entries()) {
    const auto& p = *e.info;
    std::cout << kind_name(p.kind) << " " << p.name << "  (" << e.library->file.filename().string()
              << " " << p.version << ")  " << p.help << '\n';
    for (const auto& d : p.params)
      std::cout << "    " << d.name << ": " << type_text(d.type) << " = " << default_text(d) << "  in "
                << range_text(d) << "  " << d.help << '\n';
  }
}

// Checks the named plugins (every plugin found if none is named), three seeds each; prints
// one line per plugin. Returns 1 if any check fails.
int gradcheck(const Registry& registry, const std::vector<std::string>& names) {
  std::vector<Registry::Entry> chosen;
  for (const auto& name : names) {
    std::size_t found = 0;
    for (const auto& e : registry.entries())
      if (e.info->name == name) chosen.push_back(e), ++found;
    if (!found) {
      std::string close;
      for (Kind k : {Kind::layer, Kind::activation, Kind::initializer, Kind::loss, Kind::mitigation})
        for (const auto& c : registry.suggest(k, name)) close += (close.empty() ? "" : ", ") + ('"' + c + '"');
      throw Error("no plugin named \"" + name + "\"" + (close.empty() ? "" : " (did you mean " + close + "?)") +
                  "; `gradsim plugins` lists the plugins found");
    }
  }
  if (names.empty()) chosen = registry.entries();
  int failed = 0;
  for (const auto& e : chosen) {
    std::vector<CheckResult> results;
    std::string error;
    try {
      for (std::uint64_t seed : {1, 2, 3})
        for (auto& r : check_plugin(*e.info, registry, seed)) results.push_back(r);
    } catch (const std::exception& ex) {
      error = ex.what();
    }
    // The worst result of each quantity over the seeds.
    std::vector<CheckResult> worst;
    for (const auto& r : results) {
      auto it = std::find_if(worst.begin(), worst.end(), [&](const auto& w) { return w.what == r.what; });
      if (it == worst.end()) worst.push_back(r);
      else if (!(it->error >= r.error)) *it = r;
    }
    const bool ok = error.empty() && !worst.empty() &&
                    std::all_of(worst.begin(), worst.end(), [](const auto& r) { return r.pass(); });
    failed += !ok;
    std::cout << (ok ? "ok    " : "FAIL  ") << kind_name(e.info->kind) << " " << e.info->name << "  ("
              << e.library->file.filename().string() << ")";
    if (ok) std::cout << "  " << worst.size() << " checks x 3 seeds";
    std::cout << '\n';
    if (!error.empty()) std::cout << "        error: " << error << '\n';
    if (error.empty() && worst.empty()) std::cout << "        nothing to check\n";
    for (const auto& r : worst)
      if (!ok)
        std::cout << "        " << (r.pass() ? "ok    " : "FAIL  ") << r.what << ": " << r.error << " (tolerance "
                  << r.tolerance << ")\n";
  }
  std::cout << chosen.size() - std::size_t(failed) << " of " << chosen.size() << " plugins pass";
  if (failed) std::cout << "; gradients are compared with central differences in float64 (relative error), "
                           "initialisers with their declared variances";
  std::cout << '\n';
  return failed ? 1 : 0;
}

fs::path spec_or_default(const std::string& spec) {
  return spec.empty() ? default_sims_dir() / kDefaultSpec : fs::path(spec);
}

// Ctrl-C: stop taking new simulations, let the ones in flight finish and be written. A
// second Ctrl-C kills at once (the handler restores the default).
std::atomic<bool> g_stop{false};
extern "C" void on_interrupt(int) {
  g_stop = true;
  std::signal(SIGINT, SIG_DFL);
}

struct RunArgs {
  std::vector<std::string> plugin_dirs;
  std::string spec, output = "traces.pb", shard;
  int threads = 0;
  bool quiet = false, resume = false, progress = false;
  double stable_band = 1.0;
};

// "i/N" -> (i, N).
std::pair<std::uint32_t, std::uint32_t> parse_shard(const std::string& text) {
  unsigned i = 0, n = 0;
  char slash = 0;
  std::istringstream in(text);
  if (!(in >> i >> slash >> n) || slash != '/' || n == 0 || i >= n || !in.eof())
    throw Error("--shard " + text + ": expected i/N with 0 <= i < N, e.g. --shard 0/4");
  return {i, n};
}

int run(const Registry& registry, const RunArgs& a) {
  const auto [shard_index, shard_count] = a.shard.empty() ? std::pair{0u, 1u} : parse_shard(a.shard);
  const SpecFile spec = read_spec(spec_or_default(a.spec));
  const Validation v = validate(spec, registry);
  v1::TraceHeader header = make_header(spec, registry, v);
  if (shard_count > 1) header.set_shard_index(shard_index), header.set_shard_count(shard_count);

  SweepOptions options;
  options.threads = a.threads, options.stop = &g_stop;
  options.shard_index = shard_index, options.shard_count = shard_count;
  std::unique_ptr<TraceWriter> writer;
  RunSummary summary(a.stable_band);
  std::uint64_t failed = 0;
  if (a.resume && fs::exists(a.output)) {
    options.skip = prepare_resume(a.output, header, [&](const v1::SimTrace& t) {
      if (!a.quiet) summary.add(t);
      failed += t.status() != v1::SimTrace::OK;
    });
    writer = std::make_unique<TraceWriter>(a.output);
    std::cerr << "gradsim: resuming " << a.output << " after " << options.skip << " simulations\n";
  } else {
    writer = std::make_unique<TraceWriter>(a.output, header);
  }
  const std::uint64_t total = shard_size(v.count, shard_index, shard_count);
  Progress progress(total, options.skip, a.progress || isatty(STDERR_FILENO));
  std::uint64_t done = options.skip;
  std::signal(SIGINT, on_interrupt);
  const auto counts = run_sweep(spec, registry, v.count, options, [&](const v1::SimTrace& t) {
    writer->append(t);
    if (!a.quiet) summary.add(t);
    failed += t.status() != v1::SimTrace::OK;
    progress.update(++done, failed);
  });
  std::signal(SIGINT, SIG_DFL);
  progress.finish();
  if (!a.quiet) summary.print(std::cout);
  std::cout << "wrote " << a.output << ": " << counts.ok << " ok, " << counts.failed << " failed";
  if (options.skip) std::cout << " (after " << options.skip << " from before)";
  std::cout << '\n';
  if (counts.interrupted) {
    std::string dirs;
    for (const auto& d : a.plugin_dirs) dirs += "--plugin-dir " + d + " ";
    std::cerr << "gradsim: interrupted after " << done << " of " << total << " simulations; " << a.output
              << " holds them all. Finish with: gradsim " << dirs << "run " << (a.spec.empty() ? "" : a.spec + " ")
              << "-o " << a.output << (a.shard.empty() ? "" : " --shard " + a.shard) << " --resume\n";
    return 130;
  }
  return failed ? 2 : 0;  // failures of this run or of the one it resumed
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"gradsim: simulate vanishing and exploding gradients in deep networks"};
  app.require_subcommand(1);
  app.fallthrough();
  std::vector<std::string> plugin_dirs;
  app.add_option("--plugin-dir", plugin_dirs, "also load gradsim-* plugins from DIR (repeatable)");

  RunArgs ra;
  std::string spec, traces, merged;
  std::vector<std::string> shard_files;
  bool json = false;
  long only_sim = -1;
  auto* run_cmd = app.add_subcommand("run", "simulate the networks of a spec and write a traces file");
  run_cmd->add_option("spec", ra.spec, "spec file (.textproto or .json); default: the demo in sims/");
  run_cmd->add_option("-o,--output", ra.output, "traces file to write")->capture_default_str();
  run_cmd->add_option("--threads", ra.threads, "threads (0: all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--shard", ra.shard, "run only simulations i, i+N, i+2N, ... (i/N); join with `gradsim merge`");
  run_cmd->add_flag("--resume", ra.resume, "continue the traces file of an interrupted run of the same spec");
  run_cmd->add_flag("--progress", ra.progress, "show the progress line even when stderr is not a terminal");
  run_cmd->add_option("--stable-band", ra.stable_band, "|log10(first/last)| up to this is 'stable'")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  run_cmd->add_flag("-q,--quiet", ra.quiet, "print no summary");
  auto* validate_cmd = app.add_subcommand("validate", "check a spec without running it");
  validate_cmd->add_option("spec", spec, "spec file; default: the demo in sims/");
  auto* plugins = app.add_subcommand("plugins", "list every plugin found, with its parameters");
  plugins->add_flag("--json", json, "machine-readable output");
  std::vector<std::string> check_names;
  auto* check = app.add_subcommand("gradcheck", "check plugins' backward passes against finite differences "
                                                "(initialisers against their declared variances)");
  check->add_option("names", check_names, "plugin names; default: every plugin found");
  auto* inspect = app.add_subcommand("inspect", "summarise a traces file");
  inspect->add_option("traces", traces, "traces file")->required();
  inspect->add_flag("--json", json, "one JSON object per simulation (protobuf's JSON mapping)");
  inspect->add_option("--sim", only_sim, "show only this simulation index");
  auto* merge = app.add_subcommand("merge", "join the files of `run --shard i/N` into one");
  merge->add_option("shards", shard_files, "the shard files, in any order")->required();
  merge->add_option("-o,--output", merged, "the joined traces file")->required();
  CLI11_PARSE(app, argc, argv);

  if (*inspect) {
    TraceReader reader(traces);
    const auto& h = reader.header();
    if (!json)
      std::cout << traces << ": gradsim " << h.gradsim_version() << ", spec " << h.spec_source() << ", "
                << h.num_sims() << " simulation" << (h.num_sims() == 1 ? "" : "s")
                << (h.shard_count() > 1 ? ", shard " + std::to_string(h.shard_index()) + "/" + std::to_string(h.shard_count()) : "")
                << '\n';
    v1::SimTrace t;
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    while (reader.next(t)) {
      if (only_sim >= 0 && t.index() != std::uint64_t(only_sim)) continue;
      if (json) {
        std::string out;
        google::protobuf::util::MessageToJsonString(t, &out, opts);
        std::cout << out << '\n';
      } else {
        print_trace(std::cout, t);
      }
    }
    if (reader.truncated())
      std::cerr << "gradsim: warning: " << traces << ": truncated after record " << reader.records_read()
                << " (byte " << reader.good_bytes() << "); the records before it are complete\n";
    return 0;
  }
  if (*merge) {
    std::vector<fs::path> files(shard_files.begin(), shard_files.end());
    std::cout << "wrote " << merged << ": " << merge_shards(files, merged) << " simulations\n";
    return 0;
  }

  const Registry registry = load_plugins(plugin_dirs);
  if (*plugins) {
    list_plugins(registry, json);
    return 0;
  }
  if (*check) return gradcheck(registry, check_names);
  if (*validate_cmd) {
    const SpecFile spec_file = read_spec(spec_or_default(spec));
    const Validation v = validate(spec_file, registry);
    std::cout << spec_file.source << ": ok, " << v.count << " simulation" << (v.count == 1 ? "" : "s") << '\n';
    return 0;
  }
  ra.plugin_dirs = plugin_dirs;
  return run(registry, ra);
} catch (const std::exception& e) {
  return report_error(e.what());
}
