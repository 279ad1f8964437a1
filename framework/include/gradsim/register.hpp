// Registration macros: one line per plugin, and the entry point of a plugin library.
//
// A complete activation plugin, built with gradsim_add_plugin(cube SOURCES cube.cpp):
//
//   #include <gradsim/gradsim.hpp>
//   struct Cube {
//     static constexpr const char* help = "x^3";                      // optional
//     template <class T> static T f(T x) { return x * x * x; }
//     template <class T> static T df(T x) { return T(3) * x * x; }
//   };
//   GRADSIM_ACTIVATION("cube", Cube)
//
// Optional members of any registered type:
//   static constexpr const char* help = "...";             one line for `gradsim plugins`
//   static std::vector<gradsim::ParamDecl> param_decls();  declared parameters
// Layers, losses, mitigations, cells, optimisers and non-elementwise activations are class
// templates over the scalar type T, derived from Layer<T> / Loss<T> / Mitigation<T> / Cell<T> /
// Optimizer<T> / Activation<T> (GRADSIM_LAYER, GRADSIM_LOSS, GRADSIM_MITIGATION, GRADSIM_CELL,
// GRADSIM_OPTIMIZER, GRADSIM_ACTIVATION_TEMPLATE); a layer is
// constructed from LayerArgs, the others from Params. An initialiser is a class derived from
// Initializer, constructed from Params (GRADSIM_INITIALIZER). Scalar code that must run in
// every format uses gradsim::fn::exp, tanh, erf, ... (tensor.hpp); array code uses
// gradsim::matmul, map, norm_f64 (compute.hpp) and Rng (random.hpp), which run in the core.
//
// The macros append to a list local to the plugin library and write the plugin's kind and
// name into the library's `gradsim_names` section. gradsim reads the library's ABI stamp and
// names from the file before it loads the library, so these run only in a library whose stamp
// matched, and only once a spec uses one of its plugins. gradsim_add_plugin() adds the file that expands GRADSIM_PLUGIN_ENTRY() once
// per library. Check a plugin with `gradsim gradcheck --plugin-dir DIR NAME`.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "abi.hpp"
#include "layout.hpp"
#include "plugin.hpp"

#ifndef GRADSIM_PLUGIN_VERSION
#define GRADSIM_PLUGIN_VERSION "0.0.0"
#endif

namespace gradsim::detail {

/// The plugins of this library. Hidden: every library has its own.
__attribute__((visibility("hidden"))) inline std::vector<PluginInfo>& local_plugins() {
  static std::vector<PluginInfo> plugins;
  return plugins;
}

struct Registrar {
  explicit Registrar(PluginInfo info) { local_plugins().push_back(std::move(info)); }
};

template <class F, class = void>
struct has_param_decls : std::false_type {};
template <class F>
struct has_param_decls<F, std::void_t<decltype(F::param_decls())>> : std::true_type {};
template <class F, class = void>
struct has_help : std::false_type {};
template <class F>
struct has_help<F, std::void_t<decltype(F::help)>> : std::true_type {};

template <class F, class = void>
struct is_activation : std::false_type {};
template <class F>
struct is_activation<F, std::void_t<decltype(std::declval<const F&>().template f<double>(1.0)),
                                    decltype(std::declval<const F&>().template df<double>(1.0))>>
    : std::true_type {};

template <class F>
PluginInfo info_of(Kind kind, const char* name) {
  PluginInfo info;
  info.kind = kind, info.name = name, info.version = GRADSIM_PLUGIN_VERSION;
  if constexpr (has_help<F>::value) info.help = F::help;
  if constexpr (has_param_decls<F>::value) info.params = F::param_decls();
  return info;
}

/// Calls fn(makers) for the Makers<T> of every scalar type T.
template <class Fn>
void for_each_format(PluginInfo& info, Fn&& fn) {
  std::apply([&](auto&... makers) { (fn(makers), ...); }, info.makers);
}

template <class F>
PluginInfo activation_info(const char* name) {
  PluginInfo info = info_of<F>(Kind::activation, name);
  for_each_format(info, []<class T>(Makers<T>& m) {
    m.activation = [](const Params& p) { return std::make_unique<ElementwiseActivation<F, T>>(p); };
  });
  return info;
}

/// A class template C<T> derived from Layer<T>, Activation<T>, Loss<T>, Mitigation<T>, Cell<T>
/// or Optimizer<T>: the base class says which maker to set. Layers are built from LayerArgs, cells
/// from CellArgs<T>, the others from Params.
template <template <class> class C>
PluginInfo class_template_info(Kind kind, const char* name) {
  PluginInfo info = info_of<C<double>>(kind, name);
  for_each_format(info, []<class T>(Makers<T>& m) {
    if constexpr (std::is_base_of_v<Layer<T>, C<T>>)
      m.layer = [](const LayerArgs& a) -> std::unique_ptr<Layer<T>> { return std::make_unique<C<T>>(a); };
    else if constexpr (std::is_base_of_v<Activation<T>, C<T>>)
      m.activation = [](const Params& p) -> std::unique_ptr<Activation<T>> { return std::make_unique<C<T>>(p); };
    else if constexpr (std::is_base_of_v<Loss<T>, C<T>>)
      m.loss = [](const Params& p) -> std::unique_ptr<Loss<T>> { return std::make_unique<C<T>>(p); };
    else if constexpr (std::is_base_of_v<Cell<T>, C<T>>)
      m.cell = [](const CellArgs<T>& a) -> std::unique_ptr<Cell<T>> { return std::make_unique<C<T>>(a); };
    else if constexpr (std::is_base_of_v<Optimizer<T>, C<T>>)
      m.optimizer = [](const Params& p) -> std::unique_ptr<Optimizer<T>> { return std::make_unique<C<T>>(p); };
    else
      m.mitigation = [](const Params& p) -> std::unique_ptr<Mitigation<T>> { return std::make_unique<C<T>>(p); };
  });
  return info;
}

template <class I>
PluginInfo initializer_info(const char* name) {
  PluginInfo info = info_of<I>(Kind::initializer, name);
  info.initializer = [](const Params& p) -> std::unique_ptr<Initializer> {
    return std::make_unique<I>(p);
  };
  return info;
}

constexpr std::size_t text_length(const char* s) {
  std::size_t n = 0;
  while (s[n]) ++n;
  return n;
}

/// "<kind>\0<name>\0": one entry of a library's `gradsim_names` section.
template <std::size_t N>
struct NameNote {
  char text[N];
};
template <std::size_t N>
constexpr NameNote<N> name_note(const char* kind, const char* name) {
  NameNote<N> out{};
  std::size_t k = 0;
  for (const char* c = kind; *c; ++c) out.text[k++] = *c;
  out.text[k++] = 0;
  for (const char* c = name; *c; ++c) out.text[k++] = *c;
  return out;
}

}  // namespace gradsim::detail

