// TensorBoard scalar logging without TensorFlow: hand-encoded Event protobufs in TFRecord framing
// (tensorboard/compat/proto/event.proto, summary.proto). Plain C++17, no LibTorch.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace stoch {

// Appends scalars to one event file. Not thread-safe: use it from the thread that logs metrics.
class TensorBoardWriter {
 public:
  // Creates dir if needed and opens dir/events.out.tfevents.<unix seconds>.<hostname> (with a
  // ".<n>" suffix if that name is taken, so a second writer never truncates a first one's file);
  // writes the file_version record ("brain.Event:2") first. Throws std::runtime_error naming the
  // path on failure.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Writes and flushes one record, so a killed run keeps its curves. value is stored as a float
  // (TensorBoard's simple_value); NaN and inf are written as they are. wall_time < 0 means now.
  // Throws std::runtime_error naming the path when the write fails.
  void scalar(const std::string& tag, int64_t step, double value, double wall_time = -1);
  void flush();
  void sync();  // flush and fsync
  const std::string& path() const { return path_; }

  // Marks a restart (SessionLog START) at `step`: TensorBoard's readers then drop every value
  // logged earlier at a step >= `step`, so a resumed run's re-logged steps replace the old ones.
  void session_start(int64_t step);

 private:
  void write_record(const std::string& data);
  [[noreturn]] void write_failed();  // throws with the reason and the free space

  std::string path_;
  std::FILE* file_ = nullptr;
};

// Encodes one framed record (length, masked crc of length, data, masked crc of data) — exposed
// for tests.
std::string tfrecord_frame(const std::string& data);

// Encodes an Event protobuf with one scalar summary value — exposed for tests.
std::string scalar_event(const std::string& tag, int64_t step, float value, double wall_time);

// Encodes an Event protobuf carrying SessionLog{status: START} — exposed for tests.
std::string session_start_event(int64_t step, double wall_time);

}  // namespace stoch
