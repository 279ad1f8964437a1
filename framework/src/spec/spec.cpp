// Spec files: parsing (text format with line:column errors, or JSON), and validating a whole
// sweep with each error located at the line and column that caused it.
#include "spec/spec.hpp"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "error.hpp"
#include "utf8.hpp"

namespace gradsim {

namespace pb = google::protobuf;
using ParseInfoTree = pb::TextFormat::ParseInfoTree;
using detail::axis_indices;
using detail::split;
using detail::value_path;

namespace {

class FirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (message_.empty()) line_ = line + 1, column_ = column + 1, message_ = message;
  }
  int line_ = 0, column_ = 0;
  std::string message_;
};

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

namespace {

// Appends a stream's text to `text`, read in blocks; false once past kMaxSpecBytes (so
// /dev/zero or a wrong file cannot fill the memory: a spec is a few kilobytes).
bool read_bounded(std::istream& in, std::string& text) {
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, std::size_t(in.gcount()));
    if (text.size() > kMaxSpecBytes) return false;
  }
  return true;
}

}  // namespace

SpecFile read_spec(const std::filesystem::path& file) {
  const std::string name = escape_utf8(file.string());
  std::string text;
  if (file == "-") {  // standard input
    if (!read_bounded(std::cin, text))
      throw Error("<stdin>: error: larger than " + std::to_string(kMaxSpecBytes >> 20) + " MiB; is it a spec?");
    return parse_spec(text, "<stdin>");
  }
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw Error(name + ": error: is a directory; give a spec file (.textproto or .json)");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(name + ": error: cannot read the spec file; check the path");
  if (!read_bounded(in, text))
    throw Error(name + ": error: larger than " + std::to_string(kMaxSpecBytes >> 20) +
                " MiB; is it a spec file? (specs are text format or JSON, a few kilobytes)");
  return parse_spec(text, name);
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
    if (auto b = name.find('['); b != std::string::npos) {
      if (!detail::parse_index(name, index)) break;  // not a path gradsim writes: no location
      name = name.substr(0, b);
    }
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

// The path of the first string field (recursively) that is not valid UTF-8, or "".
std::string first_non_utf8(const pb::Message& msg, const std::string& prefix) {
  const auto* d = msg.GetDescriptor();
  const auto* r = msg.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* fd = d->field(i);
    const std::string path = prefix + fd->name();
    const int n = fd->is_repeated() ? r->FieldSize(msg, fd) : 1;
    for (int k = 0; k < n; ++k) {
      const std::string at = fd->is_repeated() ? path + "[" + std::to_string(k) + "]" : path;
      if (fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_STRING) {
        std::string scratch;
        const std::string& v = fd->is_repeated() ? r->GetRepeatedStringReference(msg, fd, k, &scratch)
                                                 : r->GetStringReference(msg, fd, &scratch);
        if (!is_utf8(v)) return at;
      } else if (fd->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        if (!fd->is_repeated() && !r->HasField(msg, fd)) continue;
        const auto& m = fd->is_repeated() ? r->GetRepeatedMessage(msg, fd, k) : r->GetMessage(msg, fd);
        if (auto bad = first_non_utf8(m, at + "."); !bad.empty()) return bad;
      }
    }
  }
  return "";
}

}  // namespace

Validation validate_with(const SpecFile& spec, const Registry& registry,
                         const std::function<void(const v1::SimSpec&)>& build, std::uint64_t max_sims) {
  const auto& sweep = spec.sweep;
  auto fail = [&](const std::string& path, const std::string& what) {
    const std::string loc = spec.locations ? locate(spec, path) : "";
    throw Error(spec.source + (loc.empty() ? "" : ":" + loc) + ": error: " + what +
                (loc.empty() ? " (at " + path + ")" : ""));
  };
  if (sweep.base().seed() != 0)
    fail("base.seed", "base.seed is derived by gradsim from the sweep's seed and the simulation's "
                      "index; set the top-level 'seed' instead");
  if (auto bad = first_non_utf8(sweep, ""); !bad.empty())
    fail(bad, bad + " is not valid UTF-8 text; traces store it as protobuf text, which must be UTF-8 (write "
                    "the spec as UTF-8, or a character's UTF-8 bytes as escapes: \\303\\251 for e-acute)");
  Validation out;
  std::set<std::string> built;
  try {
    out.count = sim_count(sweep);
  } catch (const SpecError& e) {
    fail(e.path, e.what());
  }
  // The replicas of a configuration (consecutive indices) differ only in their seed, which no
  // check reads: the first replica is validated for all of them.
  const std::uint64_t replicas = std::max<std::uint32_t>(1, sweep.replicas());
  if (out.count > max_sims)
    fail(sweep.axis_size() ? "axis[0]" : "replicas",
         "the sweep has " + std::to_string(out.count) + " simulations, more than the limit of " +
             std::to_string(max_sims) + "; validating alone takes about " +
             detail::format_number(std::ceil(double(out.count / replicas) * 20e-6 / 60)) +
             " minutes. Shrink the axes or replicas, or pass --max-sims " + std::to_string(out.count));
  for (std::uint64_t i = 0; i < out.count; i += replicas) {
    v1::SimSpec sim;
    try {
      sim = sim_at(sweep, i);
    } catch (const SpecError& e) {
      fail(e.path, e.what());
    }
    try {
      resolve(sim, registry);
      // Build the plugin objects once per distinct configuration (not per replica or seed).
      v1::SimSpec key = sim;
      key.clear_seed(), key.clear_label(), key.clear_batch(), key.clear_dtype();
      if (built.insert(key.SerializeAsString()).second) build(sim);
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
    if (!sim.loss().name().empty()) out.plugins.insert({Kind::loss, sim.loss().name()});
    if (!sim.train().optimizer().name().empty()) out.plugins.insert({Kind::optimizer, sim.train().optimizer().name()});
    if (sim.train().has_task()) out.plugins.insert({Kind::layer, "dense"});  // the read-out
    if (net.has_transformer()) {
      out.plugins.insert({Kind::layer, "attention"});
      const auto a = net.transformer().arrangement();
      if (a == v1::Transformer::POST_LN || a == v1::Transformer::PRE_LN || a == v1::Transformer::DEEPNORM)
        out.plugins.insert({Kind::mitigation, "layer_norm"});
    }
    if (const auto& t = sim.train().task(); t.kind() == v1::Task::TEACHER) {
      out.plugins.insert({Kind::loss, "linear_probe"});
      out.plugins.insert({Kind::layer, t.teacher().layer().name()});
      out.plugins.insert({Kind::activation, t.teacher().activation().name()});
      out.plugins.insert({Kind::initializer, t.teacher_init().name()});
      if (t.teacher().has_recurrent()) out.plugins.insert({Kind::cell, t.teacher().recurrent().cell().name()});
    }
    for (const auto& m : sim.mitigations()) out.plugins.insert({Kind::mitigation, m.name()});
    if (!net.recurrent().cell().name().empty()) out.plugins.insert({Kind::cell, net.recurrent().cell().name()});
  }
  return out;
}

}  // namespace gradsim

