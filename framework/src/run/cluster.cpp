#include "run/cluster.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <tbb/info.h>

#include "error.hpp"

#if GRADSIM_HAVE_MPI
#include <mpi.h>
#endif

namespace gradsim {

int launched_processes() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v && *v) return std::max(1, std::atoi(v));
  return 1;
}

#if !GRADSIM_HAVE_MPI

bool have_mpi() { return false; }

void hand_to_mpi_build(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return;
  const auto mpi = self.parent_path() / "gradsim-mpi";
  if (::access(mpi.c_str(), X_OK) == 0) ::execv(mpi.c_str(), argv);  // returns only if it failed
}

Cluster::Cluster(int&, char**&) {
  throw Error("this gradsim was built without MPI, so " + std::to_string(launched_processes()) +
              " processes would each run the whole sweep; install Open MPI (apt install libopenmpi-dev "
              "openmpi-bin, or scripts/deps.sh) and build gradsim again, or run it without mpirun");
}
Cluster::~Cluster() = default;
bool Cluster::start(bool go) { return go; }
void Cluster::fail(int) {}
RunCounts coordinate(Cluster&, const SpecFile&, const Registry&, std::uint64_t, const SweepOptions&, std::size_t,
                     const std::function<void(const v1::SimTrace&, const std::string&)>&, std::vector<RankStats>*) {
  return {};
}
void work(Cluster&, const SpecFile&, const Registry&, std::uint64_t, const SweepOptions&) {}

#else

bool have_mpi() { return true; }

void hand_to_mpi_build(char**) {}

