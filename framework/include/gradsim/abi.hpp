// The binary contract between gradsim and a plugin library: one frozen C struct that the host
// reads as data, before it calls any function of the library.
#pragma once

#include <cstdint>

/// Bump when the layout or vtable of any SDK type changes. A plugin built against another
/// value is refused at load time.
#define GRADSIM_ABI_VERSION 1u

#include <gradsim/version.hpp>  // GRADSIM_VERSION_STRING, generated from CMake's project version

#define GRADSIM_STR_(x) #x
#define GRADSIM_STR(x) GRADSIM_STR_(x)

/// The C++ runtime and Eigen memory layout a library was built with. Plugins pass
/// std::string, std::vector, std::function and Eigen matrices across the boundary and may
/// resize matrices the host allocated, so both sides must agree on the standard library and
/// on Eigen's heap alignment (16 bytes by default, 32 with -mavx, 64 with -mavx512f).
/// Expanded where Eigen is included (GRADSIM_PLUGIN_ENTRY and the loader).
#if defined(__GLIBCXX__)
#define GRADSIM_STDLIB_TAG "libstdc++ cxx11-abi=" GRADSIM_STR(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define GRADSIM_STDLIB_TAG "libc++ abi=" GRADSIM_STR(_LIBCPP_ABI_VERSION)
#else
#define GRADSIM_STDLIB_TAG "unknown"
#endif
#define GRADSIM_CXX_ABI_TAG GRADSIM_STDLIB_TAG ", eigen-align=" GRADSIM_STR(EIGEN_MAX_ALIGN_BYTES)

/// Marks the two symbols a plugin exports. Defined here so that the SDK never needs Boost.
#if defined(_WIN32)
#define GRADSIM_EXPORT __declspec(dllexport)
#else
#define GRADSIM_EXPORT __attribute__((visibility("default")))
#endif

extern "C" {
/// Exported by every plugin as `gradsim_plugin_abi`. Frozen: never reorder or remove a field.
struct gradsim_abi_stamp {
  std::uint32_t abi_version;  ///< GRADSIM_ABI_VERSION the plugin was compiled with
  std::uint32_t stamp_size;   ///< sizeof(gradsim_abi_stamp) the plugin was compiled with
  const char* sdk_version;    ///< GRADSIM_VERSION_STRING of the SDK it was compiled with
  const char* cxx_abi;        ///< GRADSIM_CXX_ABI_TAG
};
}

namespace gradsim {
/// Names of the two exported symbols, for the loader and for error messages.
inline constexpr const char* kAbiSymbol = "gradsim_plugin_abi";
inline constexpr const char* kListSymbol = "gradsim_plugin_list";
}  // namespace gradsim
