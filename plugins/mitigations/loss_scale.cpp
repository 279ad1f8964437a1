// loss_scale: mixed-precision loss scaling. The engine multiplies dL/dy by the scale before
// the backward pass (so small gradients do not underflow in a low format) and divides the
// parameter gradients by it afterwards.
//   static:  a constant scale.
//   dynamic: like torch.cuda.amp.GradScaler: on a step whose gradients overflow, multiply the
//            scale by backoff and skip the step; after `interval` clean steps in a row,
//            multiply it by growth. Every change is recorded as an event.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class LossScale final : public gradsim::Mitigation<T> {
 public:
  static constexpr const char* help = "multiply dL/dy by a scale (static, or dynamic: back off and skip on overflow)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::choice("mode", "dynamic", {"static", "dynamic"}, "constant or adaptive scale"),
            gradsim::ParamDecl::real("scale", 65536.0, 1e-30, 1e30, "the (initial) scale"),
            gradsim::ParamDecl::real("growth", 2.0, 1.0, 1e6, "dynamic: factor after `interval` clean steps"),
            gradsim::ParamDecl::real("backoff", 0.5, 1e-6, 1.0, "dynamic: factor on overflow"),
            gradsim::ParamDecl::integer("interval", 2000, 1, 1000000000, "dynamic: clean steps before growing")};
  }
  explicit LossScale(const gradsim::Params& p)
      : dynamic_(p.text("mode") == "dynamic"), scale_(p.number("scale")), growth_(p.number("growth")),
        backoff_(p.number("backoff")), interval_(p.integer("interval")) {}

  double loss_scale() override { return scale_; }

  bool step_done(bool overflow) override {
    if (!dynamic_) return true;
    const double before = scale_;
    if (overflow) {
      scale_ *= backoff_, clean_ = 0;
      this->record({"loss_scale_backoff_skip_step", -1, before, scale_, true});
      return false;
    }
    if (++clean_ >= interval_) {
      scale_ *= growth_, clean_ = 0;
      this->record({"loss_scale_growth", -1, before, scale_, true});
    }
    return true;
  }

 private:
  bool dynamic_;
  double scale_, growth_, backoff_;
  long interval_, clean_ = 0;
};

}  // namespace

GRADSIM_MITIGATION("loss_scale", LossScale)
