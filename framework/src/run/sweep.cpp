#include "run/sweep.hpp"

#include <google/protobuf/arena.h>
#include <google/protobuf/util/message_differencer.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <malloc.h>
#endif

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_pipeline.h>

#include <gradsim/version.hpp>

#include "network/engine.hpp"
#include "theory/predict.hpp"
#include "run/crash.hpp"
#include "error.hpp"
#include "utf8.hpp"
#include "io/trace_io.hpp"

// ThreadSanitizer cannot see oneTBB's synchronisation (Debian's libtbb is not instrumented):
// tell it where the pipeline hands data from one stage's thread to the next.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define GRADSIM_HANDOFF_ACQUIRE(p) __tsan_acquire(const_cast<void*>(static_cast<const void*>(p)))
#define GRADSIM_HANDOFF_RELEASE(p) __tsan_release(const_cast<void*>(static_cast<const void*>(p)))
#else
#define GRADSIM_HANDOFF_ACQUIRE(p) (void)0
#define GRADSIM_HANDOFF_RELEASE(p) (void)0
#endif

namespace gradsim {

v1::TraceHeader make_header(const SpecFile& spec, const Registry& registry, const Validation& v) {
  v1::TraceHeader h;
  h.set_magic(kTracesMagic);
  h.set_format_version(kTracesFormat);
  h.set_gradsim_version(GRADSIM_VERSION_STRING);
  *h.mutable_spec() = spec.sweep;
  h.set_spec_source(escape_utf8(spec.source));
  h.set_num_sims(v.count);
  for (const auto& [kind, name] : v.plugins) {
    const auto& e = registry.get(kind, name);
    auto& p = *h.add_plugins();
    p.set_kind(kind_name(kind));
    p.set_name(name);
    p.set_version(e.info->version);
    p.set_library(escape_utf8(e.library->file.string()));  // a string field must be UTF-8
  }
  return h;
}

std::uint64_t shard_size(std::uint64_t count, std::uint32_t index, std::uint32_t shards) {
  return index < count ? (count - index + shards - 1) / shards : 0;
}

namespace {

// glibc gives every block over 128 KiB its own mmap and returns it to the system on free, so
// each simulation's matrices would be page-faulted in afresh, and the threads would queue on
// the kernel's memory map lock (measured: 87 % parallel efficiency on 2 cores instead of 99 %).
// Keep freed memory in the process for the next simulation instead; what is kept is bounded by
// the simulations in flight.
void keep_freed_memory() {
#if defined(__GLIBC__)
  static const bool once = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)once;
#endif
}

}  // namespace

std::size_t fitting_in_memory(std::uint64_t bytes, std::size_t wanted) {
  const double room = 0.7 * double(physical_memory_bytes());
  return std::max<std::size_t>(1, std::min<std::size_t>(wanted, std::size_t(room / double(std::max<std::uint64_t>(bytes, 1)))));
}

