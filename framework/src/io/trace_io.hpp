// The traces file: a TraceHeader, then one SimTrace per simulation, each framed as
//   varint length | message bytes | CRC-32 of the message bytes (4 bytes, little-endian)
// (format 2; format 1 had no checksum). Written append-and-flush, so a killed run leaves every
// finished record readable; the checksum catches a record damaged after it was written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gradsim.pb.h"

namespace gradsim {

inline constexpr const char* kTracesMagic = "gradsim-traces";
inline constexpr std::uint32_t kTracesFormat = 2;
/// No record gradsim writes is larger; a length prefix beyond it is corruption, refused before
/// anything is allocated for it.
inline constexpr std::uint64_t kMaxRecordBytes = std::uint64_t(256) << 20;

/// CRC-32 (the polynomial of zlib, PNG and Python's zlib.crc32).
std::uint32_t crc32(const std::string& bytes);

/// A message's framed bytes (length prefix, deterministic serialisation, checksum).
std::string framed_bytes(const google::protobuf::Message& msg);

/// Holds an exclusive lock on an output file for as long as it lives, so that two runs (or
/// two --resume) cannot write one file. Creates the file if it does not exist.
class OutputLock {
 public:
  explicit OutputLock(const std::filesystem::path& file);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int fd_ = -1;
};

class TraceWriter {
 public:
  /// Creates (or truncates) `file` and writes the header; "-" is standard output. Throws
  /// Error if it cannot.
  TraceWriter(const std::filesystem::path& file, const v1::TraceHeader& header);
  /// Opens an existing file to append records to (for --resume; see prepare_resume).
  explicit TraceWriter(const std::filesystem::path& file);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;
  /// Appends one record and hands it to the operating system.
  void append(const v1::SimTrace& trace);
  /// Appends a record's message bytes as read by TraceReader::next.
  void append_raw(const std::string& bytes);

 private:
  void write(const std::string& bytes);
  std::string name_;
  int fd_ = -1;
  bool owned_ = true;
};

/// Reads a traces file record by record; memory stays flat however long the file. Reads
/// formats 1 and 2.
class TraceReader {
 public:
  /// Opens `file` ("-": standard input; pipes work) and reads its header. Throws Error if it is
  /// not a gradsim traces file.
  explicit TraceReader(const std::filesystem::path& file);
  const v1::TraceHeader& header() const { return header_; }
  /// Reads the next record; false at the end of the file, or at an incomplete last record
  /// (then truncated() is true). Throws Error on a record that is complete but corrupt
  /// (checksum mismatch, impossible length, not a SimTrace).
  bool next(v1::SimTrace& trace, std::string* raw = nullptr);
  bool truncated() const { return truncated_; }
  std::uint64_t records_read() const { return count_; }
  /// Byte offset just after the last complete record.
  std::uint64_t good_bytes() const { return good_bytes_; }
  /// Whether the file ended inside the header (then header() is empty and next() is false).
  bool header_truncated() const { return header_truncated_; }

 private:
  enum class Read { ok, eof, truncated };
  Read read_record(std::string& bytes, bool checksum);
  int get();
  std::size_t read(char* out, std::size_t n);
  [[noreturn]] void corrupt(const std::string& what) const;
  std::string name_, pending_;
  std::size_t pending_pos_ = 0;
  std::unique_ptr<std::istream> owned_;
  std::istream* in_ = nullptr;
  v1::TraceHeader header_;
  bool truncated_ = false, header_truncated_ = false, checksums_ = true;
  std::uint64_t count_ = 0, good_bytes_ = 0, file_size_ = UINT64_MAX;
};

}  // namespace gradsim
