#include "io/trace_io.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "error.hpp"

namespace gradsim {

std::string delimited_bytes(const google::protobuf::Message& msg) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    coded.WriteVarint32(std::uint32_t(msg.ByteSizeLong()));
    msg.SerializeWithCachedSizes(&coded);
  }
  return bytes;
}

TraceWriter::TraceWriter(const std::filesystem::path& file, const v1::TraceHeader& header)
    : file_(file), out_(file, std::ios::binary | std::ios::trunc) {
  if (!out_) throw Error(file.string() + ": error: cannot create the traces file; check the directory exists and is writable");
  write(delimited_bytes(header));
}

TraceWriter::TraceWriter(const std::filesystem::path& file) : file_(file), out_(file, std::ios::binary | std::ios::app) {
  if (!out_) throw Error(file.string() + ": error: cannot append to the traces file; check it is writable");
}

void TraceWriter::append(const v1::SimTrace& trace) { write(delimited_bytes(trace)); }

void TraceWriter::append_raw(const std::string& bytes) {
  std::string prefix;
  {
    google::protobuf::io::StringOutputStream stream(&prefix);
    google::protobuf::io::CodedOutputStream(&stream).WriteVarint32(std::uint32_t(bytes.size()));
  }
  write(prefix + bytes);
}

void TraceWriter::write(const std::string& bytes) {
  out_.write(bytes.data(), std::streamsize(bytes.size()));
  out_.flush();
  if (!out_) throw Error(file_.string() + ": error: writing the traces file failed (disk full?)");
}

TraceReader::TraceReader(const std::filesystem::path& file) : file_(file), in_(file, std::ios::binary) {
  if (!in_) throw Error(file.string() + ": error: cannot open the traces file; check the path");
  file_size_ = std::filesystem::file_size(file);
  // A header starts with its length, then field 1: the magic string. Look for it first, so a
  // foreign file is called that and not a truncated traces file.
  std::string start(32, '\0');
  in_.read(start.data(), std::streamsize(start.size()));
  if (start.substr(0, in_.gcount()).find(kTracesMagic) == std::string::npos)
    throw Error(file.string() + ": error: not a gradsim traces file (no '" + kTracesMagic +
                "' header); was it written by `gradsim run`?");
  in_.clear();
  in_.seekg(0);
  std::string bytes;
  const auto r = read_record(bytes);
  if (r == Read::truncated)
    throw Error(file.string() + ": error: the file ends inside its header; it holds no complete simulation");
  if (r != Read::ok || !header_.ParseFromString(bytes) || header_.magic() != kTracesMagic)
    throw Error(file.string() + ": error: not a gradsim traces file (no valid header); was it written by `gradsim run`?");
  if (header_.format_version() > kTracesFormat)
    throw Error(file.string() + ": error: traces format " + std::to_string(header_.format_version()) +
                " is newer than this gradsim reads (" + std::to_string(kTracesFormat) + "); update gradsim");
}

TraceReader::Read TraceReader::read_record(std::string& bytes) {
  // Varint length: 7 bits a byte, least significant first, high bit = more bytes follow.
  std::uint64_t size = 0;
  int shift = 0, c = 0;
  for (bool first = true;; first = false, shift += 7) {
    c = in_.get();
    if (c == EOF) return first ? Read::eof : Read::truncated;
    if (shift > 28) throw Error(file_.string() + ": error: corrupt record length at byte " + std::to_string(good_bytes_));
    size |= std::uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
  }
  const std::uint64_t end = good_bytes_ + std::uint64_t(shift / 7 + 1) + size;
  if (end > file_size_) return Read::truncated;  // checked first: never allocate a bogus size
  bytes.resize(size);
  in_.read(bytes.data(), std::streamsize(size));
  if (std::uint64_t(in_.gcount()) != size) return Read::truncated;
  good_bytes_ = end;
  return Read::ok;
}

bool TraceReader::next(v1::SimTrace& trace, std::string* raw) {
  if (truncated_) return false;
  std::string local, &bytes = raw ? *raw : local;
  switch (read_record(bytes)) {
    case Read::eof: return false;
    case Read::truncated: truncated_ = true; return false;
    case Read::ok: break;
  }
  if (!trace.ParseFromString(bytes))
    throw Error(file_.string() + ": error: record " + std::to_string(count_) + " ending at byte " +
                std::to_string(good_bytes_) + " is corrupt");
  ++count_;
  return true;
}

}  // namespace gradsim
