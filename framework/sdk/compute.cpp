// The compute behind compute.hpp, compiled once in the gradsim library: every plugin's
// products, maps and norms run here.
//
// Products: OpenBLAS, one thread per call (one simulation runs on one thread; parallelism
// comes from running many). Debian's OpenBLAS picks its kernels for the CPU it runs on
// (AVX-512, AVX2, ...), so one binary runs at full speed on any x86-64 machine. Its pthread
// build is the one that may be called from several threads at once; it starts a pool of
// threads as it loads, which spin on the other cores for a while (measured: 15 % of the small
// benchmark sweep on 2 cores), unless OPENBLAS_NUM_THREADS is 1 then. So the library loads
// it itself, once, with that variable set for the moment of loading. Loops over arrays are
// compiled for three instruction-set levels and chosen when the library loads (target_clones).
#include <gradsim/compute.hpp>

#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "simd.hpp"

namespace gradsim {

namespace {

// LAPACK's Householder QR (Fortran interface) and the routine that forms its Q.
using Dgeqrf = void (*)(const int*, const int*, double*, const int*, double*, double*, const int*, int*);
using Dorgqr = void (*)(const int*, const int*, const int*, double*, const int*, const double*, double*, const int*,
                        int*);

struct Blas {
  decltype(&cblas_sgemm) sgemm;
  decltype(&cblas_dgemm) dgemm;
  Dgeqrf dgeqrf;  // may be missing (an OpenBLAS built without LAPACK): orthonormalize() then says so
  Dorgqr dorgqr;
};

// Runs while the library loads, before main() and before any other thread exists.
const Blas blas = [] {
  const char* name = "OPENBLAS_NUM_THREADS";
  const char* before = std::getenv(name);
  const std::string saved = before ? before : "";
  ::setenv(name, "1", 1);
  void* lib = ::dlopen(GRADSIM_OPENBLAS_LIBRARY, RTLD_LAZY | RTLD_LOCAL);
  if (!lib) lib = ::dlopen("libopenblas.so.0", RTLD_LAZY | RTLD_LOCAL);  // a relocated install
  if (before) ::setenv(name, saved.c_str(), 1);
  else ::unsetenv(name);
  Blas b{};
  if (lib) {
    b.sgemm = reinterpret_cast<decltype(&cblas_sgemm)>(::dlsym(lib, "cblas_sgemm"));
    b.dgemm = reinterpret_cast<decltype(&cblas_dgemm)>(::dlsym(lib, "cblas_dgemm"));
    b.dgeqrf = reinterpret_cast<Dgeqrf>(::dlsym(lib, "dgeqrf_"));
    b.dorgqr = reinterpret_cast<Dorgqr>(::dlsym(lib, "dorgqr_"));
  }
  if (!b.sgemm || !b.dgemm) {
    const char* why = lib ? "no cblas_sgemm/cblas_dgemm in it" : ::dlerror();
    std::fprintf(stderr, "gradsim: error: cannot load OpenBLAS from %s (%s); install it: sudo apt-get install "
                 "libopenblas0-pthread (or run scripts/deps.sh)\n", GRADSIM_OPENBLAS_LIBRARY, why);
    std::_Exit(1);
  }
  return b;
}();

CBLAS_TRANSPOSE op(bool t) { return t ? CblasTrans : CblasNoTrans; }

// c (+)= op(a) op(b), column-major, through BLAS.
template <class P>
void gemm(const P* a, Eigen::Index a_rows, Eigen::Index a_cols, const P* b, Eigen::Index b_rows,
          Eigen::Index b_cols, P* c, Product how) {
  const Eigen::Index m = how.transpose_a ? a_cols : a_rows, k = how.transpose_a ? a_rows : a_cols;
  const Eigen::Index n = how.transpose_b ? b_rows : b_cols;
  const P beta = how.accumulate ? P(1) : P(0);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS leaves c alone here only if beta is 1
    if (!how.accumulate) std::fill(c, c + m * n, P(0));
    return;
  }
  // OpenBLAS's small-matrix kernel for op(a) = a^T runs at a third of its plain one (32 x 32:
  // 52 against 134 GFLOP/s here): small a is transposed first, which costs far less.
  thread_local std::vector<P> transposed;
  if (how.transpose_a && !how.transpose_b && m * n * k <= (Eigen::Index(1) << 19)) {
    transposed.resize(std::size_t(m * k));
    simd::transpose(a, std::size_t(a_rows), std::size_t(a_cols), transposed.data());
    a = transposed.data(), a_rows = m, a_cols = k, how.transpose_a = false;
  }
  const blasint lda = blasint(std::max<Eigen::Index>(1, a_rows)), ldb = blasint(std::max<Eigen::Index>(1, b_rows));
  if constexpr (std::is_same_v<P, float>)
    blas.sgemm(CblasColMajor, op(how.transpose_a), op(how.transpose_b), blasint(m), blasint(n), blasint(k), 1.0f,
                a, lda, b, ldb, beta, c, blasint(m));
  else
    blas.dgemm(CblasColMajor, op(how.transpose_a), op(how.transpose_b), blasint(m), blasint(n), blasint(k), 1.0,
                a, lda, b, ldb, beta, c, blasint(m));
}

template <class T>
void check_shapes(const Matrix<T>& a, const Matrix<T>& b, const Matrix<T>& c, Product how) {
  const Eigen::Index m = how.transpose_a ? a.cols() : a.rows(), k = how.transpose_a ? a.rows() : a.cols();
  const Eigen::Index kb = how.transpose_b ? b.cols() : b.rows(), n = how.transpose_b ? b.rows() : b.cols();
  eigen_assert(k == kb && "matmul: inner dimensions differ");
  eigen_assert((!how.accumulate || (c.rows() == m && c.cols() == n)) && "matmul: accumulating into a wrong shape");
  (void)m, (void)k, (void)kb, (void)n, (void)c;
}

// Per-thread float32 copies of 16-bit operands, kept between calls.
struct Widened {
  Matrix<float> a, b, c;
};
thread_local Widened widened;

template <class T>
void matmul_impl(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c, Product how) {
  check_shapes(a, b, c, how);
  const Eigen::Index m = how.transpose_a ? a.cols() : a.rows(), n = how.transpose_b ? b.rows() : b.cols();
  if constexpr (std::is_floating_point_v<T>) {
    if (!how.accumulate) c.resize(m, n);
    gemm<T>(a.data(), a.rows(), a.cols(), b.data(), b.rows(), b.cols(), c.data(), how);
  } else {  // accumulate in float32, round once
    auto& w = widened;
    simd::widen(a, w.a), simd::widen(b, w.b);
    if (how.accumulate) simd::widen(c, w.c);
    else w.c.resize(m, n);
    gemm<float>(w.a.data(), a.rows(), a.cols(), w.b.data(), b.rows(), b.cols(), w.c.data(), how);
    simd::narrow(w.c, c);
  }
}

// Chunks small enough to stay in the first-level cache between the kernel and the multiply.
constexpr std::size_t kChunk = 1024;

template <class T>
void map_impl(const Matrix<T>& x, Matrix<T>& y, ScalarKernel<T> k, const void* fn) {
  y.resize(x.rows(), x.cols());
  k(fn, x.data(), y.data(), std::size_t(x.size()));
}

template <class T>
void map_times_impl(const Matrix<T>& x, const Matrix<T>& g, Matrix<T>& y, ScalarKernel<T> k, const void* fn) {
  y.resize(x.rows(), x.cols());
  const std::size_t n = std::size_t(x.size());
  alignas(64) T buf[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i);
    k(fn, x.data() + i, buf, m);
    simd::multiply(g.data() + i, buf, y.data() + i, m);
  }
}

