// The shipped transformer specs: post-LN against pre-LN (Xiong et al. 2020), DeepNorm at 200
// blocks in float32 and float16 (Wang et al. 2022), and rank collapse in attention-only stacks
// (Dong et al. 2021).
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "run_sims.hpp"

namespace gradsim {
namespace {

std::vector<double> weight_grads(const v1::SimTrace& t) {
  std::vector<double> w;
  for (const auto& l : t.layers()) w.push_back(l.weight_grad_norm());
  return w;
}

double spread(const std::vector<double>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *hi / *lo;
}

// sims/transformer_ln.textproto: POST_LN, PRE_LN x depth 6, 12, 24, 48 x 2 seeds. Xiong et al.'s
// Theorem 1: the last layer's parameter gradient is independent of depth in post-LN and falls as
// 1/sqrt(L) in pre-LN. A wrong theory fails: a pre-LN gradient that did not shrink (ratio 1), or
// shrank as 1/L (0.125), lies outside 1/sqrt(8) +- 25 %.
TEST(TransformerSims, PostLnAgainstPreLnAsXiongEtAlReport) {
  const auto ts = test::run_sim("transformer_ln.textproto");
  ASSERT_EQ(ts.size(), 16u);
  std::map<std::pair<int, std::uint32_t>, std::vector<std::vector<double>>> w;  // (arrangement, depth) -> per seed
  for (const auto& t : ts)
    w[{t.spec().network().transformer().arrangement(), t.spec().network().depth()}].push_back(weight_grads(t));
  auto last = [&](int a, std::uint32_t depth) {  // the last sub-layer's, mean over the seeds
    double s = 0;
    for (const auto& v : w[{a, depth}]) s += v.back() / 2;
    return s;
  };
  auto first = [&](int a, std::uint32_t depth) {
    double s = 0;
    for (const auto& v : w[{a, depth}]) s += v.front() / 2;
    return s;
  };
  const int post = v1::Transformer::POST_LN, pre = v1::Transformer::PRE_LN;
  std::vector<double> post_last;
  for (std::uint32_t depth : {6u, 12u, 24u, 48u}) post_last.push_back(last(post, depth));
  EXPECT_LT(spread(post_last), 1.3) << "post-LN's last-layer gradient should not depend on depth";
  EXPECT_NEAR(last(pre, 48) / last(pre, 6), 1 / std::sqrt(8.0), 0.25 / std::sqrt(8.0));
  EXPECT_GT(first(pre, 48), last(pre, 48));  // pre-LN's do not grow towards the output
  // post-LN's gradients, relative to pre-LN's, grow towards the output: about sqrt(L) times
  EXPECT_GT(last(post, 48) / last(pre, 48), 3 * first(post, 48) / first(pre, 48));
  for (const auto& t : ts)  // post-LN collapses the tokens to rank one from 24 blocks on; pre-LN does not
    if (t.spec().network().depth() >= 24)
      EXPECT_EQ(t.layers(t.layers_size() - 1).rank_collapse() < 0.01,
                t.spec().network().transformer().arrangement() == post)
          << t.spec().label();
}

// sims/deepnorm.textproto: POST_LN, DEEPNORM, PRE_LN x float32, float16 x 3 seeds, 200 blocks.
TEST(TransformerSims, DeepNormKeepsHundredsOfBlocksLevel) {
  GRADSIM_SKIP_IF_SANITIZED("18 networks of 400 sub-layers with full statistics take minutes under the sanitizers; "
                              "DEEPNORM runs there in Transformer.EveryArrangementMatchesFiniteDifferences");
  const auto ts = test::run_sim("deepnorm.textproto");
  ASSERT_EQ(ts.size(), 18u);
  auto at = [&](int arrangement, int format, int seed) -> const v1::SimTrace& { return ts[std::size_t((arrangement * 2 + format) * 3 + seed)]; };
  enum { post, deepnorm, pre };
  std::vector<double> post_first;
  for (int seed = 0; seed < 3; ++seed) {
    for (int format = 0; format < 2; ++format) {
      EXPECT_LT(spread(weight_grads(at(deepnorm, format, seed))), 2.0);  // 1.5-1.6 measured
      EXPECT_GT(spread(weight_grads(at(post, format, seed))), 30.0);     // 70-180 measured
      EXPECT_GT(at(deepnorm, format, seed).layers(399).rank_collapse(), 0.8);
      EXPECT_LT(at(post, format, seed).layers(399).rank_collapse(), 0.01);
    }
    post_first.push_back(weight_grads(at(post, 0, seed)).front());
    // float16 against float32, sub-layer by sub-layer: DeepNorm within 1 %
    const auto w32 = weight_grads(at(deepnorm, 0, seed)), w16 = weight_grads(at(deepnorm, 1, seed));
    for (std::size_t i = 0; i < w32.size(); ++i) EXPECT_NEAR(w16[i] / w32[i], 1, 0.01) << "sub-layer " << i;
  }
  EXPECT_GT(spread(post_first), 5.0);  // post-LN's first sub-layer differs 30x between seeds
  // The largest backward element bounds the loss scale float16 tolerates (65504 / it): DeepNorm's
  // is 7-12x smaller than post-LN's (measured), so it tolerates that much larger a scale.
  auto largest = [](const v1::SimTrace& t) {
    double m = 0;
    for (const auto& l : t.layers())
      m = std::max({m, l.grad().max_abs(), l.act_grad().max_abs(), l.weight_grad().max_abs(), l.bias_grad().max_abs()});
    return m;
  };
  for (int seed = 0; seed < 3; ++seed) EXPECT_GT(largest(at(post, 0, seed)), 5 * largest(at(deepnorm, 0, seed)));
}

// sims/rank_collapse.textproto: PLAIN, RESIDUAL (scale 1), RESIDUAL (scale 1/8) x 2 seeds, 64 blocks.
TEST(TransformerSims, RankCollapsesWithoutShortcutsOnly) {
  const auto ts = test::run_sim("rank_collapse.textproto");
  ASSERT_EQ(ts.size(), 6u);
  for (int seed = 0; seed < 2; ++seed) {
    const auto &plain = ts[std::size_t(seed)], &unit = ts[std::size_t(2 + seed)], &scaled = ts[std::size_t(4 + seed)];
    auto rc = [](const v1::SimTrace& t, int block) { return t.layers(block).rank_collapse(); };
    EXPECT_LT(rc(plain, 3), 1e-10);                                    // ~0 within four blocks
    EXPECT_LT(rc(plain, 1), 0.2 * rc(plain, 0));                       // and fast from the first
    EXPECT_GT(rc(unit, 3), 0.6);                                       // unit shortcuts: gradual
    EXPECT_LT(rc(unit, 3), rc(unit, 0));
    EXPECT_LT(rc(unit, 63), 0.01);                                     // but gone by block 64
    for (int b = 0; b < 64; ++b) EXPECT_GT(rc(scaled, b), 0.85) << b;  // 1/sqrt(depth): bounded away from 0
  }
}

// sims/transformer_warmup.textproto: next-token prediction, 12 blocks, Adam at 1e-3: post-LN
// without warm-up, post-LN with 100 warm-up steps, pre-LN without.
TEST(TransformerSims, PostLnNeedsWarmUpAndPreLnDoesNot) {
  GRADSIM_SKIP_IF_SANITIZED("three 300-step transformer trainings take minutes under the sanitizers; Training.* and "
                              "Transformer.* run the code there");
  const auto ts = test::run_sim("transformer_warmup.textproto");
  ASSERT_EQ(ts.size(), 3u);
  EXPECT_EQ(ts[0].verdict(), v1::DID_NOT_TRAIN);
  EXPECT_EQ(ts[1].verdict(), v1::TRAINED);
  EXPECT_EQ(ts[2].verdict(), v1::TRAINED);
  const auto score = [](const v1::SimTrace& t) { return t.evaluations(t.evaluations_size() - 1).score(); };
  EXPECT_GT(score(ts[0]), 0.9);                  // stalled at the context-free predictor
  EXPECT_LT(score(ts[2]), score(ts[1]) + 0.02);  // pre-LN without warm-up as good as post-LN with
  for (const auto& t : ts) EXPECT_GT(t.evaluations(0).score(), 0.95);  // all start from guessing
}

}  // namespace
}  // namespace gradsim
