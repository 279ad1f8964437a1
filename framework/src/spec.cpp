#include "spec.hpp"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <gradsim/tensor.hpp>

#include "error.hpp"

namespace gradsim {

namespace pb = google::protobuf;
using ParseInfoTree = pb::TextFormat::ParseInfoTree;

namespace {

class FirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (message_.empty()) line_ = line + 1, column_ = column + 1, message_ = message;
  }
  int line_ = 0, column_ = 0;
  std::string message_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, sep);) out.push_back(part);
  return out;
}

std::string field_names(const pb::Descriptor* d) {
  std::string out;
  for (int i = 0; i < d->field_count(); ++i) out += (i ? ", " : "") + d->field(i)->name();
  return out;
}

std::string format_number(double v) {
  std::ostringstream s;
  if (v == std::floor(v) && std::fabs(v) < 1e15) s << std::int64_t(v);  // 4294967295, not 4.29e+09
  else s << v;
  return s.str();
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

std::string value_text(const v1::Axis& a, int j) {
  if (a.texts_size()) return a.texts(j);
  return format_number(a.has_range() ? range_value(a.range(), std::uint32_t(j)) : a.numbers(j));
}

}  // namespace

SpecFile parse_spec(const std::string& text, const std::string& source) {
  SpecFile out;
  out.source = source;
  if (source.size() >= 5 && source.compare(source.size() - 5, 5, ".json") == 0) {
    auto status = pb::util::JsonStringToMessage(text, &out.sweep);
    if (!status.ok())
      throw Error(source + ": error: " + std::string(status.message()) +
                  "; fields are those of gradsim.v1.SweepSpec in proto/gradsim.proto");
    return out;
  }
  auto tree = std::make_shared<ParseInfoTree>();
  FirstError errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.WriteLocationsTo(tree.get());
  if (!parser.ParseFromString(text, &out.sweep))
    throw Error(source + ":" + std::to_string(errors.line_) + ":" + std::to_string(errors.column_) +
                ": error: " + errors.message_);
  out.locations = tree;
  return out;
}

