// The gradsim command line: run | validate | theory | plugins | gradcheck | inspect | summary | export | plot | merge | help.
#include <CLI/CLI.hpp>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <cmath>
#include <optional>
#include <thread>
#include <csignal>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include <gradsim/abi.hpp>

#include "check/gradcheck.hpp"
#include "error.hpp"
#include "run/cluster.hpp"
#include "run/crash.hpp"
#include "run/validate.hpp"
#include "plugin/registry.hpp"
#include "io/report.hpp"
#include "spec/spec.hpp"
#include "run/sweep.hpp"
#include "theory/table.hpp"
#include "io/trace_io.hpp"

namespace fs = std::filesystem;
using namespace gradsim;

namespace {

constexpr const char* kDefaultSpec = "default.textproto";

// Under mpirun: this process's part of the job (null when gradsim runs alone).
std::unique_ptr<Cluster> g_cluster;

// Errors that already say where ("file:line:col: error: ...") print as they are.
int report_error(const std::string& what) {
  if (what.find(": error: ") != std::string::npos) std::cerr << what << '\n';
  else std::cerr << "gradsim: error: " << what << '\n';
  return 1;
}

// Loads the plugins of --plugin-dir, $GRADSIM_PLUGIN_PATH and the built-in directory;
// prints every failure; throws if any.
Registry load_plugins(const std::vector<std::string>& dirs) {
  std::vector<fs::path> paths;
  for (const auto& d : dirs) {
    std::error_code ec;
    if (!fs::exists(d, ec))
      throw Error("--plugin-dir " + d + ": no such directory or file; check the path");
    paths.emplace_back(d);
  }
  for (auto& p : default_plugin_paths()) paths.push_back(p);
  Registry registry;
  const auto failures = registry.load(paths);
  for (std::size_t i = 0; i + 1 < failures.size(); ++i) report_error(failures[i]);
  if (!failures.empty()) throw Error(failures.back());
  if (registry.empty())
    throw Error("no plugins found (searched " + default_plugin_dir().string() +
                "); pass --plugin-dir DIR or set GRADSIM_PLUGIN_PATH");
  return registry;
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
      std::cout << (first ? "\n" : ",\n") << "  {\"kind\": " << json_quote(kind_name(p.kind))
                << ", \"name\": " << json_quote(p.name) << ", \"version\": " << json_quote(p.version)
                << ", \"library\": " << json_quote(e.library->file.string())
                << ", \"help\": " << json_quote(p.help) << ", \"params\": [";
      for (std::size_t i = 0; i < p.params.size(); ++i) {
        const auto& d = p.params[i];
        std::cout << (i ? ", " : "") << "{\"name\": " << json_quote(d.name)
                  << ", \"type\": " << json_quote(type_text(d.type))
                  << ", \"default\": " << json_quote(default_text(d))
                  << ", \"range\": " << json_quote(range_text(d)) << ", \"help\": " << json_quote(d.help) << "}";
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
      for (Kind k : {Kind::layer, Kind::activation, Kind::initializer, Kind::loss, Kind::mitigation, Kind::cell,
                     Kind::optimizer})
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
  const char msg[] = "\ngradsim: stopping after the simulations in flight (Ctrl-C again to quit now)\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
}

// Under mpirun, the ranks above 0: mpirun turns a Ctrl-C into SIGTERM for every rank; rank 0
// says what happens, the others stop quietly.
extern "C" void on_terminate(int) { g_stop = true; }

struct RunArgs {
  std::vector<std::string> plugin_dirs;
  std::string spec, output = "traces.pb", shard;
  int threads = 0;
  std::size_t window = 0;
  bool quiet = false, resume = false, progress = false, rank_stats = false;
  double stable_band = 1.0, sim_timeout = 0;
  std::uint64_t max_sims = kDefaultMaxSims;
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

// `run --rank-stats`: what each rank did, and what rank 0 spent taking in and writing records.
void print_rank_stats(std::ostream& os, const std::vector<RankStats>& ranks) {
  if (ranks.empty()) {
    os << "rank stats: one process (no mpirun)\n";
    return;
  }
  os << "rank  threads   sims   wall s   busy s   idle %\n";
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    const auto& k = ranks[r];
    char line[128];
    std::snprintf(line, sizeof line, "%4zu  %7d  %5llu  %7.2f  %7.2f  %7.1f\n", r, k.threads,
                  static_cast<unsigned long long>(k.sims), k.wall, k.busy, 100 * k.idle());
    os << line;
  }
  const auto& w = ranks.front();
  std::uint64_t records = 0;
  for (const auto& k : ranks) records += k.sims;
  char line[200];
  std::snprintf(line, sizeof line,
                "writer (rank 0): %llu records, %.1f MB, %.3f s taking in and writing: %.0f records/s, %.0f MB/s at most\n",
                static_cast<unsigned long long>(records), double(w.bytes) * 1e-6, w.writer,
                w.writer > 0 ? double(records) / w.writer : 0.0, w.writer > 0 ? double(w.bytes) * 1e-6 / w.writer : 0.0);
  os << line;
}

// The options every process of a run shares: threads, and how many simulations fit in memory
// (said when fewer than the threads fit, unless `quiet`: rank 0 says it for a cluster).
SweepOptions sweep_options(const RunArgs& a, const Validation& v, bool quiet = false) {
  SweepOptions options;
  options.threads = a.threads, options.stop = &g_stop, options.sim_timeout = a.sim_timeout;
  const int threads = a.threads > 0 ? a.threads : int(std::thread::hardware_concurrency());
  options.in_flight = fitting_in_memory(v.max_sim_bytes, std::size_t(2 * std::max(1, threads)));
  if (options.in_flight < std::size_t(std::max(1, threads)) && !quiet)
    std::cerr << "gradsim: one simulation needs about " << std::ceil(double(v.max_sim_bytes) * 1e-8) / 10
              << " GB: running " << options.in_flight << " at a time to fit in memory\n";
  return options;
}

// Under mpirun, the ranks above 0: run what rank 0 hands out. Rank 0 has checked the spec and
// the command line before saying go; this rank's own view of them (plugins, memory) is checked
// again here, and an error ends the job.
int run_rank(Cluster& cluster, const Registry& registry, const RunArgs& a) {
  const SpecFile spec = read_spec(spec_or_default(a.spec));
  const Validation v = validate(spec, registry, a.max_sims);
  SweepOptions options = sweep_options(a, v, true);
  std::signal(SIGINT, on_terminate);
  std::signal(SIGTERM, on_terminate);
  CrashGuard guard(crash_journal_path(a.output));  // shared with rank 0 where the file system is
  options.guard = &guard;
  work(cluster, spec, registry, v.count, options);
  return 0;
}

int run(const Registry& registry, const RunArgs& a) {
  const auto [shard_index, shard_count] = a.shard.empty() ? std::pair{0u, 1u} : parse_shard(a.shard);
  if (g_cluster && g_cluster->rank() > 0) return run_rank(*g_cluster, registry, a);
  if (g_cluster && !a.shard.empty())
    throw Error("--shard " + a.shard + ": under mpirun the " + std::to_string(g_cluster->size()) +
                " processes share the sweep as they go; leave --shard out");
  if (g_cluster && a.output == "-")
    throw Error("-o -: under mpirun, write the traces to a file (-o FILE)");
  const fs::path spec_path = spec_or_default(a.spec);
  const bool to_stdout = a.output == "-";
  std::error_code ec;
  if (!to_stdout && fs::equivalent(spec_path, a.output, ec))
    throw Error("-o " + a.output + ": that is the spec file; write the traces elsewhere");
  if (to_stdout && a.resume) throw Error("--resume needs a traces file; -o - writes to standard output");
  const SpecFile spec = read_spec(spec_path);
  const Validation v = validate(spec, registry, a.max_sims);
  v1::TraceHeader header = make_header(spec, registry, v);
  if (shard_count > 1) header.set_shard_index(shard_index), header.set_shard_count(shard_count);
  std::ostream& report = to_stdout ? std::cerr : std::cout;  // stdout carries the traces then

  SweepOptions options = sweep_options(a, v);
  options.shard_index = shard_index, options.shard_count = shard_count;
  std::signal(SIGINT, on_interrupt);  // from here on, Ctrl-C leaves a valid file
  if (g_cluster) std::signal(SIGTERM, on_interrupt);  // mpirun passes a Ctrl-C on as SIGTERM
  std::unique_ptr<OutputLock> lock;
  std::unique_ptr<CrashGuard> guard;
  std::unique_ptr<TraceWriter> writer;
  RunSummary summary(spec.sweep, a.stable_band);
  std::uint64_t failed = 0;
  if (!to_stdout) {
    lock = std::make_unique<OutputLock>(a.output);  // before reading or truncating the file
    const fs::path journal = crash_journal_path(a.output);
    std::optional<std::uint64_t> done_before;
    if (a.resume)
      done_before = prepare_resume(a.output, header, [&](const v1::SimTrace& t) {
        if (!a.quiet) summary.add(t);
        failed += t.status() != v1::SimTrace::OK;
      });
    if (done_before) {
      options.skip = *done_before;
      // The journal's simulations this run has yet to write (earlier resumes wrote the rest).
      for (const auto& [index, reason] : read_crash_journal(journal))
        if (index % shard_count == shard_index && index / shard_count >= options.skip) options.crashed.emplace(index, reason);
      writer = std::make_unique<TraceWriter>(a.output);
      std::cerr << "gradsim: resuming " << a.output << " after " << options.skip << " simulations";
      if (!options.crashed.empty())
        std::cerr << "; " << options.crashed.size() << " crashed in an earlier run: recorded as failed, not run again";
      std::cerr << '\n';
    } else {
      if (a.resume) std::cerr << "gradsim: " << a.output << " holds no header yet; starting it again\n";
      fs::remove(journal, ec);
      writer = std::make_unique<TraceWriter>(a.output, header);
    }
    guard = std::make_unique<CrashGuard>(journal);
    options.guard = guard.get();
  } else {
    writer = std::make_unique<TraceWriter>(a.output, header);
  }
  const std::uint64_t total = shard_size(v.count, shard_index, shard_count);
  Progress progress(total, options.skip, a.progress || isatty(STDERR_FILENO));
  std::uint64_t done = options.skip;
  RunCounts counts;
  std::vector<RankStats> ranks;
  try {
    if (g_cluster) {
      g_cluster->start(true);  // the other ranks load their plugins and ask for work
      counts = coordinate(*g_cluster, spec, registry, v.count, options, a.window,
                          [&](const v1::SimTrace& t, const std::string& bytes) {
                            writer->append_raw(bytes);
                            if (!a.quiet) summary.add(t);
                            failed += t.status() != v1::SimTrace::OK;
                            progress.update(++done, failed);
                          },
                          &ranks);
    } else {
      counts = run_sweep(spec, registry, v.count, options, [&](const v1::SimTrace& t) {
        writer->append(t);
        if (!a.quiet) summary.add(t);
        failed += t.status() != v1::SimTrace::OK;
        progress.update(++done, failed);
      });
    }
  } catch (const ResourceError& e) {
    progress.finish();
    throw Error(std::string(e.what()) + " (one simulation needs about " +
                detail::format_number(std::ceil(double(v.max_sim_bytes) * 1e-8) / 10) + " GB, " +
                std::to_string(options.in_flight) + " ran at once); the " + std::to_string(done) +
                " finished records are in " + a.output + ". Finish with --resume and fewer --threads");
  }
  std::signal(SIGINT, SIG_DFL);
  progress.finish();
  if (!a.quiet) summary.print(report);
  report << "wrote " << a.output << ": " << counts.ok << " ok, " << counts.failed << " failed";
  if (options.skip) report << " (after " << options.skip << " from before)";
  if (g_cluster) report << " by " << g_cluster->size() << " processes";
  report << '\n';
  if (a.rank_stats) print_rank_stats(report, ranks);
  if (counts.interrupted) {
    std::string dirs;
    for (const auto& d : a.plugin_dirs) dirs += "--plugin-dir " + d + " ";
    std::cerr << "gradsim: interrupted after " << done << " of " << total << " simulations; " << a.output
              << " holds them all. Finish with: " << (g_cluster ? "mpirun -n " + std::to_string(g_cluster->size()) + " " : "")
              << "gradsim " << dirs << "run " << (a.spec.empty() ? "" : a.spec + " ")
              << "-o " << a.output << (a.shard.empty() ? "" : " --shard " + a.shard) << " --resume\n";
    return 130;
  }
  guard.reset();
  if (!to_stdout) fs::remove(crash_journal_path(a.output), ec);  // complete: its crashes are in the records
  return failed ? 2 : 0;  // failures of this run or of the one it resumed
}

// `gradsim plot`: runs the Python package shipped with gradsim (share/gradsim/python), with
// Debian's python3 unless $GRADSIM_PYTHON names another.
int plot(const std::string& traces, const std::string& dir) {
  std::string python = "python3";
  if (const char* env = std::getenv("GRADSIM_PYTHON")) python = env;
  else if (fs::exists("/usr/bin/python3")) python = "/usr/bin/python3";  // the one with Debian's packages
  std::string path = default_python_dir().string();
  if (const char* old = std::getenv("PYTHONPATH"); old && *old) path += std::string(":") + old;
  ::setenv("PYTHONPATH", path.c_str(), 1);
  const std::string script =
      "import sys\n"
      "try:\n"
      "    import matplotlib, numpy, pandas\n"
      "except ImportError as e:\n"
      "    sys.exit(f'gradsim: error: plotting needs the Python module {e.name} for {sys.executable}; install it '\n"
      "             '(Debian: apt install python3-matplotlib python3-numpy python3-pandas)')\n"
      "from gradsim.plot import main\n"
      "sys.exit(main(sys.argv[1:]))\n";
  std::vector<std::string> args{python, "-c", script, traces, "-o", dir};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  ::execvp(python.c_str(), argv.data());
  throw Error("cannot run " + python + " (" + std::strerror(errno) + "); gradsim plot needs Python 3 with "
              "matplotlib, numpy and pandas, or set GRADSIM_PYTHON");
}

// The closest of `names` to `word` (edit distance at most 2, or a third of its length).
std::string closest(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& n : names)
    if (const auto d = edit_distance(word, n); d < best_d) best = n, best_d = d;
  return best;
}

// A usage error, as one line: what was wrong, a did-you-mean for a mistyped command or flag,
// and where the help is.
std::string usage_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  std::vector<std::string> commands;
  for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) commands.push_back(sub->get_name());
  const CLI::App* sub = nullptr;
  for (const auto* c : app.get_subcommands([](const CLI::App*) { return true; }))
    if (c->parsed()) sub = c;
  // The first word that is not an option or an option's value names the command.
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--plugin-dir") { ++i; continue; }
    if (arg.rfind("-", 0) == 0) continue;
    if (std::find(commands.begin(), commands.end(), arg) == commands.end() && !sub) {
      const std::string guess = closest(arg, commands);
      std::string list;
      for (const auto& c : commands) list += (list.empty() ? "" : ", ") + c;
      return "unknown command '" + arg + "'" + (guess.empty() ? "" : " (did you mean '" + guess + "'?)") +
             "; the commands are " + list;
    }
    break;
  }
  std::string what = e.what();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) continue;
    arg = arg.substr(0, arg.find('='));
    std::vector<std::string> flags;
    for (const CLI::App* a : {&app, sub})
      if (a)
        for (const auto* o : a->get_options())
          for (const auto& l : o->get_lnames()) flags.push_back("--" + l);
    if (std::find(flags.begin(), flags.end(), arg) != flags.end()) continue;
    const std::string guess = closest(arg, flags);
    return "unknown option " + arg + (guess.empty() ? "" : " (did you mean " + guess + "?)") + "; see gradsim " +
           (sub ? sub->get_name() + " " : "") + "--help";
  }
  return what + "; see gradsim " + (sub ? sub->get_name() + " " : "") + "--help";
}

}  // namespace

