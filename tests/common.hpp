// Shared helpers of the test suite: the registry of built-in plugins, loaded once.
#pragma once

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

#include "plugin/registry.hpp"

// Whether this build runs under a sanitizer (g++ defines __SANITIZE_*, clang has __has_feature).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GRADSIM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GRADSIM_SANITIZED 1
#endif
#endif

/// Skips the rest of a test in a sanitizer build, saying why (a statement: GRADSIM_SKIP_IF_SANITIZED("...");).
#if defined(GRADSIM_SANITIZED)
#define GRADSIM_SKIP_IF_SANITIZED(why) GTEST_SKIP() << why
#else
#define GRADSIM_SKIP_IF_SANITIZED(why) static_cast<void>(0)
#endif

namespace gradsim::test {

/// What a shell command printed (stdout and stderr together) and its exit status (-1 if a
/// signal ended it).
struct Result {
  int code;
  std::string out;
};

inline Result shell(const std::string& command) {
  Result r{-1, ""};
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf;
  for (std::size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// The built-in plugins, as `gradsim` finds them in the build tree.
inline const Registry& builtins() {
  static const Registry registry = [] {
    Registry r;
    auto failures = r.load({GRADSIM_PLUGIN_DIR});
    EXPECT_TRUE(failures.empty()) << failures.front();
    return r;
  }();
  return registry;
}

/// The built-in plugins plus the good fixtures (cube, scale_grad, throwing, ...).
inline const Registry& with_fixtures() {
  static const Registry registry = [] {
    Registry r;
    auto failures = r.load({GRADSIM_PLUGIN_DIR, GRADSIM_FIXTURE_GOOD_DIR});
    EXPECT_TRUE(failures.empty()) << failures.front();
    return r;
  }();
  return registry;
}

}  // namespace gradsim::test
