// A learning task drawn from the seed (proto: Task): the mini-batches a training run reads, a
// held-out set, and the loss against their targets. To the engine it is the network's loss;
// the engine asks it for inputs before each pass.
#pragma once

#include <memory>
#include <vector>

#include <gradsim/plugin.hpp>

#include "gradsim.pb.h"
#include "network/network.hpp"

namespace gradsim {

template <class T>
class Engine;

template <class T>
class Task final : public Loss<T> {
 public:
  /// `input_width`: the columns the network reads. `teacher`: the built teacher (TEACHER).
  Task(const v1::SimSpec& spec, std::size_t input_width, std::shared_ptr<TeacherNet> teacher);
  ~Task() override;

  void setup(std::size_t, std::size_t, Rng&) override {}
  /// The loss of prediction y against the current targets (rounded to T; loss() keeps it in
  /// float64).
  T forward(const Matrix<T>& y) const override;
  void backward(const Matrix<T>& y, Matrix<T>& dy) const override;

  /// Draws the next training mini-batch into x and makes its targets current.
  void next_batch(Matrix<double>& x);
  /// Makes held-out batch k (of heldout_batches()) current; its inputs into x.
  void heldout(std::size_t k, Matrix<double>& x);
  std::size_t heldout_batches() const { return held_x_.size(); }

  /// The last forward()'s loss in float64, and how many rows it classified correctly.
  double loss() const { return loss_; }
  std::size_t correct() const { return correct_; }
  bool classification() const { return kind_ != v1::Task::TEACHER; }
  /// The held-out loss of the trivial predictor (always 0, or uniform): 1 + noise^2 (TEACHER:
  /// targets of unit variance plus the noise) or ln(classes).
  double trivial_loss() const;

 private:
  /// x's targets: (TEACHER) rows of the teacher's projected output, (CLUSTERS) labels.
  void draw(Rng& rng, Matrix<double>& x, Matrix<double>& targets);
  void add_noise(Rng& rng, Matrix<double>& targets) const;

  v1::Task::Kind kind_;
  std::size_t outputs_, batch_, input_width_, tokens_;
  double input_std_, noise_ = 0, scale_ = 1;
  std::shared_ptr<TeacherNet> teacher_spec_;
  std::unique_ptr<Engine<double>> teacher_;
  Matrix<double> projection_, centres_;
  Matrix<double> embedding_, transitions_;  // NEXT_TOKEN: a token's input; cumulative probabilities per row
  Rng train_rng_;
  std::vector<Matrix<double>> held_x_, held_t_;
  Matrix<double> t_;                        // the current targets
  const Matrix<double>* current_ = nullptr;  // t_ or one of held_t_
  mutable double loss_ = 0;
  mutable std::size_t correct_ = 0;
};

/// The learning rate of step s (0-based) of `steps` under train.schedule (proto: Schedule).
double scheduled_lr(const v1::Train& train, std::uint32_t s);

}  // namespace gradsim
