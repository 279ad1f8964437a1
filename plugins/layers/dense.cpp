// dense: the fully connected layer h = x W + b.
#include <gradsim/gradsim.hpp>

namespace {

template <class T>
class Dense final : public gradsim::Layer<T> {
 public:
  static constexpr const char* help = "fully connected: h = x W + b (W: fan_in x fan_out)";
  static std::vector<gradsim::ParamDecl> param_decls() {
    return {gradsim::ParamDecl::boolean("bias", true, "add a bias vector b")};
  }

  explicit Dense(const gradsim::LayerArgs& a)
      : fan_in_(a.fan_in), fan_out_(a.fan_out), bias_(a.params.flag("bias")),
        W_(gradsim::Matrix<T>::Zero(a.fan_in, a.fan_out)), dW_(W_),
        b_(gradsim::Matrix<T>::Zero(1, bias_ ? a.fan_out : 0)), db_(b_) {}

  void forward(const gradsim::Matrix<T>& x, gradsim::Matrix<T>& h) override {
    x_ = &x;  // the engine keeps x alive until backward()
    gradsim::matmul(x, W_, h);
    if (bias_) h.rowwise() += b_.row(0);
  }

  // h = x W + b  =>  dW += x^T dh,  db += sum over rows of dh,  dx = dh W^T.
  void backward(const gradsim::Matrix<T>& dh, gradsim::Matrix<T>& dx) override {
    gradsim::matmul(x_->transpose(), dh, dW_, /*accumulate=*/true);
    if (bias_) db_ += dh.colwise().sum();
    gradsim::matmul(dh, W_.transpose(), dx);
  }

  std::vector<gradsim::ParamRef<T>> params() override {
    std::vector<gradsim::ParamRef<T>> p{
        {"W", gradsim::ParamRole::weight, fan_in_, fan_out_, &W_, &dW_}};
    if (bias_) p.push_back({"b", gradsim::ParamRole::bias, fan_in_, fan_out_, &b_, &db_});
    return p;
  }

 private:
  std::size_t fan_in_, fan_out_;
  bool bias_;
  gradsim::Matrix<T> W_, dW_, b_, db_;
  const gradsim::Matrix<T>* x_ = nullptr;
};

}  // namespace

GRADSIM_LAYER("dense", Dense)