Cluster::Cluster(int& argc, char**& argv) {
  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed; check the MPI installation (mpirun --version)");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

Cluster::~Cluster() {
  if (!started_) start(false);
  MPI_Finalize();
}

bool Cluster::start(bool go) {
  int word = go ? 1 : 0;
  MPI_Bcast(&word, 1, MPI_INT, 0, MPI_COMM_WORLD);
  started_ = true;
  return word != 0;
}

void Cluster::fail(int status) {
  if (!started_) {
    start(false);
    return;
  }
  MPI_Abort(MPI_COMM_WORLD, status);
  std::exit(status);  // not reached
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Messages between the ranks (all on MPI_COMM_WORLD; MPI keeps each pair's messages in order).
enum Tag : int {
  kAsk = 1,     // rank -> 0: uint32, how many more indices it wants
  kWork = 2,    // 0 -> rank: uint64 indices to run; none: there is no more work
  kRecord = 3,  // rank -> 0: uint64 index, then the record's bytes
  kDone = 4,    // rank -> 0: Done; what it was given and did not send back goes to others
};

struct Done {
  std::uint64_t sims;
  std::int32_t threads;
  double wall, busy;
};

// Non-blocking sends whose buffers live until MPI is done with them. A blocking send could
// wait on a receiver that is itself blocked sending to us.
class Sender {
 public:
  void send(std::string bytes, int to, int tag) {
    auto& m = *out_.emplace_back(std::make_unique<Message>());
    m.bytes = std::move(bytes);
    MPI_Isend(m.bytes.data(), int(m.bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD, &m.request);
  }
  /// Frees what has been sent; true if anything was.
  bool progress() {
    bool any = false;
    while (!out_.empty()) {
      int done = 0;
      MPI_Test(&out_.front()->request, &done, MPI_STATUS_IGNORE);
      if (!done) break;
      out_.pop_front();
      any = true;
    }
    return any;
  }
  void flush() {
    for (auto& m : out_) MPI_Wait(&m->request, MPI_STATUS_IGNORE);
    out_.clear();
  }

 private:
  struct Message {
    std::string bytes;
    MPI_Request request;
  };
  std::deque<std::unique_ptr<Message>> out_;
};

template <class T>
std::string bytes_of(const T* data, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(data), n * sizeof(T));
}

std::string receive(const MPI_Status& status) {
  int n = 0;
  MPI_Get_count(&status, MPI_BYTE, &n);
  std::string bytes(std::size_t(n), '\0');
  MPI_Recv(bytes.data(), n, MPI_BYTE, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return bytes;
}

// Runs run_sweep on a thread of its own with `source` for indices and `deliver` for records,
// so that this (the MPI) thread stays free to talk; notes when it ends, and how.
class LocalSweep {
 public:
  LocalSweep(const SpecFile& spec, const Registry& registry, std::uint64_t count, SweepOptions options,
             std::function<void(const v1::SimTrace&)> deliver, std::mutex& mutex, std::condition_variable& wake)
      : mutex_(mutex), wake_(wake) {
    thread_ = std::thread([=, this, &spec, &registry] {
      RunCounts c;
      std::exception_ptr error;
      try {
        c = run_sweep(spec, registry, count, options, deliver);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      counts_ = c, error_ = error, done_ = true;
      wake_.notify_all();
    });
  }
  ~LocalSweep() { join(); }
  /// Under the mutex.
  bool done() const { return done_; }
  /// Waits for the thread; rethrows its error.
  RunCounts join() {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return counts_;
  }

 private:
  std::mutex& mutex_;
  std::condition_variable& wake_;
  std::thread thread_;
  RunCounts counts_;
  std::exception_ptr error_;
  bool done_ = false;
};

constexpr auto kPoll = std::chrono::microseconds(200);  // an idle loop's nap between looks at MPI

}  // namespace

RunCounts coordinate(Cluster& cluster, const SpecFile& spec, const Registry& registry, std::uint64_t count,
                     const SweepOptions& options, std::size_t window,
                     const std::function<void(const v1::SimTrace&, const std::string&)>& write,
                     std::vector<RankStats>* stats) {
  const auto started = Clock::now();
  std::mutex mutex;
  std::condition_variable wake;
  // Under the mutex:
  std::uint64_t next = options.skip;     // the next index to hand out
  std::uint64_t written = options.skip;  // the next index to write
  std::set<std::uint64_t> returned;      // handed out, then given back unrun by a stopped rank
  std::vector<std::set<std::uint64_t>> given(std::size_t(cluster.size()));  // out at each rank
  bool abandon = false;                  // an error here: this rank's threads take no more
  std::map<std::uint64_t, std::string> ready;  // records waiting for their turn
  std::vector<std::size_t> holds(std::size_t(cluster.size()), 0);  // the most each rank asked for
  holds[0] = options.in_flight;
  // The indices beyond the last written one that may be out at once.
  auto limit = [&] {
    if (window) return std::uint64_t(window);
    std::size_t all = 0;
    for (auto h : holds) all += h;
    return std::uint64_t(std::max<std::size_t>(64, 4 * all));
  };
  enum class Take { index, wait, none };
  // The next index to run, under the mutex: a returned one first, then the next in order while
  // the window allows. Crashed simulations are recorded on the way, never handed out.
  auto take = [&](std::uint64_t& index) {
    if (abandon || (options.stop && options.stop->load())) return Take::none;
    if (!returned.empty()) {
      index = *returned.begin();
      returned.erase(returned.begin());
      return Take::index;
    }
    for (auto c = options.crashed.find(next); next < count && c != options.crashed.end(); c = options.crashed.find(next)) {
      v1::SimTrace t;
      crashed_record(spec, registry, next, c->second, t);
      ready.emplace(next++, t.SerializeAsString());
    }
    if (next >= count) return Take::none;
    if (next >= written + limit()) return Take::wait;
    index = next++;
    return Take::index;
  };

  // This rank's own threads take indices straight from the queue.
  SweepOptions local = options;
  local.crashed.clear();
  local.source = [&]() -> std::optional<std::uint64_t> {
    std::unique_lock<std::mutex> lock(mutex);
    for (std::uint64_t index = 0;;) {
      switch (take(index)) {
        case Take::index: return index;
        case Take::none: return std::nullopt;
        case Take::wait: wake.wait_for(lock, std::chrono::milliseconds(50));
      }
    }
  };
  std::uint64_t local_sims = 0;
  const auto deliver = [&](const v1::SimTrace& t) {
    std::string bytes = t.SerializeAsString();
    std::lock_guard<std::mutex> lock(mutex);
    ready.emplace(t.index(), std::move(bytes));
    ++local_sims;
    wake.notify_all();
  };

  std::vector<RankStats> ranks(std::size_t(cluster.size()));
  RunCounts counts;
  Sender sender;
  std::deque<std::pair<int, std::uint32_t>> asks;  // rank, how many: waiting for the window
  int working = cluster.size() - 1;                 // ranks that have not said they are done
  LocalSweep sweep(spec, registry, count, local, deliver, mutex, wake);

  // Answers what asks it can: indices, or an empty message once there are none left.
  auto answer = [&] {
    std::unique_lock<std::mutex> lock(mutex);
    while (!asks.empty()) {
      auto& [rank, n] = asks.front();
      std::vector<std::uint64_t> give;
      Take t = Take::index;
      for (std::uint64_t index = 0; give.size() < n && (t = take(index)) == Take::index;) give.push_back(index);
      if (give.empty() && t == Take::wait) break;  // the window is full: answer when it opens
      given[std::size_t(rank)].insert(give.begin(), give.end());
      lock.unlock();
      sender.send(bytes_of(give.data(), give.size()), rank, kWork);
      lock.lock();
      asks.pop_front();
    }
  };
  // Writes the records that are next in sweep order.
  auto drain = [&] {
    bool any = false;
    for (;;) {
      std::string bytes;
      {
        std::lock_guard<std::mutex> lock(mutex);
        auto it = ready.find(written);
        if (it == ready.end()) break;
        bytes = std::move(it->second);
        ready.erase(it);
      }
      const auto t0 = Clock::now();
      v1::SimTrace t;
      if (!t.ParseFromString(bytes)) throw Error("a rank sent a damaged record; check that every rank runs the same gradsim");
      ++(t.status() == v1::SimTrace::OK ? counts.ok : counts.failed);
      write(t, bytes);
      ranks[0].writer += seconds_since(t0), ranks[0].bytes += bytes.size();
      std::lock_guard<std::mutex> lock(mutex);
      ++written;
      any = true;
      wake.notify_all();
    }
    return any;
  };

  // On an error, this rank's threads finish what they run and take nothing more.
  struct Abandon {
    std::mutex& mutex;
    bool& abandon;
    std::condition_variable& wake;
    ~Abandon() {
      std::lock_guard<std::mutex> lock(mutex);
      abandon = true;
      wake.notify_all();
    }
  } on_exit{mutex, abandon, wake};
  for (bool local_done = false;;) {
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
    if (flag) {
      const auto t0 = Clock::now();
      const std::string bytes = receive(status);
      const int from = status.MPI_SOURCE;
      if (status.MPI_TAG == kAsk && bytes.size() == sizeof(std::uint32_t)) {
        std::uint32_t n = 0;
        std::memcpy(&n, bytes.data(), sizeof n);
        std::lock_guard<std::mutex> lock(mutex);
        holds[std::size_t(from)] = std::max<std::size_t>(holds[std::size_t(from)], n);
        asks.emplace_back(from, n);
      } else if (status.MPI_TAG == kRecord && bytes.size() >= sizeof(std::uint64_t)) {
        std::uint64_t index = 0;
        std::memcpy(&index, bytes.data(), sizeof index);
        std::lock_guard<std::mutex> lock(mutex);
        given[std::size_t(from)].erase(index);
        ready.emplace(index, bytes.substr(sizeof index));
      } else if (status.MPI_TAG == kDone && bytes.size() >= sizeof(Done)) {
        Done d;
        std::memcpy(&d, bytes.data(), sizeof d);
        auto& r = ranks[std::size_t(from)];
        r.sims = d.sims, r.threads = d.threads, r.wall = d.wall, r.busy = d.busy;
        std::unique_lock<std::mutex> lock(mutex);
        // A rank that stopped early (a signal to it alone) leaves what it was given to others,
        // and its last ask is answered with nothing.
        returned.merge(given[std::size_t(from)]);
        given[std::size_t(from)].clear();
        for (auto it = asks.begin(); it != asks.end();)
          if (it->first == from) {
            it = asks.erase(it);
            lock.unlock();
            sender.send("", from, kWork);
            lock.lock();
          } else {
            ++it;
          }
        --working;
      } else {
        throw Error("rank " + std::to_string(from) + " sent an unexpected message (tag " +
                    std::to_string(status.MPI_TAG) + "); check that every rank runs the same gradsim");
      }
      ranks[0].writer += seconds_since(t0);
    }
    answer();
    const bool wrote = drain();
    const bool sent = sender.progress();
    {
      std::unique_lock<std::mutex> lock(mutex);
      local_done = sweep.done();
      if (working == 0 && local_done && asks.empty()) break;
      if (!flag && !wrote && !sent) wake.wait_for(lock, kPoll);
    }
  }
  sender.flush();
  const RunCounts mine = sweep.join();
  drain();
  counts.interrupted = written < count;
  ranks[0].sims = local_sims;
  ranks[0].threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  ranks[0].wall = seconds_since(started);
  ranks[0].busy = mine.busy;
  if (stats) *stats = ranks;
  return counts;
}

void work(Cluster& cluster, const SpecFile& spec, const Registry& registry, std::uint64_t count,
          const SweepOptions& options) {
  (void)cluster;
  const auto started = Clock::now();
  std::mutex mutex;
  std::condition_variable wake;
  // Under the mutex:
  std::deque<std::uint64_t> queue;   // indices given to this rank, not yet started
  std::deque<std::string> outbox;    // finished records, not yet sent
  bool no_more = false, asking = false;
  std::uint64_t sims = 0;

  // Indices to hold here beyond those running: enough to cover a round trip to rank 0 (about
  // a millisecond when it is idle between polls) at this rank's pace, which it measures.
  const std::size_t in_flight = std::max<std::size_t>(1, options.in_flight);
  std::size_t want = in_flight;
  SweepOptions local = options;
  local.source = [&]() -> std::optional<std::uint64_t> {
    std::unique_lock<std::mutex> lock(mutex);
    while (queue.empty() && !no_more && !(options.stop && options.stop->load()))
      wake.wait_for(lock, std::chrono::milliseconds(50));
    if (queue.empty()) return std::nullopt;
    const std::uint64_t index = queue.front();
    queue.pop_front();
    wake.notify_all();  // the MPI thread may ask for more
    return index;
  };
  const auto deliver = [&](const v1::SimTrace& t) {
    const std::uint64_t index = t.index();
    std::string bytes = bytes_of(&index, 1);
    t.AppendToString(&bytes);
    std::lock_guard<std::mutex> lock(mutex);
    outbox.push_back(std::move(bytes));
    ++sims;
    wake.notify_all();
  };
  Sender sender;
  LocalSweep sweep(spec, registry, count, local, deliver, mutex, wake);
  for (;;) {
    std::deque<std::string> out;
    bool ask = false, done = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      out.swap(outbox);
      if (sims) {
        const double per_second = double(sims) / std::max(1e-6, seconds_since(started));
        want = in_flight + std::min<std::size_t>(4096, std::size_t(std::ceil(per_second * 2e-3)));
      }
      const bool stopped = options.stop && options.stop->load();
      if (!asking && !no_more && !stopped && queue.size() < want) ask = asking = true;
      done = sweep.done() && outbox.empty();
    }
    for (auto& bytes : out) sender.send(std::move(bytes), 0, kRecord);
    if (ask) {
      const auto n = std::uint32_t(want - [&] {
        std::lock_guard<std::mutex> lock(mutex);
        return std::min(queue.size(), want - 1);
      }());
      sender.send(bytes_of(&n, 1), 0, kAsk);
    }
    if (done) break;
    int flag = 0;
    MPI_Status status;
    MPI_Iprobe(0, kWork, MPI_COMM_WORLD, &flag, &status);
    if (flag) {
      const std::string bytes = receive(status);
      std::lock_guard<std::mutex> lock(mutex);
      for (std::size_t at = 0; at + sizeof(std::uint64_t) <= bytes.size(); at += sizeof(std::uint64_t)) {
        std::uint64_t index = 0;
        std::memcpy(&index, bytes.data() + at, sizeof index);
        queue.push_back(index);
      }
      no_more = bytes.empty();
      asking = false;
      wake.notify_all();
    }
    const bool sent = sender.progress();
    std::unique_lock<std::mutex> lock(mutex);
    if (!flag && !sent && outbox.empty() && !sweep.done()) wake.wait_for(lock, kPoll);
  }
  const RunCounts mine = sweep.join();
  Done d{sims, std::int32_t(options.threads > 0 ? options.threads : tbb::info::default_concurrency()),
         seconds_since(started), mine.busy};
  sender.send(bytes_of(&d, 1), 0, kDone);
  // Rank 0 answers a last ask still open (a stopped rank's) with nothing once it has the Done,
  // and hands out again what this rank was given and did not run: take that answer, so that
  // no message is left behind.
  if (asking) {
    MPI_Status status;
    MPI_Probe(0, kWork, MPI_COMM_WORLD, &status);
    receive(status);
  }
  sender.flush();
}

#endif

}  // namespace gradsim
