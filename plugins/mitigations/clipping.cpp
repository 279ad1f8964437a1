// Gradient clipping, three ways, on the parameter gradients an optimiser would use and,
// with flowing = true, also on the gradient flowing backwards at every block boundary:
//   clip_grad_norm:        g *= min(1, max / ||all parameter gradients||)   (global norm)
//   clip_layer_grad_norm:  the same, block by block
//   clip_grad_value:       every element clamped to [-max, max]
// Each clip records the norm (or largest magnitude) before and after, and whether it fired.
#include <algorithm>
#include <map>
#include <gradsim/gradsim.hpp>

namespace {

enum class Mode { global_norm, layer_norm, value };

template <class T, Mode M>
class Clip : public gradsim::Mitigation<T> {
 public:
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::real("max", 1.0, 1e-30, 1e30,
                                     M == Mode::value ? "largest allowed magnitude" : "largest allowed norm"),
            gradsim::ParamDecl::boolean("flowing", false, "also clip dL/da at each block boundary")};
  }
  explicit Clip(const gradsim::Params& p) : max_(p.number("max")), flowing_(p.flag("flowing")) {}

  void backward_boundary(std::size_t block, gradsim::Matrix<T>& da) override {
    if (!flowing_) return;
    std::vector<gradsim::Matrix<T>*> one{&da};
    clip(one, long(block), "flowing_grad");
  }

  void param_grads(std::vector<gradsim::WeightRef<T>>& grads) override {
    if constexpr (M == Mode::global_norm) {
      std::vector<gradsim::Matrix<T>*> all;
      for (auto& g : grads) all.push_back(g.grad);
      clip(all, -1, "param_grad");
    } else {
      std::map<long, std::vector<gradsim::Matrix<T>*>> by_block;
      for (auto& g : grads) by_block[g.block].push_back(g.grad);
      for (auto& [block, group] : by_block) clip(group, block, "param_grad");
    }
  }

 private:
  // The size clipping looks at: the joint norm, or the largest magnitude for value clipping.
  static double size_of(const std::vector<gradsim::Matrix<T>*>& group) {
    double s = 0;
    for (auto* m : group) {
      const double x = M == Mode::value ? gradsim::max_abs_f64(*m) : gradsim::norm_f64(*m);
      s = M == Mode::value ? std::max(s, x) : s + x * x;
    }
    return M == Mode::value ? s : std::sqrt(s);
  }

  void clip(std::vector<gradsim::Matrix<T>*>& group, long block, const std::string& what) {
    const double before = size_of(group);
    const bool fire = before > max_;  // false for NaN: clipping cannot repair a NaN
    if (fire) {
      for (auto* m : group) {
        if constexpr (M == Mode::value) *m = m->cwiseMax(T(-max_)).cwiseMin(T(max_));
        else *m *= T(max_ / before);
      }
    }
    this->record({what + (M == Mode::value ? "_value" : "_norm"), block, before, fire ? size_of(group) : before, fire});
  }

  double max_;
  bool flowing_;
};

template <class T>
struct ClipGradNorm : Clip<T, Mode::global_norm> {
  static constexpr const char* help = "scale all parameter gradients so that their joint norm is at most max";
  using Clip<T, Mode::global_norm>::Clip;
};
template <class T>
struct ClipLayerGradNorm : Clip<T, Mode::layer_norm> {
  static constexpr const char* help = "scale each block's parameter gradients to norm at most max";
  using Clip<T, Mode::layer_norm>::Clip;
};
template <class T>
struct ClipGradValue : Clip<T, Mode::value> {
  static constexpr const char* help = "clamp every parameter gradient element to [-max, max]";
  using Clip<T, Mode::value>::Clip;
};

}  // namespace

GRADSIM_MITIGATION("clip_grad_norm", ClipGradNorm)
GRADSIM_MITIGATION("clip_layer_grad_norm", ClipLayerGradNorm)
GRADSIM_MITIGATION("clip_grad_value", ClipGradValue)