int run_main(int argc, char** argv) try {
  CLI::App app{"gradsim: simulate vanishing and exploding gradients in deep networks"};
  app.require_subcommand(0, 1);
  app.fallthrough();
  app.set_version_flag("-V,--version", std::string("gradsim " GRADSIM_VERSION_STRING " (plugin ABI ") +
                                           std::to_string(GRADSIM_ABI_VERSION) + ")");
  std::vector<std::string> plugin_dirs;
  const char* plugin_dir_help = "also load gradsim-* plugins from DIR (repeatable)";
  app.add_option("--plugin-dir", plugin_dirs, plugin_dir_help);
  auto finite = CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          const double v = std::stod(text);
          return std::isfinite(v) && v >= 0 ? "" : "must be a finite number >= 0";
        } catch (const std::exception&) {
          return "must be a number";
        }
      },
      "NUMBER >= 0");

  RunArgs ra;
  std::string spec, traces, merged;
  std::vector<std::string> shard_files;
  bool json = false;
  long only_sim = -1;
  auto* run_cmd = app.add_subcommand("run", "simulate the networks of a spec and write a traces file");
  run_cmd->add_option("spec", ra.spec, "spec file (.textproto or .json); default: the demo in sims/");
  run_cmd->add_option("-o,--output", ra.output, "traces file to write (- for standard output)")->capture_default_str();
  run_cmd->add_option("--threads", ra.threads, "threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 4096));
  run_cmd->add_option("--sim-timeout", ra.sim_timeout, "seconds one simulation may run; past it, it is recorded as failed (0: no limit)")
      ->capture_default_str()->check(finite);
  run_cmd->add_option("--max-sims", ra.max_sims, "refuse sweeps of more simulations than this")->capture_default_str();
  run_cmd->add_option("--shard", ra.shard, "run only simulations i, i+N, i+2N, ... (i/N); join with `gradsim merge`");
  run_cmd->add_flag("--resume", ra.resume, "continue the traces file of an interrupted run of the same spec");
  run_cmd->add_flag("--progress", ra.progress, "show the progress line even when stderr is not a terminal");
  run_cmd->add_option("--stable-band", ra.stable_band, "|log10(first/last)| up to this is 'stable'")
      ->capture_default_str()->check(finite);
  run_cmd->add_flag("-q,--quiet", ra.quiet, "print no summary");
  run_cmd->add_flag("--rank-stats", ra.rank_stats, "under mpirun: what each process ran, its idle time, the writer's rate");
  run_cmd->add_option("--window", ra.window, "under mpirun: records rank 0 may hold waiting for an earlier one "
                                             "(0: 4 x the simulations all ranks hold at once, at least 64)")->capture_default_str();
  auto* validate_cmd = app.add_subcommand("validate", "check a spec without running it");
  validate_cmd->add_option("spec", spec, "spec file; default: the demo in sims/");
  validate_cmd->add_option("--max-sims", ra.max_sims, "refuse sweeps of more simulations than this")->capture_default_str();
  theory::TableArgs ta;
  std::string theory_spec;
  std::vector<double> bias_stds;
  auto* theory_cmd = app.add_subcommand("theory", "mean-field theory: fixed points, chi_1, depth scales, phase (from "
                                                  "flags, or for each configuration of a spec)");
  theory_cmd->add_option("spec", theory_spec, "spec file: theory for each of its configurations (else the flags' grid)");
  theory_cmd->add_option("--activation", ta.activations, "activation plugin, with parameters as name:key=value,... (repeatable; default: every elementwise one)");
  theory_cmd->add_option("--weight-var", ta.weight_vars, "sigma_w2 = fan_in * Var W (repeatable)")->capture_default_str()->check(finite);
  auto* bias_var = theory_cmd->add_option("--bias-var", ta.bias_vars, "sigma_b2 = Var b (repeatable)")->capture_default_str()->check(finite);
  theory_cmd->add_option("--bias-std", bias_stds, "bias standard deviation, instead of --bias-var (repeatable)")
      ->check(finite)->excludes(bias_var);
  theory_cmd->add_option("--input-var", ta.input_var, "the input's variance q0")->capture_default_str()->check(finite);
  theory_cmd->add_option("--batch-norm", ta.batch_norm, "also batch norm's gradient growth per block at this batch "
                                                         "(before and after the activation)")->check(CLI::Range(4, 65536));
  theory_cmd->add_flag("--critical", ta.critical, "find sigma_w2 on the edge of chaos (chi_1 = 1) for each activation and bias");
  theory_cmd->add_flag("--json", ta.json, "one JSON object per row");
  auto* plugins = app.add_subcommand("plugins", "list every plugin found, with its parameters");
  plugins->add_flag("--json", json, "machine-readable output");
  std::vector<std::string> check_names;
  auto* check = app.add_subcommand("gradcheck", "check plugins' backward passes against finite differences "
                                                "(initialisers against their declared variances)");
  check->add_option("names", check_names, "plugin names; default: every plugin found");
  auto* inspect = app.add_subcommand("inspect", "summarise a traces file");
  inspect->add_option("traces", traces, "traces file (- for standard input)")->required();
  inspect->add_flag("--json", json, "the header, then one JSON object per simulation (protobuf's JSON mapping)");
  inspect->add_option("--sim", only_sim, "show only this simulation index");
  bool csv = false;
  std::string export_csv;
  auto* summary_cmd = app.add_subcommand("summary", "the run's summary, recomputed from a traces file");
  summary_cmd->add_option("traces", traces, "traces file (- for standard input)")->required();
  summary_cmd->add_option("--stable-band", ra.stable_band, "|log10(first/last)| up to this is 'stable'")
      ->capture_default_str()->check(finite);
  summary_cmd->add_flag("--csv", csv, "one CSV row per configuration");
  std::size_t columns = 6;
  summary_cmd->add_option("--columns", columns, "simulations shown in the |dL/dh|-by-layer table")->capture_default_str();
  auto* export_cmd = app.add_subcommand("export", "write the per-layer numbers as CSV (long format)");
  export_cmd->add_option("traces", traces, "traces file (- for standard input)")->required();
  export_cmd->add_option("--csv", export_csv, "the CSV file to write (- for standard output)")->required();
  std::string figures = "figures";
  auto* plot_cmd = app.add_subcommand("plot", "draw a traces file's figures (PNG and SVG, with Python's matplotlib)");
  plot_cmd->add_option("traces", traces, "traces file")->required();
  plot_cmd->add_option("-o,--output", figures, "directory for the figures")->capture_default_str();
  auto* merge = app.add_subcommand("merge", "join the files of `run --shard i/N` into one");
  merge->add_option("shards", shard_files, "the shard files, in any order")->required();
  merge->add_option("-o,--output", merged, "the joined traces file")->required();
  auto* help_cmd = app.add_subcommand("help", "print this help");
  for (auto* sub : {run_cmd, validate_cmd, theory_cmd, plugins, check})  // the commands that load plugins
    sub->add_option("--plugin-dir", plugin_dirs, plugin_dir_help);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "gradsim: error: " << usage_error(app, e, argc, argv) << '\n';
    return 1;
  }
  if (*help_cmd || app.get_subcommands().empty()) {  // `gradsim help`, or no command at all
    (*help_cmd ? std::cout : std::cerr) << app.get_formatter()->make_help(&app, "gradsim", CLI::AppFormatMode::Normal);
    return *help_cmd ? 0 : 1;
  }
  // Started by mpirun: one sweep over the job. The other ranks wait for rank 0's word, so a
  // mistake in the spec or the command line is reported once.
  if (*run_cmd && launched_processes() > 1) {
    hand_to_mpi_build(argv);
    g_cluster = std::make_unique<Cluster>(argc, argv);
    if (g_cluster->rank() > 0 && !g_cluster->start(true)) return 1;
  }

  if (*inspect) {
    TraceReader reader(traces);
    const auto& h = reader.header();
    if (reader.header_truncated()) throw Error(traces + ": error: ends inside its header; it holds no simulation");
    if (only_sim < -1 || (only_sim >= 0 && std::uint64_t(only_sim) >= h.num_sims()))
      throw Error("--sim " + std::to_string(only_sim) + ": " + traces + " holds simulations 0 to " +
                  std::to_string(h.num_sims() - 1));
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    opts.always_print_primitive_fields = true;  // sim 0 has an index too
    auto to_json = [&](const google::protobuf::Message& m) {
      std::string out;
      google::protobuf::util::MessageToJsonString(m, &out, opts);
      return out;
    };
    if (json) std::cout << "{\"header\": " << to_json(h) << "}\n";  // then one line per simulation
    else
      std::cout << traces << ": gradsim " << h.gradsim_version() << ", spec " << h.spec_source() << ", "
                << h.num_sims() << " simulation" << (h.num_sims() == 1 ? "" : "s")
                << (h.shard_count() > 1 ? ", shard " + std::to_string(h.shard_index()) + "/" + std::to_string(h.shard_count()) : "")
                << '\n';
    v1::SimTrace t;
    while (reader.next(t)) {
      if (only_sim >= 0 && t.index() != std::uint64_t(only_sim)) continue;
      if (json) std::cout << to_json(t) << '\n';
      else print_trace(std::cout, t);
    }
    if (reader.truncated())
      std::cerr << "gradsim: warning: " << traces << ": truncated after record " << reader.records_read()
                << " (byte " << reader.good_bytes() << "); the records before it are complete\n";
    return 0;
  }
  if (*plot_cmd) return plot(traces, figures);
  if (*summary_cmd) {  // the run's summary again, from any traces file
    TraceReader reader(traces);
    RunSummary summary(reader.header().spec(), ra.stable_band, columns);
    v1::SimTrace t;
    while (reader.next(t)) summary.add(t);
    if (csv) summary.print_csv(std::cout);
    else summary.print(std::cout);
    if (reader.truncated() || reader.records_read() < reader.header().num_sims())
      std::cerr << "gradsim: note: " << traces << " holds " << reader.records_read() << " of "
                << reader.header().num_sims() << " simulations\n";
    return 0;
  }
  if (*export_cmd) {
    TraceReader reader(traces);
    std::ofstream file;
    if (export_csv != "-") {
      file.open(export_csv, std::ios::trunc);
      if (!file) throw Error(export_csv + ": error: cannot write; check the directory");
    }
    std::ostream& out = export_csv == "-" ? std::cout : file;
    write_layers_csv(out, reader);
    if (!out) throw Error(export_csv + ": error: writing failed");
    return 0;
  }
  if (*merge) {
    std::vector<fs::path> files(shard_files.begin(), shard_files.end());
    const std::uint64_t n = merge_shards(files, merged);
    std::cout << "wrote " << merged << ": " << n << " simulations\n";
    return 0;
  }

  const Registry registry = load_plugins(plugin_dirs);
  if (*plugins) {
    list_plugins(registry, json);
    return 0;
  }
  if (*check) return gradcheck(registry, check_names);
  if (*theory_cmd) {
    if (!bias_stds.empty()) {
      ta.bias_vars.clear();
      for (double s : bias_stds) ta.bias_vars.push_back(s * s);
    }
    if (theory_spec.empty()) theory::print_grid(std::cout, registry, ta);
    else theory::print_spec(std::cout, registry, read_spec(theory_spec), ta.json);
    return 0;
  }
  if (*validate_cmd) {
    const SpecFile spec_file = read_spec(spec_or_default(spec));
    const Validation v = validate(spec_file, registry, ra.max_sims);
    std::cout << spec_file.source << ": ok, " << v.count << " simulation" << (v.count == 1 ? "" : "s") << '\n';
    return 0;
  }
  ra.plugin_dirs = plugin_dirs;
  return run(registry, ra);
} catch (const std::exception& e) {
  if (!g_cluster) {
    // Built without MPI and started by mpirun: every rank has the same error; one says it.
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    if (launched_processes() > 1 && rank && std::atoi(rank) > 0) return 1;
    return report_error(e.what());
  }
  const int status = report_error(g_cluster->rank() ? "rank " + std::to_string(g_cluster->rank()) + ": " + e.what()
                                                    : std::string(e.what()));
  g_cluster->fail(status);  // the other ranks would wait for this one
  return status;
}

int main(int argc, char** argv) {
  const int status = run_main(argc, argv);
  g_cluster.reset();  // MPI_Finalize, before static destructors run
  return status;
}