#define GRADSIM_CAT_(a, b) a##b
#define GRADSIM_CAT(a, b) GRADSIM_CAT_(a, b)
// Each registration also writes its kind and name into the library's section `gradsim_names`,
// constant data that gradsim reads from the file: it knows what a library provides without
// loading it, and loads (runs) a library only when a spec uses one of its plugins. `name` must
// be a constant expression (a string literal).
#if defined(__ELF__)
#define GRADSIM_NAME_NOTE_(kind, name)                                                                   \
  namespace {                                                                                            \
  [[gnu::used, gnu::section("gradsim_names")]] constexpr auto GRADSIM_CAT(gradsim_name_, __COUNTER__) = \
      ::gradsim::detail::name_note<::gradsim::detail::text_length(kind) +                                \
                                   ::gradsim::detail::text_length(name) + 2>(kind, name);                \
  }
#else
#define GRADSIM_NAME_NOTE_(kind, name)
#endif
#define GRADSIM_REGISTER_(info)                                                         \
  namespace {                                                                           \
  [[maybe_unused]] const ::gradsim::detail::Registrar GRADSIM_CAT(gradsim_reg_, __COUNTER__){ \
      info};                                                                            \
  }

/// Registers an elementwise activation: a type with `template <class T> T f(T)` and `df(T)`.
#define GRADSIM_ACTIVATION(name, Type)                                                      \
  static_assert(::gradsim::detail::is_activation<Type>::value,                             \
                "GRADSIM_ACTIVATION(" #name ", " #Type "): " #Type                          \
                " must define template <class T> static T f(T) and df(T)");                 \
  GRADSIM_NAME_NOTE_("activation", name)                                                \
  GRADSIM_REGISTER_(::gradsim::detail::activation_info<Type>(name))

/// Registers an activation that is not elementwise (e.g. softmax): a class template Type<T>
/// derived from Activation<T>, built from Params.
#define GRADSIM_ACTIVATION_TEMPLATE(name, Type)                                              \
  static_assert(std::is_base_of_v<::gradsim::Activation<double>, Type<double>> &&           \
                    std::is_constructible_v<Type<double>, const ::gradsim::Params&>,        \
                "GRADSIM_ACTIVATION_TEMPLATE(" #name ", " #Type "): " #Type                  \
                "<T> must derive from gradsim::Activation<T> and be constructible from Params"); \
  GRADSIM_NAME_NOTE_("activation", name)                                                \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::activation, name))