namespace {

// Watches the simulations in flight: one running past twice its time limit is stuck inside
// plugin code (the engine checks its deadline before every layer), so it is noted in the
// crash journal and the process exits; --resume then records it as failed.
class Watchdog {
 public:
  Watchdog(double limit, CrashGuard* guard) : limit_(limit), guard_(guard) {
    if (limit_ > 0) thread_ = std::thread([this] { watch(); });
  }
  ~Watchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void start(std::uint64_t index) {
    if (limit_ <= 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    running_[index] = Clock::now();
  }
  void stop(std::uint64_t index) {
    if (limit_ <= 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    running_.erase(index);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!done_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      for (const auto& [index, started] : running_)
        if (std::chrono::duration<double>(Clock::now() - started).count() > 2 * limit_) {
          if (guard_) guard_->record(index, "time limit");
          std::fprintf(stderr,
                       "\ngradsim: simulation %llu is stuck inside a plugin, %.0f s past its time limit of %g s; "
                       "stopping. The finished records are kept: run again with --resume to record it as failed "
                       "and finish the rest\n",
                       static_cast<unsigned long long>(index), limit_, limit_);
          std::_Exit(3);
        }
    }
  }
  double limit_;
  CrashGuard* guard_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::uint64_t, Clock::time_point> running_;
  bool done_ = false;
  std::thread thread_;
};

// The theory beside a simulation is computed once per configuration (theory::predict caches
// it). The threads that start a configuration's replicas together would each compute it, in
// series with their simulations (the small benchmark sweep: 2.4 ms for each of its 4
// configurations, on every thread): with replicas and threads to share, compute the
// predictions of the first configurations this run meets here instead, one task each, as a
// simulation of the configuration would (same crash and time guards: a plugin that crashes or
// hangs in its activation stops the run here, before the simulations that came before it).
// A prediction that fails is left to the simulation, which reports what it must.
void prefetch_predictions(const SpecFile& spec, const Registry& registry, const SweepOptions& options,
                          std::uint64_t todo, int threads, Watchdog& watchdog) {
  constexpr std::size_t kMost = 256;  // well inside predict's cache
  const std::uint64_t replicas = std::max<std::uint32_t>(1, spec.sweep.replicas());
  if (options.source || threads < 2 || replicas < 2) return;  // (a cluster's indices are not known in advance)
  const std::uint64_t stride = std::max<std::uint32_t>(1, options.shard_count);
  std::vector<std::uint64_t> firsts;  // the first index of each configuration, in run order
  for (std::uint64_t k = options.skip; k < todo && firsts.size() < kMost;) {
    const std::uint64_t index = options.shard_index + stride * k, next = (index / replicas + 1) * replicas;
    if (!options.crashed.count(index)) firsts.push_back(index);
    k = std::max(k + 1, (next - options.shard_index + stride - 1) / stride);  // the first k past it
  }
  if (firsts.size() < 2) return;  // one configuration: nothing to share out
  tbb::parallel_for(std::size_t(0), firsts.size(), [&](std::size_t j) {
    if (options.stop && options.stop->load()) return;
    const std::uint64_t index = firsts[j];
    v1::SimSpec sim;
    sim_at(spec.sweep, index, sim);
    resolve(sim, registry);  // validated before: cannot fail here
    set_current_simulation(std::int64_t(index));
    watchdog.start(index);
    try {
      (void)theory::predict(sim, registry);
    } catch (...) {  // not a std::exception (predict catches those): the simulation will say
    }
    watchdog.stop(index);
    set_current_simulation(-1);
  });
}

}  // namespace

RunCounts run_sweep(const SpecFile& spec, const Registry& registry, std::uint64_t count,
                    const SweepOptions& options, const std::function<void(const v1::SimTrace&)>& write) {
  keep_freed_memory();
  const int n = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::size_t(n));
  const std::uint64_t todo = shard_size(count, options.shard_index, options.shard_count);
  RunCounts counts;
  std::uint64_t k = options.skip;  // the shard's k-th simulation is index i + k N
  Watchdog watchdog(options.sim_timeout, options.guard);
  std::atomic<std::uint64_t> busy_ns{0};
  using Trace = std::shared_ptr<v1::SimTrace>;
  auto simulate_one = [&](std::uint64_t index) {
    // The record lives in an arena of its own: a few allocations instead of hundreds, all freed
    // at once after writing (on another thread: many threads freeing into one another's malloc
    // arenas contend).
    google::protobuf::ArenaOptions sizes;
    sizes.start_block_size = 16 << 10, sizes.max_block_size = 1 << 20;
    const auto arena = std::make_shared<google::protobuf::Arena>(sizes);
    const Trace t(arena, google::protobuf::Arena::CreateMessage<v1::SimTrace>(arena.get()));
    if (auto c = options.crashed.find(index); c != options.crashed.end()) {
      crashed_record(spec, registry, index, c->second, *t);
      return t;
    }
    t->set_index(index);
    sim_at(spec.sweep, index, *t->mutable_spec());
    resolve(*t->mutable_spec(), registry);  // validated before: cannot fail here
    const auto deadline = options.sim_timeout > 0
                              ? std::chrono::steady_clock::now() +
                                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                        std::chrono::duration<double>(options.sim_timeout))
                              : Deadline::max();
    set_current_simulation(std::int64_t(index));
    watchdog.start(index);
    const auto started = std::chrono::steady_clock::now();
    try {
      simulate(t->spec(), registry, *t, deadline);
    } catch (const ResourceError& e) {
      set_current_simulation(-1);
      throw ResourceError(std::string(e.what()) + " in simulation " + std::to_string(index));
    }
    watchdog.stop(index);
    set_current_simulation(-1);
    busy_ns += std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now() - started).count());
    if (t->status() == v1::SimTrace::FAILED && t->message().find("(--sim-timeout)") != std::string::npos)
      t->set_message(t->message().substr(0, t->message().find(" (--sim-timeout)")) + " of " +
                     detail::format_number(options.sim_timeout) + " s (--sim-timeout)");
    return t;
  };
  prefetch_predictions(spec, registry, options, todo, n, watchdog);
  const std::size_t in_flight = options.in_flight ? options.in_flight : std::size_t(2 * n);
  // Every stage ends by releasing `finished`, which this thread acquires once the pipeline has
  // returned: what the workers read of this thread's stack happens before it is reused.
  int finished = 0;
  try {
    tbb::parallel_pipeline(
        in_flight,  // simulations in flight: memory is bounded whatever the sweep's length
        tbb::make_filter<void, std::uint64_t>(tbb::filter_mode::serial_in_order,
                                              [&](tbb::flow_control& fc) -> std::uint64_t {
                                                GRADSIM_HANDOFF_ACQUIRE(&k);  // serial, maybe on another thread
                                                std::uint64_t next = 0;
                                                if (!options.source && k == todo) {
                                                  fc.stop();
                                                } else if (options.stop && options.stop->load()) {
                                                  counts.interrupted = true;
                                                  fc.stop();
                                                } else if (options.source) {
                                                  if (const auto i = options.source()) next = *i;
                                                  else fc.stop();
                                                } else {
                                                  next = options.shard_index + options.shard_count * k++;
                                                }
                                                GRADSIM_HANDOFF_RELEASE(&k);
                                                GRADSIM_HANDOFF_RELEASE(&finished);
                                                return next;
                                              }) &
            tbb::make_filter<std::uint64_t, Trace>(tbb::filter_mode::parallel,
                                                   [&](std::uint64_t index) {
                                                     auto t = simulate_one(index);
                                                     GRADSIM_HANDOFF_RELEASE(t.get());  // to the writer
                                                     GRADSIM_HANDOFF_RELEASE(&finished);
                                                     return t;
                                                   }) &
            tbb::make_filter<Trace, void>(tbb::filter_mode::serial_in_order, [&](const Trace& t) {
              GRADSIM_HANDOFF_ACQUIRE(t.get());
              GRADSIM_HANDOFF_ACQUIRE(&counts);
              ++(t->status() == v1::SimTrace::OK ? counts.ok : counts.failed);
              write(*t);
              GRADSIM_HANDOFF_RELEASE(&counts);
              GRADSIM_HANDOFF_RELEASE(&finished);
            }));
  } catch (...) {
    GRADSIM_HANDOFF_ACQUIRE(&finished);
    throw;
  }
  GRADSIM_HANDOFF_ACQUIRE(&finished);
  (void)finished;
  counts.busy = double(busy_ns.load()) * 1e-9;
  return counts;
}

