// Sweeps: setting a spec field by its path, and expanding axes (lists, ranges, zipped groups)
// and replicas into simulations.
#include <cmath>
#include <map>
#include <sstream>

#include <gradsim/tensor.hpp>

#include "spec/spec.hpp"

namespace gradsim {

namespace pb = google::protobuf;

namespace detail {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

bool parse_index(const std::string& name, int& index) {
  const auto b = name.find('[');
  if (b == std::string::npos || name.size() < b + 3 || name.back() != ']') return false;
  const std::string digits = name.substr(b + 1, name.size() - b - 2);
  if (digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) return false;
  index = std::stoi(digits);
  return true;
}

std::string format_number(double v) {
  std::ostringstream s;
  if (v == std::floor(v) && std::fabs(v) < 1e15) s << std::int64_t(v);  // 4294967295, not 4.29e+09
  else s << v;
  return s.str();
}

}  // namespace detail

namespace {

using detail::format_number;
using detail::split;

std::string field_names(const pb::Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) out += (i ? ", " : "") + d->field(i)->name();
  return out;
}

void set_scalar(pb::Message& msg, const pb::FieldDescriptor* fd, double number,
                const std::string* text) {
  const auto* r = msg.GetReflection();
  using F = pb::FieldDescriptor;
  const std::string got = text ? "the text \"" + *text + "\"" : "the number " + format_number(number);
  auto need_number = [&](const char* what) {
    if (text) throw SpecError(fd->name(), fd->name() + " takes " + what + ", not " + got);
  };
  auto need_integer = [&](double lo, double hi) {
    need_number("an integer");
    if (number != std::floor(number) || number < lo || number > hi)
      throw SpecError(fd->name(), fd->name() + " takes an integer in [" + format_number(lo) + ", " +
                                      format_number(hi) + "], not " + got);
  };
  switch (fd->cpp_type()) {
    case F::CPPTYPE_UINT32: need_integer(0, 4294967295.0), r->SetUInt32(&msg, fd, std::uint32_t(number)); break;
    case F::CPPTYPE_UINT64: need_integer(0, 9.007e15), r->SetUInt64(&msg, fd, std::uint64_t(number)); break;
    case F::CPPTYPE_INT32: need_integer(-2147483648.0, 2147483647.0), r->SetInt32(&msg, fd, std::int32_t(number)); break;
    case F::CPPTYPE_INT64: need_integer(-9.007e15, 9.007e15), r->SetInt64(&msg, fd, std::int64_t(number)); break;
    case F::CPPTYPE_DOUBLE: need_number("a number"), r->SetDouble(&msg, fd, number); break;
    case F::CPPTYPE_FLOAT: need_number("a number"), r->SetFloat(&msg, fd, float(number)); break;
    case F::CPPTYPE_BOOL:
      if (text && (*text == "true" || *text == "false")) r->SetBool(&msg, fd, *text == "true");
      else if (!text && (number == 0 || number == 1)) r->SetBool(&msg, fd, number == 1);
      else throw SpecError(fd->name(), fd->name() + " takes true/false or 1/0, not " + got);
      break;
    case F::CPPTYPE_STRING:
      if (!text) throw SpecError(fd->name(), fd->name() + " takes a text, not " + got);
      r->SetString(&msg, fd, *text);
      break;
    case F::CPPTYPE_ENUM: {
      std::string name = text ? *text : "";
      for (auto& c : name) c = char(std::toupper(static_cast<unsigned char>(c)));
      const auto* v = fd->enum_type()->FindValueByName(name);
      if (!v || v->number() == 0) {
        std::string names;
        for (int i = 1; i < fd->enum_type()->value_count(); ++i)
          names += (i > 1 ? ", " : "") + fd->enum_type()->value(i)->name();
        throw SpecError(fd->name(), fd->name() + " takes one of " + names + ", not " + got);
      }
      r->SetEnum(&msg, fd, v);
      break;
    }
    default: throw SpecError(fd->name(), fd->name() + " cannot be set by an axis");
  }
}

// The k-th of an axis's `count` range values.
double range_value(const v1::Range& r, std::uint32_t j) {
  const double t = r.count() > 1 ? double(j) / double(r.count() - 1) : 0.0;
  const double v = r.log() ? std::exp(std::log(r.start()) + t * (std::log(r.stop()) - std::log(r.start())))
                           : r.start() + t * (r.stop() - r.start());
  return r.integer() ? std::round(v) : v;
}

std::size_t axis_length(const v1::Axis& a) {
  return std::size_t(a.numbers_size() + a.texts_size()) + (a.has_range() ? a.range().count() : 0);
}

// One dimension of the sweep's grid: an axis, or a group of zipped axes moving together.
struct Dimension {
  std::vector<int> axes;
  std::size_t length;
};

// The grid's dimensions in order (the last varies fastest). Throws SpecError for an axis
// without values, with two kinds of values, a bad range, or zipped axes of unequal lengths.
std::vector<Dimension> dimensions(const v1::SweepSpec& sweep) {
  std::vector<Dimension> dims;
  std::map<std::string, std::size_t> zip_dim;
  for (int k = 0; k < sweep.axis_size(); ++k) {
    const auto& a = sweep.axis(k);
    const std::string where = "axis[" + std::to_string(k) + "]";
    if (a.path().empty())
      throw SpecError(where, "an axis needs a path: the spec field it sets, e.g. path: \"network.depth\"");
    const int kinds = (a.numbers_size() > 0) + (a.texts_size() > 0) + a.has_range();
    if (kinds != 1)
      throw SpecError(where, "axis '" + a.path() + "' needs exactly one of numbers: [...], texts: [...] or range {...}");
    if (a.has_range()) {
      const auto& r = a.range();
      if (r.count() == 0) throw SpecError(where + ".range", "axis '" + a.path() + "': range.count must be at least 1");
      if (r.log() && !(r.start() > 0 && r.stop() > 0))
        throw SpecError(where + ".range", "axis '" + a.path() + "': a log range needs start and stop > 0");
    }
    const std::size_t n = axis_length(a);
    if (a.zip().empty() || !zip_dim.count(a.zip())) {
      if (!a.zip().empty()) zip_dim[a.zip()] = dims.size();
      dims.push_back({{k}, n});
      continue;
    }
    auto& d = dims[zip_dim[a.zip()]];
    if (d.length != n)
      throw SpecError(where, "axis '" + a.path() + "' has " + std::to_string(n) + " values but the axes zipped as '" +
                                 a.zip() + "' have " + std::to_string(d.length) + "; zipped axes move together");
    d.axes.push_back(k);
  }
  return dims;
}

}  // namespace

