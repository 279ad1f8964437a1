// Tasks: teacher-student regression and Gaussian clusters, and the learning-rate schedule.
#include "train/task.hpp"

#include <cmath>
#include <numbers>

#include "network/engine.hpp"

namespace gradsim {

namespace {
// Streams of the task's seed.
constexpr std::uint64_t kTrain = 0x7a5c01, kHeldOut = 0x7a5c02, kFixed = 0x7a5c03;
}  // namespace

template <class T>
Task<T>::Task(const v1::SimSpec& spec, std::size_t input_width, std::shared_ptr<TeacherNet> teacher)
    : kind_(spec.train().task().kind()),
      outputs_(spec.train().task().outputs()),
      batch_(spec.batch()),
      input_width_(input_width),
      tokens_(std::max<std::uint32_t>(1, spec.network().transformer().tokens())),
      input_std_(std::sqrt(spec.input().variance())),
      teacher_spec_(std::move(teacher)),
      train_rng_(spec.train().task().seed() ? spec.train().task().seed() : spec.seed(), kTrain) {
  const auto& task = spec.train().task();
  const std::uint64_t seed = task.seed() ? task.seed() : spec.seed();
  Rng fixed(seed, kFixed);
  if (kind_ == v1::Task::TEACHER) {
    teacher_ = std::make_unique<Engine<double>>(teacher_spec_->spec, std::move(teacher_spec_->net));
    const auto width = Eigen::Index(teacher_->network().width);  // of its output
    projection_.resize(width, Eigen::Index(outputs_));
    fixed.fill_normal(projection_, 1 / std::sqrt(double(width)));
  } else if (kind_ == v1::Task::CLUSTERS) {
    centres_.resize(Eigen::Index(outputs_), Eigen::Index(input_width));
    fixed.fill_normal(centres_, task.separation() / std::sqrt(double(input_width)));
  } else {  // NEXT_TOKEN
    const auto v = Eigen::Index(outputs_);
    embedding_.resize(v, Eigen::Index(input_width));
    fixed.fill_normal(embedding_, input_std_);
    transitions_.resize(v, v);
    fixed.fill_normal(transitions_, task.sharpness());
    for (Eigen::Index r = 0; r < v; ++r) {  // softmax, then cumulative
      const double top = transitions_.row(r).maxCoeff();
      double sum = 0;
      for (Eigen::Index c = 0; c < v; ++c) sum += (transitions_(r, c) = std::exp(transitions_(r, c) - top));
      double run = 0;
      for (Eigen::Index c = 0; c < v; ++c) transitions_(r, c) = (run += transitions_(r, c) / sum);
      transitions_(r, v - 1) = 1;
    }
  }
  Rng held(seed, kHeldOut);
  held_x_.resize(spec.train().eval_batches()), held_t_.resize(held_x_.size());
  for (std::size_t k = 0; k < held_x_.size(); ++k) draw(held, held_x_[k], held_t_[k]);  // noiseless, unscaled
  if (kind_ == v1::Task::TEACHER) {  // unit variance over the held-out set, then the noise
    double s1 = 0, s2 = 0, n = 0;
    for (const auto& t : held_t_) s1 += t.sum(), s2 += t.squaredNorm(), n += double(t.size());
    const double var = s2 / n - (s1 / n) * (s1 / n);
    scale_ = var > 0 && std::isfinite(var) ? 1 / std::sqrt(var) : 1;
    noise_ = task.noise();
    for (auto& t : held_t_) {
      t *= scale_;
      add_noise(held, t);
    }
  }
}

template <class T>
void Task<T>::add_noise(Rng& rng, Matrix<double>& targets) const {
  if (noise_ <= 0) return;
  Matrix<double> e(targets.rows(), targets.cols());
  rng.fill_normal(e, noise_);
  targets += e;
}

template <class T>
Task<T>::~Task() = default;

template <class T>
void Task<T>::draw(Rng& rng, Matrix<double>& x, Matrix<double>& targets) {
  if (kind_ != v1::Task::NEXT_TOKEN) {
    x.resize(Eigen::Index(batch_), Eigen::Index(input_width_));
    rng.fill_normal(x, input_std_);
  }
  if (kind_ == v1::Task::TEACHER) {
    teacher_->input() = x;
    teacher_->forward();
    targets = teacher_->output() * projection_ * scale_;
    add_noise(rng, targets);
  } else if (kind_ == v1::Task::CLUSTERS) {
    targets.resize(x.rows(), 1);
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      const auto label = Eigen::Index(rng.next() % outputs_);
      targets(r, 0) = double(label);
      x.row(r) += centres_.row(label);
    }
  } else {  // a sequence of tokens_ + 1 tokens per `batch` row group: inputs 0..T-1, targets 1..T
    const auto t = Eigen::Index(tokens_);
    x.resize(Eigen::Index(batch_) * t, Eigen::Index(input_width_));
    targets.resize(x.rows(), 1);
    for (Eigen::Index b = 0; b < Eigen::Index(batch_); ++b) {
      auto token = Eigen::Index(rng.next() % outputs_);
      for (Eigen::Index i = 0; i < t; ++i) {
        x.row(b * t + i) = embedding_.row(token);
        const double u = rng.uniform();
        Eigen::Index next = 0;
        while (transitions_(token, next) <= u) ++next;
        targets(b * t + i, 0) = double(token = next);
      }
    }
  }
}