void crashed_record(const SpecFile& spec, const Registry& registry, std::uint64_t index, const std::string& reason,
                    v1::SimTrace& out) {
  out.set_index(index);
  sim_at(spec.sweep, index, *out.mutable_spec());
  resolve(*out.mutable_spec(), registry);  // validated before: cannot fail here
  out.set_status(v1::SimTrace::FAILED);
  out.set_message("crashed the process in an earlier run (" + reason + "); recorded, not run again");
}

namespace {

// What must agree between a file and the run that continues or joins it.
std::string header_difference(const v1::TraceHeader& a, const v1::TraceHeader& b) {
  if (!google::protobuf::util::MessageDifferencer::Equals(a.spec(), b.spec())) return "another spec";
  if (a.num_sims() != b.num_sims()) return "another number of simulations";
  if (a.shard_count() != b.shard_count()) return "another number of shards";
  if (a.plugins_size() != b.plugins_size()) return "other plugins";
  for (int i = 0; i < a.plugins_size(); ++i)
    if (a.plugins(i).name() != b.plugins(i).name() || a.plugins(i).version() != b.plugins(i).version())
      return "other plugins (" + a.plugins(i).name() + " " + a.plugins(i).version() + ")";
  return "";
}

}  // namespace

std::optional<std::uint64_t> prepare_resume(const std::filesystem::path& file, const v1::TraceHeader& header,
                                            const std::function<void(const v1::SimTrace&)>& seen) {
  TraceReader reader(file);
  if (reader.header_truncated()) return std::nullopt;  // died before its header was written
  if (reader.header().format_version() != kTracesFormat)
    throw Error(escape_utf8(file.string()) + ": error: cannot resume: written by gradsim " +
                reader.header().gradsim_version() + " in traces format " +
                std::to_string(reader.header().format_version()) + "; run without --resume to start it again");
  const std::string diff = header_difference(reader.header(), header);
  if (!diff.empty() || reader.header().shard_index() != header.shard_index())
    throw Error(file.string() + ": error: cannot resume: the file was written for " +
                (diff.empty() ? "another shard" : diff) + "; run without --resume to start it again");
  std::uint64_t k = 0;
  for (v1::SimTrace t; reader.next(t); ++k) {
    if (t.index() != header.shard_index() + std::uint64_t(std::max(1u, header.shard_count())) * k)
      throw Error(file.string() + ": error: cannot resume: record " + std::to_string(k) + " has index " +
                  std::to_string(t.index()) + ", not the next of this run; run without --resume");
    seen(t);
  }
  const std::uint64_t good = reader.good_bytes();
  if (reader.truncated()) std::filesystem::resize_file(file, good);  // drop the cut record
  return k;
}