SpecFile read_spec(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(file.string() + ": error: cannot read the spec file; check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_spec(ss.str(), file.string());
}

std::uint64_t sim_count(const v1::SweepSpec& sweep) {
  std::uint64_t n = std::max<std::uint32_t>(1, sweep.replicas());
  for (const auto& d : dimensions(sweep)) n *= d.length;
  return n;
}

std::uint64_t sim_seed(std::uint64_t sweep_seed, std::uint64_t replica) {
  return mix64(mix64(sweep_seed) + replica);
}

void set_field(v1::SimSpec& sim, const std::string& path, double number, const std::string* text) {
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
    if (auto b = name.find('['); b != std::string::npos && name.back() == ']') {
      index = std::atoi(name.c_str() + b + 1);
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
  v1::SimSpec sim = sweep.base();
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
  if (sim.label().empty()) {  // name the point by its axis values
    std::string label;
    for (int k = 0; k < sweep.axis_size(); ++k)
      label += (k ? " " : "") + sweep.axis(k).path() + "=" + value_text(sweep.axis(k), idx[k]);
    sim.set_label(label);
  }
  // Common random numbers: every configuration of replica r draws from the same seed, so
  // configurations differ by what the axes change, not by the luck of the draw.
  sim.set_seed(sim_seed(sweep.seed(), index % std::max<std::uint32_t>(1, sweep.replicas())));
  return sim;
}

namespace {

std::string range_text(const ParamDecl& d) {
  if (d.type == ParamType::choice) {
    std::string s;
    for (std::size_t i = 0; i < d.choices.size(); ++i) s += (i ? ", " : "") + d.choices[i];
    return "one of " + s;
  }
  return "[" + format_number(d.min) + ", " + format_number(d.max) + "]";
}

// Checks one given value against its declaration and writes it back in canonical form.
void resolve_param(v1::Param& p, const ParamDecl& d, const std::string& where) {
  const bool is_num = p.value_case() == v1::Param::kNumber;
  const std::string got = is_num ? format_number(p.number())
                          : p.value_case() == v1::Param::kText ? "\"" + p.text() + "\""
                          : p.value_case() == v1::Param::kFlag ? (p.flag() ? "true" : "false")
                                                                : "nothing";
  const std::string bad = where + " = " + got + ": ";
  switch (d.type) {
    case ParamType::real:
    case ParamType::integer:
      if (!is_num) throw SpecError(where, bad + "expected a number (number: ...)");
      if (!(p.number() >= d.min && p.number() <= d.max))
        throw SpecError(where, bad + "out of range " + range_text(d) + " (" + d.help + ")");
      if (d.type == ParamType::integer && p.number() != std::floor(p.number()))
        throw SpecError(where, bad + "expected an integer");
      break;
    case ParamType::boolean:
      if (is_num && (p.number() == 0 || p.number() == 1)) p.set_flag(p.number() == 1);
      if (p.value_case() != v1::Param::kFlag)
        throw SpecError(where, bad + "expected true or false (flag: ...)");
      break;
    case ParamType::choice:
      if (p.value_case() != v1::Param::kText ||
          std::find(d.choices.begin(), d.choices.end(), p.text()) == d.choices.end())
        throw SpecError(where, bad + "expected " + range_text(d) + " (text: ...)");
      break;
  }
}

void resolve_plugin(v1::PluginRef& ref, Kind kind, const std::string& where,
                    const std::string& fallback, const Registry& registry) {
  if (ref.name().empty()) ref.set_name(fallback);
  const Registry::Entry* e = registry.find(kind, ref.name());
  if (!e) {
    try {
      registry.get(kind, ref.name());
    } catch (const Error& err) {
      throw SpecError(where + ".name", err.what());
    }
  }
  const auto& decls = e->info->params;
  for (auto& p : *ref.mutable_params()) {
    const std::string pwhere = where + ".params." + p.name();
    auto d = std::find_if(decls.begin(), decls.end(), [&](auto& d) { return d.name == p.name(); });
    if (d == decls.end()) {
      std::string names;
      for (const auto& x : decls) names += (names.empty() ? "" : ", ") + x.name;
      throw SpecError(pwhere, std::string(kind_name(kind)) + " \"" + ref.name() +
                                  "\" has no parameter \"" + p.name() + "\" (" +
                                  (names.empty() ? "it takes none" : "it takes " + names) + ")");
    }
    resolve_param(p, *d, pwhere);
  }
  // Rebuild in declaration order, defaults for what was left out.
  v1::PluginRef out;
  out.set_name(ref.name());
  for (const auto& d : decls) {
    v1::Param* q = out.add_params();
    q->set_name(d.name);
    int given = 0;
    for (const auto& p : ref.params())
      if (p.name() == d.name) *q = p, ++given;
    if (given > 1) throw SpecError(where + ".params." + d.name, "parameter \"" + d.name + "\" is given twice");
    if (given) continue;
    if (d.type == ParamType::choice) q->set_text(d.default_text);
    else if (d.type == ParamType::boolean) q->set_flag(d.default_number != 0);
    else q->set_number(d.default_number);
  }
  ref = std::move(out);
}

}  // namespace

void resolve(v1::SimSpec& sim, const Registry& registry) {
  auto& net = *sim.mutable_network();
  if (net.depth() < 1) throw SpecError("network.depth", "network.depth must be at least 1");
  if (net.width() < 1) throw SpecError("network.width", "network.width must be at least 1");
  if (net.input_width() == 0) net.set_input_width(net.width());
  if (sim.batch() == 0) sim.set_batch(64);
  if (sim.dtype() == v1::DTYPE_UNSPECIFIED) sim.set_dtype(v1::FLOAT64);
  // The engine keeps every block's input, pre-activation and output for one backward pass.
  const double bytes = 8.0 * sim.batch() * 3 * (double(net.depth()) * net.width() + net.input_width()) +
                       8.0 * 2 * net.depth() * double(net.width()) * std::max(net.width(), net.input_width());
  if (bytes > 16e9)
    throw SpecError("network.depth", "this network needs about " + format_number(bytes / 1e9) +
                                         " GB; reduce depth, width or batch");
  resolve_plugin(*net.mutable_layer(), Kind::layer, "network.layer", "dense", registry);
  resolve_plugin(*net.mutable_activation(), Kind::activation, "network.activation", "linear", registry);
  resolve_plugin(*sim.mutable_init(), Kind::initializer, "init", "gaussian", registry);
  resolve_plugin(*sim.mutable_loss(), Kind::loss, "loss", "linear_probe", registry);
  // An entry with an empty name is off (an axis may switch it): drop it, params and all.
  auto* ms = sim.mutable_mitigations();
  ms->erase(std::remove_if(ms->begin(), ms->end(), [](const auto& m) { return m.name().empty(); }), ms->end());
  for (int i = 0; i < sim.mitigations_size(); ++i)
    resolve_plugin(*sim.mutable_mitigations(i), Kind::mitigation,
                   "mitigations[" + std::to_string(i) + "]", "", registry);
  auto& train = *sim.mutable_train();
  if (train.lr() == 0) train.set_lr(0.01);
  if (!std::isfinite(train.lr())) throw SpecError("train.lr", "train.lr must be a finite number");
}

Params params_of(const v1::PluginRef& ref) {
  Params out;
  for (const auto& p : ref.params())
    out.set(p.name(), {p.value_case() == v1::Param::kFlag ? double(p.flag()) : p.number(), p.text()});
  return out;
}

namespace {

// Follows a path ("base.init.params.gain", "axis[1].texts[0]") through the parsed message and
// its location tree; returns the deepest location written in the file ("" if none).
std::string locate(const SpecFile& spec, const std::string& path) {
  auto* tree = static_cast<ParseInfoTree*>(spec.locations.get());
  const pb::Message* msg = &spec.sweep;
  pb::TextFormat::ParseLocation best;
  const auto tokens = split(path, '.');
  for (std::size_t t = 0; t < tokens.size() && tree && msg; ++t) {
    std::string name = tokens[t];
    int index = -1;
    if (auto b = name.find('['); b != std::string::npos)
      index = std::stoi(name.substr(b + 1)), name = name.substr(0, b);
    const auto* fd = msg->GetDescriptor()->FindFieldByName(name);
    if (!fd) break;
    if (fd->message_type() == v1::Param::descriptor() && t + 1 < tokens.size()) {
      const auto& ref = static_cast<const v1::PluginRef&>(*msg);
      for (int i = 0; i < ref.params_size(); ++i)
        if (ref.params(i).name() == tokens[t + 1]) index = i;
      if (index < 0) break;
      ++t;
    }
    if (fd->is_repeated() && index < 0) index = 0;
    const auto* r = msg->GetReflection();
    if (fd->is_repeated() ? index >= r->FieldSize(*msg, fd) : !r->HasField(*msg, fd)) break;
    // A list written as `texts: ["a", "b"]` has one location for all its values.
    auto loc = tree->GetLocation(fd, index);
    if (loc.line < 0 && index > 0) loc = tree->GetLocation(fd, 0);
    if (loc.line >= 0) best = loc;
    if (fd->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) break;
    tree = tree->GetTreeForNested(fd, index);
    msg = fd->is_repeated() ? &r->GetRepeatedMessage(*msg, fd, index) : &r->GetMessage(*msg, fd);
  }
  if (best.line < 0) return "";
  return std::to_string(best.line + 1) + ":" + std::to_string(best.column + 1);
}

}  // namespace

Validation validate(const SpecFile& spec, const Registry& registry) {
  const auto& sweep = spec.sweep;
  auto fail = [&](const std::string& path, const std::string& what) {
    const std::string loc = spec.locations ? locate(spec, path) : "";
    throw Error(spec.source + (loc.empty() ? "" : ":" + loc) + ": error: " + what +
                (loc.empty() ? " (at " + path + ")" : ""));
  };
  if (sweep.base().seed() != 0)
    fail("base.seed", "base.seed is derived by gradsim from the sweep's seed and the simulation's "
                      "index; set the top-level 'seed' instead");
  Validation out;
  try {
    out.count = sim_count(sweep);
  } catch (const SpecError& e) {
    fail(e.path, e.what());
  }
  for (std::uint64_t i = 0; i < out.count; ++i) {
    v1::SimSpec sim;
    try {
      sim = sim_at(sweep, i);
    } catch (const SpecError& e) {
      fail(e.path, e.what());
    }
    try {
      resolve(sim, registry);
    } catch (const SpecError& e) {
      // A field an axis sets is reported at the axis value that set it.
      const auto idx = axis_indices(sweep, i);
      std::string path = "base." + e.path;
      for (int k = 0; k < sweep.axis_size(); ++k) {
        const auto& a = sweep.axis(k);
        if (e.path == a.path() || e.path.rfind(a.path() + ".", 0) == 0 ||
            a.path().rfind(e.path + ".", 0) == 0)
          path = value_path(a, k, idx[k]);
      }
      fail(path, e.what());
    }
    const auto& net = sim.network();
    out.plugins.insert({Kind::layer, net.layer().name()});
    out.plugins.insert({Kind::activation, net.activation().name()});
    out.plugins.insert({Kind::initializer, sim.init().name()});
    out.plugins.insert({Kind::loss, sim.loss().name()});
    for (const auto& m : sim.mitigations()) out.plugins.insert({Kind::mitigation, m.name()});
  }
  return out;
}

}  // namespace gradsim