namespace detail {

std::string value_text(const v1::Axis& a, int j) {
  if (a.texts_size()) return a.texts(j).empty() ? "(off)" : a.texts(j);
  return format_number(a.has_range() ? range_value(a.range(), std::uint32_t(j)) : a.numbers(j));
}

std::string configuration_text(const v1::SweepSpec& sweep, std::uint64_t index) {
  const auto idx = axis_indices(sweep, index);
  std::string out;
  for (int k = 0; k < sweep.axis_size(); ++k)
    out += (k ? " " : "") + sweep.axis(k).path() + "=" + value_text(sweep.axis(k), idx[k]);
  return out;
}

// Which value of each axis simulation `index` takes (last dimension fastest, after replicas).
std::vector<int> axis_indices(const v1::SweepSpec& sweep, std::uint64_t index) {
  index /= std::max<std::uint32_t>(1, sweep.replicas());
  std::vector<int> out(sweep.axis_size());
  const auto dims = dimensions(sweep);
  for (auto d = dims.rbegin(); d != dims.rend(); ++d) {
    for (int k : d->axes) out[k] = int(index % d->length);
    index /= d->length;
  }
  return out;
}

// Where value j of axis k is written, for messages.
std::string value_path(const v1::Axis& a, int k, int j) {
  const std::string axis = "axis[" + std::to_string(k) + "]";
  if (a.has_range()) return axis + ".range";
  return axis + (a.texts_size() ? ".texts[" : ".numbers[") + std::to_string(j) + "]";
}

}  // namespace detail

using detail::axis_indices;
using detail::value_path;
using detail::value_text;

std::uint64_t sim_count(const v1::SweepSpec& sweep) {
  std::uint64_t n = std::max<std::uint32_t>(1, sweep.replicas());
  const auto dims = dimensions(sweep);
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (__builtin_mul_overflow(n, std::uint64_t(dims[i].length), &n))
      throw SpecError("axis[" + std::to_string(dims[i].axes[0]) + "]",
                      "the sweep has more than 2^64 simulations (the product of the axes' lengths and the "
                      "replicas); shrink the axes");
  return n;
}

