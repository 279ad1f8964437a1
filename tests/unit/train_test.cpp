// Training: the optimisers' update rules (by hand, and Adam against an independent reference),
// the learning-rate schedule, the tasks' losses against finite differences, and whole runs: a
// student of its teacher's architecture learns it, clusters are classified, a huge learning
// rate diverges, evaluations come when asked.
#include <gmock/gmock.h>

#include <cmath>

#include "simulate.hpp"
#include "check/gradcheck.hpp"
#include "error.hpp"
#include "network/engine.hpp"
#include "spec/spec.hpp"
#include "train/task.hpp"

namespace gradsim {
namespace {

std::unique_ptr<Optimizer<double>> optimizer(const std::string& name, std::vector<std::pair<std::string, double>> set = {}) {
  const auto& info = *test::builtins().get(Kind::optimizer, name).info;
  Params p = defaults_of(info.params);
  for (const auto& [k, v] : set) p.set(k, {v, ""});
  return info.make<double>().optimizer(p);
}

Matrix<double> row(double a, double b) {
  Matrix<double> m(1, 2);
  m << a, b;
  return m;
}

// Two steps of each SGD variant from w = (1, -2) with g = (0.5, 0.25) both times, lr 0.1.
TEST(Optimizers, SgdStepsAsComputedByHand) {
  const Matrix<double> g = row(0.5, 0.25);
  auto two_steps = [&](Optimizer<double>& opt) {
    Matrix<double> w = row(1, -2);
    std::vector<Matrix<double>> state(opt.state_slots(), Matrix<double>::Zero(1, 2));
    opt.step(w, g, state.data(), {0.1, 1});
    const Matrix<double> first = w;
    opt.step(w, g, state.data(), {0.1, 2});
    return std::pair{first, w};
  };
  auto plain = two_steps(*optimizer("sgd"));  // w - 0.1 g, twice
  EXPECT_LT((plain.first - row(0.95, -2.025)).norm(), 1e-15);
  EXPECT_LT((plain.second - row(0.90, -2.05)).norm(), 1e-15);
  // d = g + 0.1 w: (0.6, 0.05); v = d; w = (0.94, -2.005). Then d = (0.594, 0.0495),
  // v = 0.9 (0.6, 0.05) + d = (1.134, 0.0945), w = (0.8266, -2.01445).
  auto momentum = two_steps(*optimizer("sgd", {{"momentum", 0.9}, {"weight_decay", 0.1}}));
  EXPECT_LT((momentum.first - row(0.94, -2.005)).norm(), 1e-14);
  EXPECT_LT((momentum.second - row(0.8266, -2.01445)).norm(), 1e-14);
  // Nesterov: the step is d + 0.9 v = 1.9 d at first: w = (1, -2) - 0.19 (0.6, 0.05).
  auto nesterov = two_steps(*optimizer("sgd", {{"momentum", 0.9}, {"weight_decay", 0.1}, {"nesterov", 1}}));
  EXPECT_LT((nesterov.first - row(0.886, -2.0095)).norm(), 1e-14);
}

// Adam against Kingma & Ba's "efficient" form of the same rule (their Algorithm 1, last
// paragraph of section 2): alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t), w -= alpha_t m / (sqrt(v)
// + eps sqrt(1 - b2^t)), on 20 steps of a quadratic whose gradient changes with w. AdamW: the
// weight decays by lr * weight_decay * w first.
TEST(Optimizers, AdamFollowsAnIndependentReference) {
  for (bool decoupled : {false, true}) {
    const double lr = 0.05, b1 = 0.8, b2 = 0.99, eps = 1e-3, wd = 0.2;
    auto opt = optimizer("adam", {{"beta1", b1}, {"beta2", b2}, {"eps", eps}, {"weight_decay", wd}, {"decoupled", decoupled}});
    ASSERT_EQ(opt->state_slots(), 2u);
    Matrix<double> w(2, 3), a(2, 3);
    w << 1, -2, 0.5, 3, -0.1, 0.01;
    a << 1, 0.5, 2, 0.1, 4, 1;
    Matrix<double> ref = w, m = Matrix<double>::Zero(2, 3), v = m;
    std::vector<Matrix<double>> state(2, Matrix<double>::Zero(2, 3));
    for (int t = 1; t <= 20; ++t) {
      const Matrix<double> g = (a.array() * w.array()).matrix();  // L = 1/2 sum a w^2
      opt->step(w, g, state.data(), {lr, std::uint64_t(t)});
      Matrix<double> gr = (a.array() * ref.array()).matrix();
      if (decoupled) ref *= 1 - lr * wd;
      else gr += wd * ref;
      m = b1 * m + (1 - b1) * gr;
      v = b2 * v + (1 - b2) * gr.cwiseAbs2();
      const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
      ref.array() -= alpha * m.array() / (v.array().sqrt() + eps * std::sqrt(1 - std::pow(b2, t)));
      ASSERT_LT((w - ref).norm(), 1e-13 * ref.norm()) << "step " << t << (decoupled ? " AdamW" : " Adam");
    }
  }
}

TEST(Optimizers, ScheduleWarmsUpAndDecays) {
  v1::Train train;
  train.set_steps(10), train.set_lr(2);
  train.mutable_schedule()->set_kind(v1::Schedule::COSINE);
  train.mutable_schedule()->set_warmup_steps(4);
  train.mutable_schedule()->set_final_fraction(0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(train, 0), 0.5);  // 2 * 1/4
  EXPECT_DOUBLE_EQ(scheduled_lr(train, 2), 1.5);  // 2 * 3/4
  EXPECT_DOUBLE_EQ(scheduled_lr(train, 4), 2);    // p = 0
  EXPECT_DOUBLE_EQ(scheduled_lr(train, 7), 2 * (0.1 + 0.9 * 0.5));  // p = 1/2: cos = 0
  train.mutable_schedule()->set_kind(v1::Schedule::CONSTANT), train.mutable_schedule()->set_final_fraction(0);
  EXPECT_DOUBLE_EQ(scheduled_lr(train, 9), 2);
}

using test::resolved;
v1::SimTrace run(const std::string& text) { return test::simulated(resolved(text)); }

// dL/dw and dL/dx of a whole network under each task's loss (read-out included) against
// central differences.
TEST(Training, TaskLossesMatchFiniteDifferences) {
  for (const char* task : {"kind: TEACHER outputs: 3 noise: 0.1", "kind: CLUSTERS outputs: 4"}) {
    Engine<double> engine(resolved(std::string("base { network { depth: 3 width: 5 activation { name: \"tanh\" } } "
                                               "batch: 6 train { steps: 1 task { ") +
                                   task + " } } }"),
                          test::builtins());
    engine.forward();
    engine.backward();
    ASSERT_EQ(engine.weights().size(), 8u) << task;  // 3 blocks and the read-out, W and b each
    for (auto& p : engine.weights()) {
      const Matrix<double> analytic = *p.grad;
      EXPECT_LT(relative_error(analytic, numeric_gradient([&] { return engine.forward(); }, *p.value)), 1e-6)
          << task << ": " << p.name << " of block " << p.block;
    }
    const Matrix<double> dx = engine.input_grad();
    EXPECT_LT(relative_error(dx, numeric_gradient([&] { return engine.forward(); }, engine.input())), 1e-6) << task;
  }
}

// A student with its teacher's architecture (depth 2, width 32, tanh; the teacher's weights
// drawn at gain 1, the student's at gain 1.2) learns it: the held-out error falls from about
// the targets' variance to a few percent of it.
TEST(Training, StudentOfItsTeachersArchitectureLearnsIt) {
  const std::string spec = R"(seed: 5 base {
    network { depth: 2 width: 32 activation { name: "tanh" } }
    init { params { name: "gain" number: 1.2 } }
    batch: 32
    train { steps: 800 lr: 0.01 optimizer { name: "adam" } schedule { kind: COSINE } task { kind: TEACHER }
            eval_every: 100 } })";
  const auto t = run(spec);
  ASSERT_EQ(t.evaluations_size(), 9);
  EXPECT_GT(t.evaluations(0).score(), 0.5);
  EXPECT_LT(t.evaluations(8).score(), 0.05);  // 0.033 measured
  EXPECT_EQ(t.verdict(), v1::TRAINED);
  const auto sim = resolved(spec);
  EXPECT_EQ(sim.train().task().teacher().depth(), 2u);  // the student's architecture
  EXPECT_EQ(sim.train().task().teacher().activation().name(), "tanh");
  EXPECT_EQ(sim.train().task().teacher_init().name(), "gaussian");
}

