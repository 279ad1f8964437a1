// The traces file: what is written reads back equal; a file cut anywhere reads up to its last
// complete record and says so; a damaged or foreign file is refused with a clear message.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>

#include <fstream>

#include "../common.hpp"
#include "network/engine.hpp"
#include "error.hpp"
#include "run/validate.hpp"
#include "spec/spec.hpp"
#include "run/sweep.hpp"
#include "io/trace_io.hpp"

namespace gradsim {
namespace {

using ::testing::HasSubstr;
using google::protobuf::util::MessageDifferencer;

struct TracesFixture : ::testing::Test {
  void SetUp() override {
    file = std::filesystem::temp_directory_path() /
           ("gradsim_trace_io_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".pb");
    spec = parse_spec("seed: 5 base { network { depth: 4 width: 6 activation { name: \"relu\" } } }\n"
                      "axis { path: \"network.depth\" numbers: [2, 3, 4] }", "t.textproto");
    const auto v = validate(spec, test::builtins());
    header = make_header(spec, test::builtins(), v);
    TraceWriter w(file, header);
    for (std::uint64_t i = 0; i < v.count; ++i) {
      v1::SimTrace t;
      t.set_index(i);
      *t.mutable_spec() = sim_at(spec.sweep, i);
      resolve(*t.mutable_spec(), test::builtins());
      simulate(t.spec(), test::builtins(), t);
      w.append(t);
      traces.push_back(t);
    }
  }
  void TearDown() override { std::filesystem::remove(file); }

  std::vector<v1::SimTrace> read_all(TraceReader& r) {
    std::vector<v1::SimTrace> out;
    for (v1::SimTrace t; r.next(t);) out.push_back(t);
    return out;
  }

  std::filesystem::path file;
  SpecFile spec;
  v1::TraceHeader header;
  std::vector<v1::SimTrace> traces;
};

TEST_F(TracesFixture, RoundTripsHeaderAndRecords) {
  TraceReader r(file);
  EXPECT_TRUE(MessageDifferencer::Equals(r.header(), header));
  EXPECT_EQ(r.header().num_sims(), 3u);
  EXPECT_EQ(r.header().plugins_size(), 4);  // dense, relu, gaussian, linear_probe
  auto back = read_all(r);
  ASSERT_EQ(back.size(), traces.size());
  for (std::size_t i = 0; i < back.size(); ++i) EXPECT_TRUE(MessageDifferencer::Equals(back[i], traces[i])) << i;
  EXPECT_FALSE(r.truncated());
  EXPECT_EQ(r.good_bytes(), std::filesystem::file_size(file));
}

TEST_F(TracesFixture, TruncatedFileReadsUpToItsLastCompleteRecord) {
  const auto size = std::filesystem::file_size(file);
  const std::uint64_t last = framed_bytes(traces.back()).size();
  // Cut one byte short, inside the last record's body, and inside its length prefix.
  for (std::uint64_t cut : {size - 1, size - last / 2, size - last + 1}) {
    std::filesystem::resize_file(file, cut);
    TraceReader r(file);
    auto back = read_all(r);
    EXPECT_EQ(back.size(), traces.size() - 1) << cut;
    EXPECT_TRUE(r.truncated()) << cut;
    EXPECT_EQ(r.good_bytes(), size - last);
  }
}

TEST_F(TracesFixture, CorruptRecordIsReported) {
  const auto size = std::filesystem::file_size(file);
  const std::uint64_t last = framed_bytes(traces.back()).size();
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(size - last + 3));
    const std::string junk(8, '\xff');
    f.write(junk.data(), std::streamsize(junk.size()));
  }
  TraceReader r(file);
  v1::SimTrace t;
  EXPECT_TRUE(r.next(t));
  EXPECT_TRUE(r.next(t));
  try {
    r.next(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("record 2 at byte"));
    EXPECT_THAT(e.what(), HasSubstr("is damaged (checksum mismatch); the 2 records before it are intact"));
  }
}

// Every single bit flipped in a record (its length, body or checksum) is noticed: the read
// fails, or ends early as truncated; never does a changed record read as valid.
TEST_F(TracesFixture, EverySingleBitFlipIsNoticed) {
  std::ifstream in(file, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t second_start = framed_bytes(header).size() + framed_bytes(traces[0]).size();
  const std::size_t last = framed_bytes(traces[1]).size();
  int silent = 0, flips = 0;
  for (std::size_t byte = second_start; byte < second_start + last; ++byte)
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[byte] = char(bad[byte] ^ (1 << bit));
      std::ofstream(file, std::ios::binary | std::ios::trunc) << bad;
      ++flips;
      try {
        TraceReader r(file);
        v1::SimTrace t;
        std::uint64_t n = 0;
        while (r.next(t)) ++n;
        silent += n == 3 && !r.truncated();
      } catch (const Error&) {
      }
    }
  EXPECT_GT(flips, 1000);
  EXPECT_EQ(silent, 0);
}

// A length prefix of 30 GB (a sparse file can be that large) is refused before anything is
// allocated for it.
TEST_F(TracesFixture, AHugeLengthPrefixIsRefusedWithoutAllocating) {
  std::filesystem::resize_file(file, framed_bytes(header).size() + framed_bytes(traces[0]).size());
  {
    std::ofstream out(file, std::ios::binary | std::ios::app);
    out << char(0x80) << char(0x80) << char(0x80) << char(0x80) << char(0x70);  // 30 GB, roughly
  }
  std::filesystem::resize_file(file, std::uint64_t(40) << 30);  // sparse: takes no disk
  TraceReader r(file);
  v1::SimTrace t;
  EXPECT_TRUE(r.next(t));
  try {
    r.next(t);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("more than any gradsim record (256 MiB): the file is damaged"));
  }
  std::filesystem::remove(file);
}

TEST_F(TracesFixture, ForeignFileIsRefused) {
  std::ofstream(file, std::ios::trunc) << "hello, I am a text file\n";
  try {
    TraceReader r(file);
    FAIL();
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a gradsim traces file"));
  }
}

}  // namespace
}  // namespace gradsim