/// Registers a layer: a class template Type<T> derived from Layer<T>, built from LayerArgs.
#define GRADSIM_LAYER(name, Type)                                                            \
  static_assert(std::is_base_of_v<::gradsim::Layer<double>, Type<double>> &&                \
                    std::is_constructible_v<Type<double>, const ::gradsim::LayerArgs&>,     \
                "GRADSIM_LAYER(" #name ", " #Type "): " #Type                                \
                "<T> must derive from gradsim::Layer<T> and be constructible from LayerArgs"); \
  GRADSIM_NAME_NOTE_("layer", name)                                                     \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::layer, name))

/// Registers a recurrent cell: a class template Type<T> derived from Cell<T>, built from
/// CellArgs<T>.
#define GRADSIM_CELL(name, Type)                                                             \
  static_assert(std::is_base_of_v<::gradsim::Cell<double>, Type<double>> &&                 \
                    std::is_constructible_v<Type<double>, const ::gradsim::CellArgs<double>&>, \
                "GRADSIM_CELL(" #name ", " #Type "): " #Type                                 \
                "<T> must derive from gradsim::Cell<T> and be constructible from CellArgs<T>"); \
  GRADSIM_NAME_NOTE_("cell", name)                                                      \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::cell, name))

/// Registers a loss: a class template Type<T> derived from Loss<T>, built from Params.
#define GRADSIM_LOSS(name, Type)                                                             \
  static_assert(std::is_base_of_v<::gradsim::Loss<double>, Type<double>> &&                 \
                    std::is_constructible_v<Type<double>, const ::gradsim::Params&>,        \
                "GRADSIM_LOSS(" #name ", " #Type "): " #Type                                 \
                "<T> must derive from gradsim::Loss<T> and be constructible from Params");   \
  GRADSIM_NAME_NOTE_("loss", name)                                                      \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::loss, name))

/// Registers a mitigation: a class template Type<T> derived from Mitigation<T>, built from
/// Params.
#define GRADSIM_MITIGATION(name, Type)                                                       \
  static_assert(std::is_base_of_v<::gradsim::Mitigation<double>, Type<double>> &&           \
                    std::is_constructible_v<Type<double>, const ::gradsim::Params&>,        \
                "GRADSIM_MITIGATION(" #name ", " #Type "): " #Type                           \
                "<T> must derive from gradsim::Mitigation<T> and be constructible from Params"); \
  GRADSIM_NAME_NOTE_("mitigation", name)                                                \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::mitigation, name))

/// Registers an optimiser: a class template Type<T> derived from Optimizer<T>, built from
/// Params.
#define GRADSIM_OPTIMIZER(name, Type)                                                        \
  static_assert(std::is_base_of_v<::gradsim::Optimizer<double>, Type<double>> &&            \
                    std::is_constructible_v<Type<double>, const ::gradsim::Params&>,        \
                "GRADSIM_OPTIMIZER(" #name ", " #Type "): " #Type                            \
                "<T> must derive from gradsim::Optimizer<T> and be constructible from Params"); \
  GRADSIM_NAME_NOTE_("optimizer", name)                                                 \
  GRADSIM_REGISTER_(::gradsim::detail::class_template_info<Type>(::gradsim::Kind::optimizer, name))

/// Registers an initialiser: a class derived from Initializer, built from Params.
#define GRADSIM_INITIALIZER(name, Type)                                                      \
  static_assert(std::is_base_of_v<::gradsim::Initializer, Type> &&                          \
                    std::is_constructible_v<Type, const ::gradsim::Params&>,                \
                "GRADSIM_INITIALIZER(" #name ", " #Type "): " #Type                          \
                " must derive from gradsim::Initializer and be constructible from Params");  \
  GRADSIM_NAME_NOTE_("initializer", name)                                               \
  GRADSIM_REGISTER_(::gradsim::detail::initializer_info<Type>(name))

/// The two exported symbols; expanded once per library by gradsim_add_plugin(). The stamp is
/// constant data (no constructor runs to make it), so gradsim can read it from the file.
#define GRADSIM_PLUGIN_ENTRY()                                                                \
  extern "C" GRADSIM_EXPORT constinit const gradsim_abi_stamp gradsim_plugin_abi =            \
      ::gradsim::detail::make_stamp();                                                        \
  extern "C" GRADSIM_EXPORT const ::gradsim::PluginInfo* gradsim_plugin_list(std::size_t* n) { \
    *n = ::gradsim::detail::local_plugins().size();                                           \
    return ::gradsim::detail::local_plugins().data();                                         \
  }