// The same network at learning rate 1000: the weights blow up to inf and NaN, and the verdict
// says diverged, not "did not train".
TEST(Training, HugeLearningRateDiverges) {
  const auto t = run(R"(base {
    network { depth: 2 width: 32 activation { name: "tanh" } } batch: 32
    train { steps: 50 lr: 1000 task { kind: TEACHER } } })");
  EXPECT_EQ(t.verdict(), v1::DIVERGED);
  EXPECT_FALSE(std::isfinite(t.evaluations(t.evaluations_size() - 1).test_loss()));
}

// Four Gaussian clusters, 6 apart, in 16 dimensions: a small relu network classifies the
// held-out points almost perfectly (chance: 1/4), and its cross-entropy falls far below ln 4.
TEST(Training, ClustersAreClassified) {
  const auto t = run(R"(seed: 2 base {
    network { depth: 3 width: 16 activation { name: "relu" } } batch: 32
    init { name: "he" }
    train { steps: 300 lr: 0.01 optimizer { name: "adam" } task { kind: CLUSTERS outputs: 4 separation: 6 } } })");
  const auto& first = t.evaluations(0);
  const auto& last = t.evaluations(t.evaluations_size() - 1);
  EXPECT_LT(first.test_accuracy(), 0.6);
  EXPECT_GT(last.test_accuracy(), 0.95);
  EXPECT_GT(last.train_accuracy(), 0.95);
  EXPECT_LT(last.score(), 0.1);
  EXPECT_EQ(t.verdict(), v1::TRAINED);
}