template <class T>
void map_times_impl(const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& g, Matrix<T>& out, PairKernel<T> k,
                    const void* fn) {
  out.resize(x.rows(), x.cols());
  const std::size_t n = std::size_t(x.size());
  alignas(64) T buf[kChunk];
  for (std::size_t i = 0; i < n; i += kChunk) {
    const std::size_t m = std::min(kChunk, n - i);
    k(fn, x.data() + i, y.data() + i, buf, m);
    simd::multiply(g.data() + i, buf, out.data() + i, m);
  }
}

}  // namespace

void orthonormalize(Matrix<double>& a) {
  if (!blas.dgeqrf || !blas.dorgqr)
    throw std::runtime_error("the OpenBLAS gradsim loaded has no LAPACK (dgeqrf, dorgqr); install Debian's "
                             "libopenblas0-pthread (or run scripts/deps.sh)");
  if (a.rows() < a.cols()) throw std::invalid_argument("orthonormalize: a has more columns than rows");
  const int m = int(a.rows()), n = int(a.cols()), lda = std::max(1, m);
  if (n == 0) return;
  std::vector<double> tau(static_cast<std::size_t>(n)), work(static_cast<std::size_t>(64 * n));
  const int lwork = int(work.size());
  int info = 0;
  blas.dgeqrf(&m, &n, a.data(), &lda, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw std::runtime_error("orthonormalize: LAPACK dgeqrf failed (info " + std::to_string(info) + ")");
  std::vector<double> sign(static_cast<std::size_t>(n));  // of R's diagonal, before dorgqr overwrites it
  for (int j = 0; j < n; ++j) sign[std::size_t(j)] = a(j, j) < 0 ? -1.0 : 1.0;
  blas.dorgqr(&m, &n, &n, a.data(), &lda, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw std::runtime_error("orthonormalize: LAPACK dorgqr failed (info " + std::to_string(info) + ")");
  for (int j = 0; j < n; ++j) a.col(j) *= sign[std::size_t(j)];
}

#define GRADSIM_DEFINE_COMPUTE(T)                                                                    \
  void matmul(const Matrix<T>& a, const Matrix<T>& b, Matrix<T>& c, Product how) { matmul_impl(a, b, c, how); } \
  void map(const Matrix<T>& x, Matrix<T>& y, ScalarKernel<T> k, const void* fn) { map_impl(x, y, k, fn); } \
  void map_times(const Matrix<T>& x, const Matrix<T>& g, Matrix<T>& y, ScalarKernel<T> k, const void* fn) { \
    map_times_impl(x, g, y, k, fn);                                                                  \
  }                                                                                                  \
  void map_times(const Matrix<T>& x, const Matrix<T>& y, const Matrix<T>& g, Matrix<T>& out, PairKernel<T> k, \
                 const void* fn) {                                                                   \
    map_times_impl(x, y, g, out, k, fn);                                                             \
  }                                                                                                  \
  void add_column_sums(const Matrix<T>& m, Matrix<T>& out) {                                         \
    eigen_assert(out.rows() == 1 && out.cols() == m.cols() && "add_column_sums: out is not 1 x m.cols()"); \
    simd::add_column_sums(m.data(), std::size_t(m.rows()), std::size_t(m.cols()), out.data());      \
  }                                                                                                  \
  double norm_f64(const Matrix<T>& m) { return simd::norm(m.data(), std::size_t(m.size())); }       \
  double max_abs_f64(const Matrix<T>& m) { return simd::max_abs(m.data(), std::size_t(m.size())); }
GRADSIM_FOR_EACH_FORMAT(GRADSIM_DEFINE_COMPUTE)

}  // namespace gradsim
