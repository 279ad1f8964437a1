// PluginInfo: what one plugin library hands to gradsim for each plugin it contains.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "activation.hpp"
#include "cell.hpp"
#include "initializer.hpp"
#include "layer.hpp"
#include "loss.hpp"
#include "mitigation.hpp"
#include "optimizer.hpp"
#include "params.hpp"

namespace gradsim {

enum class Kind { layer, activation, initializer, loss, mitigation, cell, optimizer };
inline constexpr int kKindCount = int(Kind::optimizer) + 1;  // keep it the last

inline const char* kind_name(Kind k) {
  constexpr const char* names[] = {"layer", "activation", "initializer", "loss", "mitigation", "cell", "optimizer"};
  return names[int(k)];
}

/// Makers of one plugin's objects for one scalar type T; only the one of the plugin's kind is
/// set.
template <class T>
struct Makers {
  std::function<std::unique_ptr<Layer<T>>(const LayerArgs&)> layer;
  std::function<std::unique_ptr<Activation<T>>(const Params&)> activation;
  std::function<std::unique_ptr<Loss<T>>(const Params&)> loss;
  std::function<std::unique_ptr<Mitigation<T>>(const Params&)> mitigation;
  std::function<std::unique_ptr<Cell<T>>(const CellArgs<T>&)> cell;
  std::function<std::unique_ptr<Optimizer<T>>(const Params&)> optimizer;
};

/// One plugin: its identity, its declared parameters and its factories for every format.
struct PluginInfo {
  Kind kind;
  std::string name;     ///< lowercase, as written in specs
  std::string help;     ///< one line
  std::string version;  ///< the plugin library's version
  std::vector<ParamDecl> params;
  /// Initialisers work in float64 only (see Initializer).
  std::function<std::unique_ptr<Initializer>(const Params&)> initializer;
  std::tuple<Makers<double>, Makers<float>, Makers<bfloat16>, Makers<float16>> makers;

  template <class T>
  const Makers<T>& make() const { return std::get<Makers<T>>(makers); }
};

}  // namespace gradsim