// Evaluations at step 0, every eval_every steps and after the last; each with the learning
// rate of its last step and, after step 0, one update ratio per block; the learning rate of
// every step in the step records. An LSTM learns to report its initial state's teacher-given
// function 5 steps later (score 0.045 measured, from about 1).
TEST(Training, EvaluationsComeWhenAsked) {
  const auto t = run(R"(base {
    network { depth: 3 width: 8 activation { name: "tanh" } } batch: 16
    train { steps: 10 lr: 0.1 eval_every: 4 schedule { kind: COSINE warmup_steps: 2 } task { kind: TEACHER outputs: 2 } } })");
  ASSERT_EQ(t.evaluations_size(), 4);
  const std::uint32_t at[] = {0, 4, 8, 10};
  for (int k = 0; k < 4; ++k) {
    const auto& e = t.evaluations(k);
    EXPECT_EQ(e.step(), at[k]);
    EXPECT_EQ(e.grad_norm_size(), 3);
    EXPECT_EQ(e.update_ratio_size(), k ? 3 : 0);
    for (double r : e.update_ratio()) EXPECT_GT(r, 0);
  }
  ASSERT_EQ(t.steps_size(), 10);
  EXPECT_DOUBLE_EQ(t.steps(0).lr(), 0.05);
  EXPECT_DOUBLE_EQ(t.steps(1).lr(), 0.1);
  EXPECT_DOUBLE_EQ(t.evaluations(3).lr(), t.steps(9).lr());
  const auto rnn = run(R"(base {
    network { depth: 5 width: 8 activation { name: "tanh" } recurrent { cell { name: "lstm" } } } batch: 16
    train { steps: 400 lr: 0.01 optimizer { name: "adam" } task { kind: TEACHER } } })");
  EXPECT_GT(rnn.evaluations(0).score(), 0.5);
  EXPECT_LT(rnn.evaluations(rnn.evaluations_size() - 1).score(), 0.1);
  EXPECT_EQ(rnn.verdict(), v1::TRAINED);
}

// float16 with dynamic loss scaling from 1e12 (far past float16's 65504): the first steps overflow and are
// skipped, the scale backs off until the gradient fits, and training goes on. The evaluations
// count the skipped steps and the non-finite gradient elements; a skipped step leaves every
// weight as it was, so the held-out loss after only skipped steps is the initial one.
TEST(Training, SkippedStepsUnderLossScaling) {
  const auto t = run(R"(base {
    network { depth: 3 width: 8 activation { name: "tanh" } } batch: 16 dtype: FLOAT16
    mitigations { name: "loss_scale" params { name: "scale" number: 1e12 } }
    train { steps: 200 lr: 0.01 eval_every: 50 optimizer { name: "adam" } task { kind: TEACHER } } })");
  std::uint32_t skipped = 0, first_taken = 0;
  for (const auto& s : t.steps()) {
    skipped += s.skipped();
    if (!s.skipped() && !first_taken) first_taken = s.step();
  }
  ASSERT_GT(skipped, 3u);
  EXPECT_LT(skipped, 50u);
  std::uint32_t counted = 0;
  for (const auto& e : t.evaluations()) counted += e.skipped();
  EXPECT_EQ(counted, skipped);
  EXPECT_GT(t.evaluations(0).nonfinite() + t.evaluations(1).nonfinite(), 0u);
  EXPECT_EQ(t.verdict(), v1::TRAINED);
  // The same run stopped after the skipped steps: held-out loss as at initialisation.
  const auto early = run(R"(base {
    network { depth: 3 width: 8 activation { name: "tanh" } } batch: 16 dtype: FLOAT16
    mitigations { name: "loss_scale" params { name: "scale" number: 1e12 } }
    train { steps: )" + std::to_string(first_taken) + R"( lr: 0.01 optimizer { name: "adam" } task { kind: TEACHER } } })");
  EXPECT_EQ(early.evaluations(early.evaluations_size() - 1).test_loss(), early.evaluations(0).test_loss());
}

TEST(Training, RunsAreReproducible) {
  const std::string spec = R"(base {
    network { depth: 3 width: 8 activation { name: "tanh" } } batch: 16 dtype: FLOAT16
    train { steps: 20 optimizer { name: "adam" } task { kind: CLUSTERS } } })";
  EXPECT_EQ(run(spec).SerializeAsString(), run(spec).SerializeAsString());
}

}  // namespace
}  // namespace gradsim
