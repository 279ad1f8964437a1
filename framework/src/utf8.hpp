// UTF-8 checks for text that ends up in protobuf `string` fields, which must hold valid UTF-8:
// a spec's label or a file name with other bytes would make the whole traces file unreadable.
#pragma once

#include <cstdio>
#include <string>

namespace gradsim {

/// True if s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
inline bool is_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 9;
    if (n == 9 || i + n >= s.size() + (n ? 0 : 1)) return false;
    std::uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (std::size_t k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    const std::uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

/// s with every byte that is not part of valid UTF-8 written as \xNN (valid UTF-8 is kept).
inline std::string escape_utf8(const std::string& s) {
  if (is_utf8(s)) return s;
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    // Take the longest valid sequence starting here (1 to 4 bytes), else escape one byte.
    std::size_t n = 0;
    for (std::size_t len = 1; len <= 4 && i + len <= s.size() && !n; ++len)
      if (is_utf8(s.substr(i, len))) n = len;
    if (n) {
      out += s.substr(i, n), i += n;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf, ++i;
    }
  }
  return out;
}

}  // namespace gradsim
