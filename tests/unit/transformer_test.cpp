// Transformers: attention's backward (with and without the causal mask, one and two heads)
// against central differences, every block arrangement's whole network likewise, and the two
// numbers the traces add: the rank-collapse measure and the attention entropy.
#include <gmock/gmock.h>

#include <cmath>

#include "simulate.hpp"
#include "check/gradcheck.hpp"
#include "network/engine.hpp"
#include "spec/spec.hpp"

namespace gradsim {
namespace {

using test::resolved;

std::string transformer(const std::string& arrangement, const std::string& more = "", int depth = 2) {
  return "base { network { depth: " + std::to_string(depth) + " width: 4 transformer { arrangement: " + arrangement +
         " tokens: 3 heads: 2 mlp_ratio: 2 " + more + " } } batch: 2 loss { name: \"mse\" } init { name: \"xavier\" } }";
}

TEST(Transformer, AttentionGradientsMatchFiniteDifferences) {
  const auto& info = *test::builtins().get(Kind::layer, "attention").info;
  Rng rng(3);
  for (bool causal : {false, true})
    for (double heads : {1.0, 2.0}) {
      Params p = defaults_of(info.params);
      p.set("causal", {double(causal), ""}), p.set("heads", {heads, ""});
      const auto layer = info.make<double>().layer(LayerArgs{4, 4, p, 4});
      EXPECT_TRUE(layer->mixes_rows());
      for (const auto& r : check_layer(*layer, 8, 4, 4, rng))  // two sequences of 4 tokens
        EXPECT_TRUE(r.pass()) << r.what << ": " << r.error << (causal ? " causal" : "") << " heads " << heads;
    }
}

// The whole network, every weight (norms' gamma and beta, ReZero's gate included) and dL/dx.
TEST(Transformer, EveryArrangementMatchesFiniteDifferences) {
  for (const char* arrangement : {"PLAIN", "RESIDUAL", "POST_LN", "PRE_LN", "DEEPNORM", "REZERO"})
    for (const char* more : {"", "causal: true attention_only: true"}) {
      Engine<double> engine(resolved(transformer(arrangement, more)), test::builtins());
      engine.forward();
      engine.backward();
      for (auto& p : engine.weights()) {
        const Matrix<double> analytic = *p.grad;
        EXPECT_LT(relative_error(analytic, numeric_gradient([&] { return engine.forward(); }, *p.value)), 1e-6)
            << arrangement << " " << more << ": " << p.name << " of block " << p.block;
      }
      const Matrix<double> dx = engine.input_grad();
      EXPECT_LT(relative_error(dx, numeric_gradient([&] { return engine.forward(); }, engine.input())), 1e-6)
          << arrangement << " " << more;
    }
}

// The next-token task's loss (cross-entropy at every row, through the read-out) against central
// differences, and its batches: whole sequences, each row's target the next token.
TEST(Transformer, NextTokenTaskMatchesFiniteDifferences) {
  Engine<double> engine(resolved("base { network { depth: 1 width: 4 transformer { arrangement: PRE_LN tokens: 3 "
                                 "heads: 2 causal: true } } batch: 2 train { steps: 1 task { kind: NEXT_TOKEN outputs: 5 } } }"),
                        test::builtins());
  ASSERT_EQ(engine.input().rows(), 6);  // 2 sequences of 3 tokens
  engine.forward();
  engine.backward();
  for (auto& p : engine.weights()) {
    const Matrix<double> analytic = *p.grad;
    EXPECT_LT(relative_error(analytic, numeric_gradient([&] { return engine.forward(); }, *p.value)), 1e-6)
        << p.name << " of block " << p.block;
  }
}

v1::SimTrace run(const std::string& text) { return test::simulated(resolved(text)); }

double measure(const v1::LayerTrace& l, const std::string& name) {
  for (const auto& m : l.measures())
    if (m.name() == name) return m.value();
  return NAN;
}

// Query and key weights 1000 times too small: every score is ~0, so attention is uniform:
// entropy ln 8 per query, and with the causal mask the mean over queries of ln(i + 1).
// Uniform attention replaces every token by the mean: the output of a PLAIN attention-only
// block has rank one within its sequence (collapse measure 0), its input does not (about 1).
TEST(Transformer, EntropyAndRankCollapseMeasureWhatTheySay) {
  for (bool causal : {false, true}) {
    const auto t = run(std::string("base { network { depth: 1 width: 16 transformer { arrangement: PLAIN tokens: 8 "
                                   "attention_only: true causal: ") +
                       (causal ? "true" : "false") + " } } batch: 4 init { name: \"gaussian\" params { name: \"gain\" number: 0.001 } } }");
    ASSERT_EQ(t.layers_size(), 1);
    double want = 0;
    for (int i = 1; i <= 8; ++i) want += std::log(causal ? i : 8) / 8;
    EXPECT_NEAR(measure(t.layers(0), "attention_entropy"), want, 1e-5) << causal;
    if (!causal) EXPECT_LT(t.layers(0).rank_collapse(), 1e-6);
    else EXPECT_GT(t.layers(0).rank_collapse(), 0.1);  // token i averages tokens 0..i: not all alike
  }
  const auto mlp = run(transformer("RESIDUAL"));  // the MLP's block reports no entropy
  EXPECT_FALSE(std::isnan(measure(mlp.layers(0), "attention_entropy")));
  EXPECT_EQ(mlp.layers(1).measures_size(), 0);
  EXPECT_GT(mlp.layers(1).rank_collapse(), 0.1);
}

}  // namespace
}  // namespace gradsim
