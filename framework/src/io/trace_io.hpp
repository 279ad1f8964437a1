// The traces file: a length-delimited TraceHeader, then one length-delimited SimTrace per
// simulation. Written append-and-flush, so a killed run leaves every finished record readable.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "gradsim.pb.h"

namespace gradsim {

inline constexpr const char* kTracesMagic = "gradsim-traces";
inline constexpr std::uint32_t kTracesFormat = 1;

/// Serialises a message deterministically (same message, same bytes), with its length prefix.
std::string delimited_bytes(const google::protobuf::Message& msg);

class TraceWriter {
 public:
  /// Creates (or truncates) `file` and writes the header. Throws Error if it cannot.
  TraceWriter(const std::filesystem::path& file, const v1::TraceHeader& header);
  /// Opens an existing file to append records to (for --resume; see prepare_resume).
  explicit TraceWriter(const std::filesystem::path& file);
  /// Appends one record and flushes it to the operating system.
  void append(const v1::SimTrace& trace);
  /// Appends a record's bytes as read by TraceReader::next (without the length prefix).
  void append_raw(const std::string& bytes);

 private:
  void write(const std::string& bytes);
  std::filesystem::path file_;
  std::ofstream out_;
};

/// Reads a traces file record by record; memory stays flat however long the file.
class TraceReader {
 public:
  /// Opens `file` and reads its header. Throws Error if it is not a gradsim traces file.
  explicit TraceReader(const std::filesystem::path& file);
  const v1::TraceHeader& header() const { return header_; }
  /// Reads the next record; false at the end of the file, or at an incomplete last record
  /// (then truncated() is true). Throws Error on a record that is complete but corrupt.
  bool next(v1::SimTrace& trace, std::string* raw = nullptr);
  bool truncated() const { return truncated_; }
  std::uint64_t records_read() const { return count_; }
  /// Byte offset just after the last complete record.
  std::uint64_t good_bytes() const { return good_bytes_; }

 private:
  enum class Read { ok, eof, truncated };
  Read read_record(std::string& bytes);
  std::filesystem::path file_;
  std::ifstream in_;
  v1::TraceHeader header_;
  bool truncated_ = false;
  std::uint64_t count_ = 0, good_bytes_ = 0, file_size_ = 0;
};

}  // namespace gradsim
