// Plugin parameters: what a plugin declares (ParamDecl) and what it receives (Params).
// The host checks every spec against the declarations before any simulation starts, so a
// plugin reads its parameters without re-checking them.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace gradsim {

enum class ParamType { real, integer, boolean, choice };

/// One declared parameter: name, type, default, allowed range or choices, one line of help.
struct ParamDecl {
  std::string name;
  ParamType type = ParamType::real;
  double default_number = 0;         ///< real, integer, boolean (0 or 1)
  std::string default_text;          ///< choice
  double min = -1e308, max = 1e308;  ///< inclusive range for real and integer
  std::vector<std::string> choices;  ///< allowed values of a choice
  std::string help;

  /// A real number in [min, max].
  static ParamDecl real(std::string name, double def, double min, double max, std::string help) {
    return {std::move(name), ParamType::real, def, {}, min, max, {}, std::move(help)};
  }
  /// An integer in [min, max].
  static ParamDecl integer(std::string name, long def, long min, long max, std::string help) {
    return {std::move(name), ParamType::integer, double(def), {}, double(min), double(max), {},
            std::move(help)};
  }
  static ParamDecl boolean(std::string name, bool def, std::string help) {
    return {std::move(name), ParamType::boolean, def ? 1.0 : 0.0, {}, 0, 1, {}, std::move(help)};
  }
  /// One of a fixed list of words; the first is not implied to be the default.
  static ParamDecl choice(std::string name, std::string def, std::vector<std::string> choices,
                          std::string help) {
    return {std::move(name), ParamType::choice, 0, std::move(def), 0, 0, std::move(choices),
            std::move(help)};
  }
};

/// The resolved parameter values a plugin is constructed with: every declared parameter is
/// present (defaults filled in) and within its declared range.
class Params {
 public:
  struct Value {
    double number = 0;
    std::string text;
  };
  void set(const std::string& name, Value v) { values_[name] = std::move(v); }
  double number(const std::string& name) const { return at(name).number; }
  long integer(const std::string& name) const { return long(at(name).number); }
  bool flag(const std::string& name) const { return at(name).number != 0; }
  const std::string& text(const std::string& name) const { return at(name).text; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }

 private:
  const Value& at(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end())
      throw std::out_of_range("plugin read undeclared parameter '" + name +
                              "'; declare it in the plugin's params()");
    return it->second;
  }
  std::map<std::string, Value> values_;
};

/// Every declared parameter at its default: what a plugin gets from a spec that sets nothing.
inline Params defaults_of(const std::vector<ParamDecl>& decls) {
  Params p;
  for (const auto& d : decls) p.set(d.name, {d.default_number, d.default_text});
  return p;
}

}  // namespace gradsim
