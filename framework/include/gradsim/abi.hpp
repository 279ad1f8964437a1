// The binary contract between gradsim and a plugin library: one frozen C struct, without a
// single pointer, that the host reads from the library *file* before it loads the library.
// So a library built for another gradsim, another C++ runtime or other Eigen settings is
// refused before any of its code (static constructors included) has run.
#pragma once

#include <cstdint>

/// Bump when the layout or vtable of any SDK type changes, or when a function the SDK library
/// exports changes its signature. A plugin built against another value is refused at load time.
#define GRADSIM_ABI_VERSION 6u

#include <gradsim/version.hpp>  // GRADSIM_VERSION_STRING, generated from CMake's project version

#define GRADSIM_STR_(x) #x
#define GRADSIM_STR(x) GRADSIM_STR_(x)

/// The C++ runtime a library was built with: plugins pass std::string, std::vector and
/// std::function across the boundary, so both sides must agree on the standard library, its
/// ABI and its debug mode (which changes the containers' layout).
#if defined(__GLIBCXX__)
#if defined(_GLIBCXX_DEBUG)
#define GRADSIM_STDLIB_DEBUG " debug"
#else
#define GRADSIM_STDLIB_DEBUG ""
#endif
#define GRADSIM_STDLIB_TAG "libstdc++ cxx11-abi=" GRADSIM_STR(_GLIBCXX_USE_CXX11_ABI) GRADSIM_STDLIB_DEBUG
#elif defined(_LIBCPP_VERSION)
#define GRADSIM_STDLIB_TAG "libc++ abi=" GRADSIM_STR(_LIBCPP_ABI_VERSION)
#else
#define GRADSIM_STDLIB_TAG "unknown"
#endif

/// Eigen's heap settings: a matrix allocated on one side may be resized or freed on the other,
/// so both must align the same way (16 bytes by default, 32 with -mavx, 64 with -mavx512f) and
/// use the same allocator (malloc as is, or Eigen's hand-aligned one, which AddressSanitizer
/// builds select by themselves; the SDK target pins it so that every build agrees).
/// Expanded where Eigen is included (GRADSIM_PLUGIN_ENTRY and the loader).
#define GRADSIM_EIGEN_TAG                                                 \
  "eigen " GRADSIM_STR(EIGEN_WORLD_VERSION) "." GRADSIM_STR(EIGEN_MAJOR_VERSION) \
  " align=" GRADSIM_STR(EIGEN_MAX_ALIGN_BYTES)                             \
  " malloc-already-aligned=" GRADSIM_STR(EIGEN_MALLOC_ALREADY_ALIGNED)

/// Marks what a plugin exports and what the SDK library exports. Defined here so that the SDK
/// never needs Boost.
#if defined(_WIN32)
#define GRADSIM_EXPORT __declspec(dllexport)
#else
#define GRADSIM_EXPORT __attribute__((visibility("default")))
#endif

/// The number of boundary types whose size and alignment the stamp records (see layout.hpp).
#define GRADSIM_LAYOUT_TYPES 24

extern "C" {
/// Exported by every plugin as `gradsim_plugin_abi`. Plain data (no pointers), so the host can
/// read it from the file. Frozen: the first two fields never move; a new field means a new ABI.
struct gradsim_abi_stamp {
  std::uint32_t abi_version;  ///< GRADSIM_ABI_VERSION the plugin was compiled with
  std::uint32_t stamp_size;   ///< sizeof(gradsim_abi_stamp) the plugin was compiled with
  char sdk_version[16];       ///< GRADSIM_VERSION_STRING of the SDK it was compiled with
  char cxx_runtime[48];       ///< GRADSIM_STDLIB_TAG
  char eigen[64];             ///< GRADSIM_EIGEN_TAG
  /// sizeof and alignof of each type in gradsim::detail::layout_names, in that order.
  std::uint32_t layout[2 * GRADSIM_LAYOUT_TYPES];
};
}

namespace gradsim {
/// Names of the two exported symbols, for the loader and for error messages.
inline constexpr const char* kAbiSymbol = "gradsim_plugin_abi";
inline constexpr const char* kListSymbol = "gradsim_plugin_list";
}  // namespace gradsim
