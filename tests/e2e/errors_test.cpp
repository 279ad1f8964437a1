// The catalogue of bad inputs (docs/errors.md), run as written: every ```case block there is
// a test. A block lists files to create (`file NAME`, then its lines; \xNN in a name is that
// byte), then commands (`run ...`, through sh, in a fresh directory; `gradsim` is the binary
// under test, {fixtures} the directory of the test plugins), each followed by the exit status
// it must have (`exit N`) and lines its output must contain whole (`says ...`). So the
// catalogue cannot drift from what gradsim prints.
#include <gmock/gmock.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

struct Step {
  std::string command;
  int exit = 0;
  std::vector<std::string> says;
};
struct Case {
  std::string title;
  std::vector<std::pair<std::string, std::string>> files;
  std::vector<Step> steps;
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
  return s;
}

std::string unescape_bytes(const std::string& s) {  // \xNN -> the byte
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s.compare(i, 2, "\\x") == 0 && i + 3 < s.size() + 0 && std::isxdigit(s[i + 2]) && std::isxdigit(s[i + 3]))
      out += char(std::stoi(s.substr(i + 2, 2), nullptr, 16)), i += 3;
    else
      out += s[i];
  return out;
}

std::vector<Case> catalogue() {
  std::ifstream in(GRADSIM_ERRORS_DOC);
  std::vector<Case> cases;
  std::string line, title;
  bool inside = false;
  std::string* file = nullptr;
  while (std::getline(in, line)) {
    if (line.rfind("### ", 0) == 0) title = line.substr(4);
    if (!inside && line == "```case") {
      inside = true, file = nullptr;
      cases.push_back({title, {}, {}});
      continue;
    }
    if (!inside) continue;
    auto& c = cases.back();
    if (line == "```") inside = false;
    else if (line.rfind("file ", 0) == 0) c.files.push_back({unescape_bytes(line.substr(5)), ""}), file = &c.files.back().second;
    else if (line.rfind("run ", 0) == 0) c.steps.push_back({line.substr(4), 0, {}}), file = nullptr;
    else if (line.rfind("exit ", 0) == 0 && !c.steps.empty()) c.steps.back().exit = std::stoi(line.substr(5));
    else if (line.rfind("says ", 0) == 0 && !c.steps.empty()) c.steps.back().says.push_back(line.substr(5));
    else if (file) *file += line + "\n";
  }
  return cases;
}

class Catalogue : public ::testing::TestWithParam<Case> {};

TEST_P(Catalogue, SaysWhatTheCatalogueSays) {
  const Case& c = GetParam();
  const fs::path dir = fs::temp_directory_path() / ("gradsim_errors_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(std::hash<std::string>{}(c.title)));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& [name, text] : c.files) std::ofstream(dir / name, std::ios::binary) << text;
  ASSERT_FALSE(c.steps.empty()) << c.title;
  for (const auto& step : c.steps) {
    std::string cmd = replace_all(step.command, "{fixtures}", GRADSIM_FIXTURE_GOOD_DIR);
    cmd = std::regex_replace(cmd, std::regex("(^|[ |;&('])gradsim "), "$1" GRADSIM_BIN " ");
    const std::string full = "cd '" + dir.string() + "' && (" + cmd + ") 2>&1";
    std::string out;
    FILE* p = popen(full.c_str(), "r");
    std::array<char, 4096> buf;
    for (std::size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
    const int status = pclose(p);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    EXPECT_EQ(code, step.exit) << c.title << "\n$ " << step.command << "\n" << out;
    std::vector<std::string> lines;
    std::stringstream ss(out);
    for (std::string l; std::getline(ss, l);) lines.push_back(l);
    for (const auto& want : step.says) {
      const std::string w = replace_all(want, "{fixtures}", GRADSIM_FIXTURE_GOOD_DIR);
      EXPECT_TRUE(std::find(lines.begin(), lines.end(), w) != lines.end())
          << c.title << "\n$ " << step.command << "\nexpected the line:\n" << w << "\ngot:\n" << out;
    }
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Docs, Catalogue, ::testing::ValuesIn(catalogue()), [](const auto& info) {
  std::string n;
  for (char ch : info.param.title) n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return std::to_string(info.index) + "_" + n.substr(0, 60);
});

TEST(Catalogue, HasEveryCase) { EXPECT_GE(catalogue().size(), 30u); }

}  // namespace