std::uint64_t merge_shards(const std::vector<std::filesystem::path>& shards, const std::filesystem::path& out) {
  std::vector<std::unique_ptr<TraceReader>> readers;
  for (const auto& f : shards) {
    readers.push_back(std::make_unique<TraceReader>(f));
    if (readers.back()->header_truncated())
      throw Error(escape_utf8(f.string()) + ": error: ends inside its header, so it holds no simulation; run "
                                            "that shard again with --resume");
  }
  const auto& first = readers.front()->header();
  const std::uint32_t n = std::max(1u, first.shard_count());
  if (readers.size() != n)
    throw Error(shards.front().string() + ": error: the sweep has " + std::to_string(n) + " shards, " +
                std::to_string(readers.size()) + " given; pass every shard file once");
  std::vector<TraceReader*> by_shard(n, nullptr);
  std::vector<std::filesystem::path> file_of(n);
  for (std::size_t i = 0; i < readers.size(); ++i) {
    const auto& h = readers[i]->header();
    const std::string diff = header_difference(h, first);
    if (!diff.empty())
      throw Error(shards[i].string() + ": error: written for " + diff + " than " + shards[0].string());
    if (h.shard_index() >= n || by_shard[h.shard_index()])
      throw Error(shards[i].string() + ": error: shard " + std::to_string(h.shard_index()) + " of " +
                  std::to_string(n) + " is given twice or is out of range");
    by_shard[h.shard_index()] = readers[i].get();
    file_of[h.shard_index()] = shards[i];
  }
  v1::TraceHeader header = first;
  header.clear_shard_index(), header.clear_shard_count();
  // Written next to `out` and renamed at the end, so a failed merge leaves nothing half-done.
  const std::filesystem::path tmp = out.string() + ".partial";
  OutputLock lock(tmp);  // two merges into one file: the second is refused
  {
    TraceWriter writer(tmp, header);
    v1::SimTrace t;
    std::string raw;
    for (std::uint64_t index = 0; index < header.num_sims(); ++index) {
      auto* r = by_shard[index % n];
      if (!r->next(t, &raw) || t.index() != index) {
        std::filesystem::remove(tmp);
        throw Error(escape_utf8(file_of[index % n].string()) + ": error: shard " + std::to_string(index % n) +
                    " is incomplete (simulation " + std::to_string(index) + " missing); finish it with --resume");
      }
      writer.append_raw(raw);
    }
  }
  std::filesystem::rename(tmp, out);
  return header.num_sims();
}

}  // namespace gradsim
