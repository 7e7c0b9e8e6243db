#include "core/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "core/crc32c.h"
#include "core/disk_space.h"

namespace stoch {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_tag(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (uint64_t(field) << 3) | wire_type);
}

// Little-endian regardless of host order, as the wire format and the record framing require.
void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_double(std::string& out, uint32_t field, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  put_tag(out, field, kFixed64);
  put_le(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  put_tag(out, field, kFixed32);
  put_le(out, bits, 4);
}

void put_bytes(std::string& out, uint32_t field, const std::string& s) {
  put_tag(out, field, kLengthDelimited);
  put_varint(out, s.size());
  out += s;
}

// Event fields (tensorflow/core/util/event.proto).
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5,
                   kEventSessionLog = 7, kSessionLogStatus = 1, kSessionStart = 1;
// Summary.value and Summary.Value fields (tensorflow/core/framework/summary.proto).
constexpr uint32_t kSummaryValue = 1, kValueTag = 1, kValueSimpleValue = 2;

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_double(e, kEventWallTime, wall_time);
  put_tag(e, kEventStep, kVarint);
  put_varint(e, static_cast<uint64_t>(step));  // int64: negatives take ten bytes, as protobuf does
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h = buf;
  for (char& c : h)
    if (c == '/') c = '_';  // keep it one path component
  return h;
}

}  // namespace

std::string tfrecord_frame(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, mask_crc32c(crc32c(out.data(), 8)), 4);
  out += data;
  put_le(out, mask_crc32c(crc32c(data.data(), data.size())), 4);
  return out;
}

std::string scalar_event(const std::string& tag, int64_t step, float value, double wall_time) {
  std::string v;
  put_bytes(v, kValueTag, tag);
  put_float(v, kValueSimpleValue, value);
  std::string summary;
  put_bytes(summary, kSummaryValue, v);
  std::string e = event_header(wall_time, step);
  put_bytes(e, kEventSummary, summary);
  return e;
}

std::string session_start_event(int64_t step, double wall_time) {
  std::string log;
  put_tag(log, kSessionLogStatus, kVarint);
  put_varint(log, kSessionStart);
  std::string e = event_header(wall_time, step);
  put_bytes(e, kEventSessionLog, log);
  return e;
}

void TensorBoardWriter::session_start(int64_t step) {
  write_record(session_start_event(step, now_seconds()));
  flush();
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error("cannot create TensorBoard directory " + dir + ": " + ec.message());
  const double now = now_seconds();
  const std::string base =
      (std::filesystem::path(dir) /
       ("events.out.tfevents." + std::to_string(int64_t(now)) + "." + hostname()))
          .string();
  // "x" (exclusive create) so two writers started in the same second get separate files.
  for (int n = 0; !file_ && n < 1000; ++n) {
    path_ = n == 0 ? base : base + "." + std::to_string(n);
    file_ = std::fopen(path_.c_str(), "wbx");
    if (!file_ && errno != EEXIST) break;
  }
  if (!file_)
    throw std::runtime_error("cannot create TensorBoard event file " + path_ + ": " +
                             std::strerror(errno));
  std::string e;
  put_double(e, kEventWallTime, now);
  put_bytes(e, kEventFileVersion, "brain.Event:2");
  try {
    write_record(e);
    flush();
  } catch (...) {
    std::fclose(file_);
    file_ = nullptr;
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value,
                               double wall_time) {
  if (wall_time < 0) wall_time = now_seconds();
  // Out-of-range double -> float conversion is undefined behaviour; TensorBoard shows inf instead.
  const float f = std::fabs(value) > std::numeric_limits<float>::max()
                      ? static_cast<float>(std::copysign(HUGE_VAL, value))
                      : static_cast<float>(value);
  write_record(scalar_event(tag, step, f, wall_time));
  flush();
}

void TensorBoardWriter::write_failed() {
  const int err = errno;
  std::clearerr(file_);
  throw std::runtime_error(failed_write_message(path_, "write", err));
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0) write_failed();
}

void TensorBoardWriter::sync() {
  flush();
  if (::fsync(::fileno(file_)) != 0) write_failed();
}

void TensorBoardWriter::write_record(const std::string& data) {
  const std::string rec = tfrecord_frame(data);
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size()) write_failed();
}

}  // namespace stoch
