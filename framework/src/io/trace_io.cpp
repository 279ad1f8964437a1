#include "io/trace_io.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <zlib.h>

#include "error.hpp"
#include "utf8.hpp"

namespace gradsim {

namespace {

std::string varint(std::uint64_t v) {
  std::string out;
  do {
    out += char((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return out;
}

std::string le32(std::uint32_t v) {
  return {char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char((v >> 24) & 0xff)};
}

std::string frame(const std::string& body) { return varint(body.size()) + body + le32(crc32(body)); }

}  // namespace

std::uint32_t crc32(const std::string& bytes) {  // zlib's: several bytes per cycle
  return std::uint32_t(::crc32_z(::crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

std::string framed_bytes(const google::protobuf::Message& msg) {
  std::string body;
  msg.ByteSizeLong();  // caches the sizes SerializeWithCachedSizes uses
  {
    google::protobuf::io::StringOutputStream stream(&body);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeWithCachedSizes(&coded);
  }
  return frame(body);
}

OutputLock::OutputLock(const std::filesystem::path& file) {
  const std::string name = escape_utf8(file.string());
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(name + ": error: cannot open for writing (" + std::strerror(errno) + "); check the directory");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    throw Error(name + ": error: another gradsim run is writing this file; wait for it to finish, or write "
                       "elsewhere with -o");
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

TraceWriter::TraceWriter(const std::filesystem::path& file, const v1::TraceHeader& header)
    : name_(escape_utf8(file.string())) {
  if (file == "-") {
    fd_ = STDOUT_FILENO, owned_ = false;
  } else {
    fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw Error(name_ + ": error: cannot create the traces file (" + std::strerror(errno) +
                  "); check the directory exists and is writable");
  }
  write(framed_bytes(header));
}

TraceWriter::TraceWriter(const std::filesystem::path& file) : name_(escape_utf8(file.string())) {
  fd_ = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw Error(name_ + ": error: cannot append to the traces file (" + std::strerror(errno) + ")");
}

TraceWriter::~TraceWriter() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void TraceWriter::append(const v1::SimTrace& trace) { write(framed_bytes(trace)); }

void TraceWriter::append_raw(const std::string& bytes) { write(frame(bytes)); }

void TraceWriter::write(const std::string& bytes) {
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(name_ + ": error: writing the traces file failed (" + std::strerror(n < 0 ? errno : ENOSPC) +
                  "); the records before this one are complete");
    done += std::size_t(n);
  }
}

TraceReader::TraceReader(const std::filesystem::path& file) : name_(escape_utf8(file.string())) {
  if (file == "-") {
    in_ = &std::cin;
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec)) throw Error(name_ + ": error: is a directory, not a traces file");
    owned_ = std::make_unique<std::ifstream>(file, std::ios::binary);
    if (!*owned_) throw Error(name_ + ": error: cannot open the traces file; check the path");
    in_ = owned_.get();
    if (std::filesystem::is_regular_file(file, ec)) file_size_ = std::filesystem::file_size(file, ec);
  }
  // A header starts with its length, then field 1: the magic string. Look for it first, so a
  // foreign file is called that and not a truncated traces file. (Read ahead into pending_,
  // which get() serves first: standard input cannot seek back.)
  while (pending_.size() < 32) {
    const int c = in_->get();
    if (c == EOF) break;
    pending_ += char(c);
  }
  if (pending_.empty()) {
    header_truncated_ = true;  // an empty file: a run that died before writing its header
    return;
  }
  if (pending_.find(kTracesMagic) == std::string::npos)
    throw Error(name_ + ": error: not a gradsim traces file (no '" + kTracesMagic +
                "' header); was it written by `gradsim run`?");
  std::string bytes;
  const auto r = read_record(bytes, false);
  if (r != Read::ok) {
    header_truncated_ = true;
    return;
  }
  if (!header_.ParseFromString(bytes) || header_.magic() != kTracesMagic)
    throw Error(name_ + ": error: not a gradsim traces file (its header is damaged); was it written by `gradsim run`?");
  if (header_.format_version() > kTracesFormat)
    throw Error(name_ + ": error: traces format " + std::to_string(header_.format_version()) +
                " is newer than this gradsim reads (" + std::to_string(kTracesFormat) + "); update gradsim");
  checksums_ = header_.format_version() >= 2;
  if (checksums_) {  // the header's own checksum follows it
    std::string crc(4, '\0');
    if (read(crc.data(), 4) != 4) {
      header_truncated_ = true, header_.Clear();
      return;
    }
    if (crc != le32(crc32(bytes)))
      throw Error(name_ + ": error: the header is damaged (checksum mismatch); the file cannot be read");
    good_bytes_ += 4;
  }
}

int TraceReader::get() {
  if (pending_pos_ < pending_.size()) return static_cast<unsigned char>(pending_[pending_pos_++]);
  return in_->get();
}

std::size_t TraceReader::read(char* out, std::size_t n) {
  std::size_t done = 0;
  while (done < n && pending_pos_ < pending_.size()) out[done++] = pending_[pending_pos_++];
  if (done < n) {
    in_->read(out + done, std::streamsize(n - done));
    done += std::size_t(in_->gcount());
  }
  return done;
}

void TraceReader::corrupt(const std::string& what) const {
  throw Error(name_ + ": error: record " + std::to_string(count_) + " at byte " + std::to_string(good_bytes_) + " " +
              what + (count_ ? "; the " + std::to_string(count_) + " records before it are intact" : ""));
}

TraceReader::Read TraceReader::read_record(std::string& bytes, bool checksum) {
  // Varint length: 7 bits a byte, least significant first, high bit = more bytes follow.
  std::uint64_t size = 0;
  int shift = 0, c = 0;
  for (bool first = true;; first = false, shift += 7) {
    c = get();
    if (c == EOF) return first ? Read::eof : Read::truncated;
    if (shift > 28) corrupt("has a corrupt length");
    size |= std::uint64_t(c & 0x7f) << shift;
    if (!(c & 0x80)) break;
  }
  if (size > kMaxRecordBytes)
    corrupt("claims " + std::to_string(size) + " bytes, more than any gradsim record (" +
            std::to_string(kMaxRecordBytes >> 20) + " MiB): the file is damaged");
  const std::uint64_t end = good_bytes_ + std::uint64_t(shift / 7 + 1) + size + (checksum ? 4 : 0);
  if (end > file_size_) return Read::truncated;  // checked first: never allocate past the file
  bytes.resize(size);
  if (read(bytes.data(), size) != size) return Read::truncated;
  if (checksum) {
    char crc[4];
    if (read(crc, 4) != 4) return Read::truncated;
    if (std::string(crc, 4) != le32(crc32(bytes))) corrupt("is damaged (checksum mismatch)");
  }
  good_bytes_ = end;
  return Read::ok;
}

bool TraceReader::next(v1::SimTrace& trace, std::string* raw) {
  if (truncated_ || header_truncated_) return false;
  std::string local, &bytes = raw ? *raw : local;
  switch (read_record(bytes, checksums_)) {
    case Read::eof: return false;
    case Read::truncated: truncated_ = true; return false;
    case Read::ok: break;
  }
  if (!trace.ParseFromString(bytes)) corrupt("is not a simulation record");
  ++count_;
  return true;
}

}  // namespace gradsim
