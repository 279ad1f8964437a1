#include "sweep.hpp"

#include <memory>

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_pipeline.h>

#include <gradsim/version.hpp>

#include "engine.hpp"
#include "trace_io.hpp"

namespace gradsim {

v1::TraceHeader make_header(const SpecFile& spec, const Registry& registry, const Validation& v) {
  v1::TraceHeader h;
  h.set_magic(kTracesMagic);
  h.set_format_version(kTracesFormat);
  h.set_gradsim_version(GRADSIM_VERSION_STRING);
  *h.mutable_spec() = spec.sweep;
  h.set_spec_source(spec.source);
  h.set_num_sims(v.count);
  for (const auto& [kind, name] : v.plugins) {
    const auto& e = registry.get(kind, name);
    auto& p = *h.add_plugins();
    p.set_kind(kind_name(kind));
    p.set_name(name);
    p.set_version(e.info->version);
    p.set_library(e.library->file.string());
  }
  return h;
}

RunCounts run_sweep(const SpecFile& spec, const Registry& registry, std::uint64_t count,
                    int threads, const std::function<void(const v1::SimTrace&)>& writer_fn) {
  const int n = threads > 0 ? threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::size_t(n));
  RunCounts counts;
  std::uint64_t next = 0;
  using Trace = std::shared_ptr<v1::SimTrace>;
  tbb::parallel_pipeline(
      std::size_t(2 * n),  // simulations in flight
      tbb::make_filter<void, std::uint64_t>(tbb::filter_mode::serial_in_order,
                                            [&](tbb::flow_control& fc) -> std::uint64_t {
                                              if (next == count) fc.stop();
                                              return next++;
                                            }) &
          tbb::make_filter<std::uint64_t, Trace>(
              tbb::filter_mode::parallel,
              [&](std::uint64_t index) {
                auto t = std::make_shared<v1::SimTrace>();
                t->set_index(index);
                *t->mutable_spec() = sim_at(spec.sweep, index);
                resolve(*t->mutable_spec(), registry);  // validated before: cannot fail here
                simulate(t->spec(), registry, *t);
                return t;
              }) &
          tbb::make_filter<Trace, void>(tbb::filter_mode::serial_in_order, [&](const Trace& t) {
            ++(t->status() == v1::SimTrace::OK ? counts.ok : counts.failed);
            writer_fn(*t);
          }));
  return counts;
}

}  // namespace gradsim
