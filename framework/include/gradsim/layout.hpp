// The layouts a plugin and gradsim must agree on: the size and alignment of every type that
// crosses the boundary, computed where the SDK is compiled and written into the ABI stamp.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi.hpp"
#include "plugin.hpp"

namespace gradsim::detail {

/// The types whose layout the stamp records, in stamp order (GRADSIM_LAYOUT_TYPES of them).
inline constexpr const char* layout_names[GRADSIM_LAYOUT_TYPES] = {
    "Matrix<double>", "Matrix<float>", "Matrix<bfloat16>", "Matrix<float16>", "std::string",
    "std::vector<double>", "std::function<void()>", "std::unique_ptr<Layer<double>>", "Params",
    "ParamDecl", "PluginInfo", "Makers<double>", "LayerArgs", "WeightDecl", "Weight<double>",
    "Ctx<double>", "Rng", "Elementwise<double>", "HookEvent", "Shortcut", "WeightRef<double>",
    "Variances", "std::optional<Variances>", "Product"};

template <class... Ts>
constexpr void put_layouts(std::uint32_t* out) {
  ((*out++ = std::uint32_t(sizeof(Ts)), *out++ = std::uint32_t(alignof(Ts))), ...);
}

template <std::size_t N>
constexpr void put_text(char (&out)[N], const char* text) {
  std::size_t i = 0;
  for (; text[i] && i + 1 < N; ++i) out[i] = text[i];
  for (; i < N; ++i) out[i] = 0;
}

/// The stamp of whatever is compiled with this SDK: the plugin's (GRADSIM_PLUGIN_ENTRY) and,
/// compiled into gradsim, the host's, which the loader compares field by field.
constexpr gradsim_abi_stamp make_stamp() {
  gradsim_abi_stamp s{};
  s.abi_version = GRADSIM_ABI_VERSION;
  s.stamp_size = sizeof(gradsim_abi_stamp);
  put_text(s.sdk_version, GRADSIM_VERSION_STRING);
  put_text(s.cxx_runtime, GRADSIM_STDLIB_TAG);
  put_text(s.eigen, GRADSIM_EIGEN_TAG);
  put_layouts<Matrix<double>, Matrix<float>, Matrix<bfloat16>, Matrix<float16>, std::string,
              std::vector<double>, std::function<void()>, std::unique_ptr<Layer<double>>, Params,
              ParamDecl, PluginInfo, Makers<double>, LayerArgs, WeightDecl, Weight<double>,
              Ctx<double>, Rng, Elementwise<double>, HookEvent, Shortcut, WeightRef<double>,
              Variances, std::optional<Variances>, Product>(s.layout);
  return s;
}

}  // namespace gradsim::detail