template <class T>
void Task<T>::next_batch(Matrix<double>& x) {
  draw(train_rng_, x, t_);
  current_ = &t_;
}

template <class T>
void Task<T>::heldout(std::size_t k, Matrix<double>& x) {
  x = held_x_[k];
  current_ = &held_t_[k];
}

template <class T>
double Task<T>::trivial_loss() const {
  return kind_ == v1::Task::TEACHER ? 1 + noise_ * noise_ : std::log(double(outputs_));
}

template <class T>
T Task<T>::forward(const Matrix<T>& y) const {
  const Matrix<double> p = y.template cast<double>();
  const auto& t = *current_;
  correct_ = 0;
  if (kind_ == v1::Task::TEACHER) {
    loss_ = (p - t).squaredNorm() / double(p.size());
  } else {  // mean over rows of logsumexp(p_r) - p_r[label]
    double sum = 0;
    for (Eigen::Index r = 0; r < p.rows(); ++r) {
      const double top = p.row(r).maxCoeff();
      const double lse = top + std::log((p.row(r).array() - top).exp().sum());
      const auto label = Eigen::Index(t(r, 0));
      sum += lse - p(r, label);
      Eigen::Index best;
      p.row(r).maxCoeff(&best);
      correct_ += best == label && std::isfinite(top);
    }
    loss_ = sum / double(p.rows());
  }
  return T(loss_);
}

template <class T>
void Task<T>::backward(const Matrix<T>& y, Matrix<T>& dy) const {
  const Matrix<double> p = y.template cast<double>();
  const auto& t = *current_;
  if (kind_ == v1::Task::TEACHER) {
    dy = (2 / double(p.size()) * (p - t)).template cast<T>();
    return;
  }
  Matrix<double> d(p.rows(), p.cols());  // (softmax(p_r) - onehot) / rows
  for (Eigen::Index r = 0; r < p.rows(); ++r) {
    const double top = p.row(r).maxCoeff();
    d.row(r) = (p.row(r).array() - top).exp();
    d.row(r) /= d.row(r).sum();
    d(r, Eigen::Index(t(r, 0))) -= 1;
  }
  dy = (d / double(p.rows())).template cast<T>();
}

double scheduled_lr(const v1::Train& train, std::uint32_t s) {
  const auto& sch = train.schedule();
  const double warm = s < sch.warmup_steps() ? double(s + 1) / sch.warmup_steps() : 1;
  double decay = 1;
  if (sch.kind() == v1::Schedule::COSINE && train.steps() > sch.warmup_steps()) {
    const double p = double(s < sch.warmup_steps() ? 0 : s - sch.warmup_steps()) / double(train.steps() - sch.warmup_steps());
    decay = sch.final_fraction() + (1 - sch.final_fraction()) * (1 + std::cos(std::numbers::pi * p)) / 2;
  }
  return train.lr() * warm * decay;
}

#define GRADSIM_INSTANTIATE_TASK(T) template class Task<T>;
GRADSIM_FOR_EACH_FORMAT(GRADSIM_INSTANTIATE_TASK)

}  // namespace gradsim