std::uint64_t sim_seed(std::uint64_t sweep_seed, std::uint64_t replica) {
  return mix64(mix64(sweep_seed) + replica);
}

void set_field(v1::SimSpec& sim, const std::string& path, double number, const std::string* text) {
  if (path == "seed")
    throw SpecError(path, "seed is derived by gradsim from the sweep's seed and the replica; use replicas: N");
  const auto tokens = split(path, '.');
  pb::Message* msg = &sim;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto* d = msg->GetDescriptor();
    if (d == v1::PluginRef::descriptor() && tokens[t] == "params") {
      if (t + 2 != tokens.size())
        throw SpecError(path, "a parameter path ends in '.params.NAME', e.g. 'init.params.gain'");
      auto& ref = static_cast<v1::PluginRef&>(*msg);
      v1::Param* p = nullptr;
      for (auto& q : *ref.mutable_params()) if (q.name() == tokens[t + 1]) p = &q;
      if (!p) p = ref.add_params(), p->set_name(tokens[t + 1]);
      text ? p->set_text(*text) : p->set_number(number);
      return;
    }
    std::string name = tokens[t];
    int index = -1;  // "mitigations[1]": an entry of a list of messages
    if (auto b = name.find('['); b != std::string::npos) {
      if (!detail::parse_index(name, index))
        throw SpecError(path, "'" + name + "': an index is a number in brackets at the end, e.g. '" +
                                  name.substr(0, b) + "[0]'");
      name = name.substr(0, b);
    }
    const auto* fd = d->FindFieldByName(name);
    if (!fd)
      throw SpecError(path, "no field '" + name + "' in " + d->name() + " (it has " +
                                field_names(d) + ")");
    const bool list_entry = fd->is_repeated() && fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE;
    if (fd->is_repeated() != (index >= 0) || (index >= 0 && !list_entry))
      throw SpecError(path, fd->is_repeated() && list_entry
                                ? "'" + name + "' is a list; name one entry, e.g. '" + name + "[0]'"
                                : "'" + name + "' is not a list of messages; drop the [index]");
    const bool last = t + 1 == tokens.size();
    if (fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last)
        throw SpecError(path, "'" + name + "' is a message; name one of its fields (" +
                                  field_names(fd->message_type()) + ")");
      const auto* r = msg->GetReflection();
      if (index >= 0 && index >= r->FieldSize(*msg, fd))
        throw SpecError(path, "'" + name + "' has " + std::to_string(r->FieldSize(*msg, fd)) +
                                  " entries in the base spec; add entry " + std::to_string(index) + " there");
      msg = index >= 0 ? r->MutableRepeatedMessage(msg, fd, index) : r->MutableMessage(msg, fd);
    } else if (!last) {
      throw SpecError(path, "'" + name + "' is a single value, it has no field '" + tokens[t + 1] + "'");
    } else {
      try {
        set_scalar(*msg, fd, number, text);
      } catch (const SpecError& e) {
        throw SpecError(path, e.what());
      }
    }
  }
}

v1::SimSpec sim_at(const v1::SweepSpec& sweep, std::uint64_t index) {
  v1::SimSpec sim;
  sim_at(sweep, index, sim);
  return sim;
}

void sim_at(const v1::SweepSpec& sweep, std::uint64_t index, v1::SimSpec& sim) {
  sim = sweep.base();
  const auto idx = axis_indices(sweep, index);
  for (int k = 0; k < sweep.axis_size(); ++k) {
    const auto& a = sweep.axis(k);
    const int j = idx[k];
    try {
      if (a.texts_size()) set_field(sim, a.path(), 0, &a.texts(j));
      else set_field(sim, a.path(), a.has_range() ? range_value(a.range(), std::uint32_t(j)) : a.numbers(j), nullptr);
    } catch (const SpecError& e) {
      throw SpecError(value_path(a, k, j), "axis '" + a.path() + "': " + e.what());
    }
  }
  if (sim.label().empty()) sim.set_label(detail::configuration_text(sweep, index));  // name it by its axis values
  // Common random numbers: every configuration of replica r draws from the same seed, so
  // configurations differ by what the axes change, not by the luck of the draw.
  sim.set_seed(sim_seed(sweep.seed(), index % std::max<std::uint32_t>(1, sweep.replicas())));
}

}  // namespace gradsim
