// TensorBoard event files without a protobuf library (spec A9): TFRecord framing (uint64 length, masked
// CRC-32C of the length, data, masked CRC-32C of the data) around hand-encoded tensorflow.Event messages
// carrying scalar and histogram summaries; what tf.summary's EventFileWriter writes. Plus a strict reader for tests.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"

namespace dino::io {

// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF) of n bytes;
// pass a previous result as crc to extend it. crc32c("123456789") = 0xE3069283.
inline std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

// TFRecord's masked CRC: rotate right by 15 bits and add a constant, so CRCs of data holding CRCs stay useful.
inline std::uint32_t masked_crc32c(const void* data, std::size_t n) {
  const std::uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

// One scalar of a summary: the tag is the metric name, the value TensorBoard's float32 simple_value.
struct TfScalar {
  std::string tag;
  float value = 0.f;
};

// tensorflow.HistogramProto: statistics of the values and bucket counts. bucket_limit[i] is the right edge of
// bucket i; the left edge of bucket 0 is min. TensorBoard draws bucket i from bucket_limit[i-1] (min for i = 0) to
// bucket_limit[i] (max for the last bucket): its data_compat conversion replaces the last limit by max.
struct Histogram {
  double min = 0.0;
  double max = 0.0;
  double num = 0.0;
  double sum = 0.0;
  double sum_squares = 0.0;
  std::vector<double> bucket_limit;
  std::vector<double> bucket;
};

// One histogram of a summary, under the tag of its metric name.
struct TfHistogram {
  std::string tag;
  Histogram histo;
};

// The fields of tensorflow.Event that we write and read back. file_version is set in the first event of a file
// only; has_session_log with session_status 1 (SessionLog.START) marks a restart.
struct TfEvent {
  double wall_time = 0.0;
  std::int64_t step = 0;
  std::string file_version;
  std::vector<TfScalar> scalars;
  std::vector<TfHistogram> histograms;
  bool has_session_log = false;
  int session_status = 0;
};

namespace tfevents_detail {

// Protobuf wire types.
constexpr int kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5;

inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline void put_key(std::string& out, int field, int wire) { put_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire); }
inline void put_le(std::string& out, std::uint64_t v, int n) {
  for (int b = 0; b < n; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xFF));
}
inline void put_bytes(std::string& out, int field, const std::string& s) {
  put_key(out, field, kBytes);
  put_varint(out, s.size());
  out += s;
}
inline std::uint64_t double_bits(double v) {
  std::uint64_t u = 0;
  std::memcpy(&u, &v, 8);
  return u;
}
inline double bits_double(std::uint64_t u) {
  double v = 0.0;
  std::memcpy(&v, &u, 8);
  return v;
}
inline void put_double(std::string& out, int field, double v) {
  put_key(out, field, kFixed64);
  put_le(out, double_bits(v), 8);
}
// A repeated double in proto3's packed form: one length-delimited field of little-endian doubles.
inline void put_packed(std::string& out, int field, const std::vector<double>& v) {
  if (v.empty()) return;
  std::string data;
  data.reserve(8 * v.size());
  for (double x : v) put_le(data, double_bits(x), 8);
  put_bytes(out, field, data);
}

// HistogramProto: min (1), max (2), num (3), sum (4), sum_squares (5), each written even when zero so the bits of
// -0.0 survive; bucket_limit (6) and bucket (7) packed.
inline std::string encode_histogram(const Histogram& h) {
  std::string out;
  put_double(out, 1, h.min);
  put_double(out, 2, h.max);
  put_double(out, 3, h.num);
  put_double(out, 4, h.sum);
  put_double(out, 5, h.sum_squares);
  put_packed(out, 6, h.bucket_limit);
  put_packed(out, 7, h.bucket);
  return out;
}

// A bounded cursor over one message's bytes; errors carry what a caller prefixes with the file and offset.
struct Reader {
  const std::string& s;
  std::size_t i, end;
  bool varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= end) return false;
      const auto b = static_cast<unsigned char>(s[i++]);
      v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool le(std::uint64_t& v, int n) {
    if (end - i < static_cast<std::size_t>(n)) return false;
    v = 0;
    for (int b = 0; b < n; ++b) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[i++])) << (8 * b);
    return true;
  }
  // Reads one field key and, for a length-delimited field, the bounds of its payload [from, to).
  bool field(int& number, int& wire, std::size_t& from, std::size_t& to) {
    std::uint64_t key = 0;
    if (!varint(key)) return false;
    number = static_cast<int>(key >> 3);
    wire = static_cast<int>(key & 7);
    if (wire == kBytes) {
      std::uint64_t len = 0;
      if (!varint(len) || len > end - i) return false;
      from = i;
      to = i + static_cast<std::size_t>(len);
      i = to;
    }
    return number > 0;
  }
  bool skip(int wire) {
    std::uint64_t v = 0;
    switch (wire) {
      case kVarint: return varint(v);
      case kFixed64: return le(v, 8);
      case kFixed32: return le(v, 4);
      case kBytes: return true;  // field() already stepped over the payload
      default: return false;
    }
  }
};

// Parses a HistogramProto. Repeated doubles are accepted packed or one per field, as protobuf parsers must.
inline bool parse_histogram(const std::string& s, std::size_t from, std::size_t to, Histogram& out) {
  Reader r{s, from, to};
  while (r.i < r.end) {
    int num = 0, wire = 0;
    std::size_t a = 0, b = 0;
    if (!r.field(num, wire, a, b)) return false;
    std::uint64_t v = 0;
    if (num >= 1 && num <= 5 && wire == kFixed64) {
      if (!r.le(v, 8)) return false;
      double* const fields[] = {&out.min, &out.max, &out.num, &out.sum, &out.sum_squares};
      *fields[num - 1] = bits_double(v);
    } else if ((num == 6 || num == 7) && wire == kFixed64) {
      if (!r.le(v, 8)) return false;
      (num == 6 ? out.bucket_limit : out.bucket).push_back(bits_double(v));
    } else if ((num == 6 || num == 7) && wire == kBytes) {
      if ((b - a) % 8 != 0) return false;
      Reader pr{s, a, b};
      while (pr.i < pr.end) {
        if (!pr.le(v, 8)) return false;
        (num == 6 ? out.bucket_limit : out.bucket).push_back(bits_double(v));
      }
    } else if (!r.skip(wire)) {
      return false;
    }
  }
  return true;
}

// Parses a Summary.Value: tag (1, string), simple_value (2, float), histo (5, HistogramProto); other fields are
// skipped. A value with histo is a histogram, any other a scalar (proto3 writers omit a simple_value of 0).
inline bool parse_value(const std::string& s, std::size_t from, std::size_t to, TfEvent& e) {
  Reader r{s, from, to};
  std::string tag;
  float value = 0.f;
  bool is_histogram = false;
  Histogram histo;
  while (r.i < r.end) {
    int num = 0, wire = 0;
    std::size_t a = 0, b = 0;
    if (!r.field(num, wire, a, b)) return false;
    if (num == 1 && wire == kBytes) {
      tag = s.substr(a, b - a);
    } else if (num == 2 && wire == kFixed32) {
      std::uint64_t v = 0;
      if (!r.le(v, 4)) return false;
      const auto u = static_cast<std::uint32_t>(v);
      std::memcpy(&value, &u, 4);
    } else if (num == 5 && wire == kBytes) {
      is_histogram = true;
      if (!parse_histogram(s, a, b, histo)) return false;
    } else if (!r.skip(wire)) {
      return false;
    }
  }
  if (is_histogram) {
    e.histograms.push_back({std::move(tag), std::move(histo)});
  } else {
    e.scalars.push_back({std::move(tag), value});
  }
  return true;
}

}  // namespace tfevents_detail

// The protobuf bytes of an Event: wall_time (1, double), step (2, int64), file_version (3, string, when set),
// summary (5) with one Summary.Value (1) per scalar: tag (1), simple_value (2), then one per histogram: tag (1),
// histo (5); session_log (6) with its status (1) when has_session_log.
inline std::string encode_event(const TfEvent& e) {
  using namespace tfevents_detail;
  std::string out;
  std::uint64_t wall = 0;
  std::memcpy(&wall, &e.wall_time, 8);
  put_key(out, 1, kFixed64);
  put_le(out, wall, 8);
  put_key(out, 2, kVarint);
  put_varint(out, static_cast<std::uint64_t>(e.step));  // int64: negative steps take ten bytes
  if (!e.file_version.empty()) put_bytes(out, 3, e.file_version);
  if (!e.scalars.empty() || !e.histograms.empty()) {
    std::string summary;
    for (const TfScalar& s : e.scalars) {
      std::string value;
      put_bytes(value, 1, s.tag);
      std::uint32_t f = 0;
      std::memcpy(&f, &s.value, 4);
      put_key(value, 2, kFixed32);
      put_le(value, f, 4);
      put_bytes(summary, 1, value);
    }
    for (const TfHistogram& h : e.histograms) {
      std::string value;
      put_bytes(value, 1, h.tag);
      put_bytes(value, 5, encode_histogram(h.histo));
      put_bytes(summary, 1, value);
    }
    put_bytes(out, 5, summary);
  }
  if (e.has_session_log) {
    std::string log;
    put_key(log, 1, kVarint);
    put_varint(log, static_cast<std::uint64_t>(e.session_status));
    put_bytes(out, 6, log);
  }
  return out;
}

// One TFRecord: uint64 length (little-endian), masked CRC-32C of those 8 bytes, data, masked CRC-32C of data.
inline std::string tfrecord(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  tfevents_detail::put_le(out, data.size(), 8);
  tfevents_detail::put_le(out, masked_crc32c(out.data(), 8), 4);
  out += data;
  tfevents_detail::put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

// Seconds since the Unix epoch, as Event.wall_time.
inline double wall_time_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Appends events to a new file "<dir>/events.out.tfevents.<unix seconds>.<hostname>" (TensorBoard reads every
// file with "tfevents" in its name and merges them by step). If that name is taken (a second writer within the
// same second, as a resumed run may be), ".1", ".2", ... is appended. The first event holds file_version
// "brain.Event:2". Every add_* call writes its record and flushes it to the operating system, so a crash of
// the process loses nothing already added.
class TfEventsWriter {
 public:
  explicit TfEventsWriter(const std::string& dir) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
    std::string hostname(host);
    for (char& c : hostname)
      if (c == '/') c = '_';
    const std::string base = (std::filesystem::path(dir) /
                              ("events.out.tfevents." + std::to_string(static_cast<long long>(std::time(nullptr))) +
                               "." + hostname)).string();
    for (int n = 0;; ++n) {
      path_ = n == 0 ? base : base + "." + std::to_string(n);
      const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd >= 0) {
        file_ = ::fdopen(fd, "wb");
        if (!file_) ::close(fd);
        break;
      }
      DINO_CHECK(errno == EEXIST && n < 1000, "cannot create the TensorBoard event file '", path_, "': ",
                 std::strerror(errno));
    }
    DINO_CHECK(file_ != nullptr, "cannot open the TensorBoard event file '", path_, "': ", std::strerror(errno));
    TfEvent first;
    first.wall_time = wall_time_now();
    first.file_version = "brain.Event:2";
    write(first);
  }
  TfEventsWriter(const TfEventsWriter&) = delete;
  TfEventsWriter& operator=(const TfEventsWriter&) = delete;
  ~TfEventsWriter() {
    if (file_) std::fclose(file_);
  }

  const std::string& path() const { return path_; }

  // One event at step holding every scalar of values (one tag each).
  void add_scalars(std::int64_t step, const std::vector<TfScalar>& values, double wall_time = wall_time_now()) {
    add_summary(step, values, {}, wall_time);
  }

  // One event at step holding every scalar and every histogram (one tag each).
  void add_summary(std::int64_t step, const std::vector<TfScalar>& scalars, const std::vector<TfHistogram>& histograms,
                   double wall_time = wall_time_now()) {
    TfEvent e;
    e.wall_time = wall_time;
    e.step = step;
    e.scalars = scalars;
    e.histograms = histograms;
    write(e);
  }

  // SessionLog START at step: TensorBoard discards the events of earlier files whose step is >= step (its
  // purge of orphaned data after a restart), which is how a resumed run hides the rows it truncated.
  void add_session_start(std::int64_t step, double wall_time = wall_time_now()) {
    TfEvent e;
    e.wall_time = wall_time;
    e.step = step;
    e.has_session_log = true;
    e.session_status = 1;
    write(e);
  }

  // Writes any event (encode_event) as one record and flushes.
  void write(const TfEvent& e) {
    DINO_CHECK(file_ != nullptr, "the TensorBoard event file '", path_, "' is closed");
    const std::string rec = tfrecord(encode_event(e));
    const bool ok = std::fwrite(rec.data(), 1, rec.size(), file_) == rec.size() && std::fflush(file_) == 0;
    DINO_CHECK(ok, "cannot write the TensorBoard event file '", path_, "': ", std::strerror(errno));
  }

  // fsyncs and closes the file; later writes fail. Idempotent.
  void close() {
    if (!file_) return;
    std::FILE* f = file_;
    file_ = nullptr;
    std::string err;
    if (std::fflush(f) != 0) err = std::strerror(errno);
    if (err.empty() && ::fsync(::fileno(f)) != 0 && errno != EINVAL) err = std::strerror(errno);
    if (std::fclose(f) != 0 && err.empty()) err = std::strerror(errno);
    DINO_CHECK(err.empty(), "cannot close the TensorBoard event file '", path_, "': ", err);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Reads every event of a TensorBoard event file, checking the framing and both masked CRC-32Cs of every
// record. A truncated record, a CRC mismatch or a malformed Event: dino::Error naming the file and the offset.
inline std::vector<TfEvent> read_tfevents(const std::string& path) {
  using namespace tfevents_detail;
  std::ifstream in(path, std::ios::binary);
  DINO_CHECK(in, "cannot open the TensorBoard event file '", path, "'");
  const std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DINO_CHECK(!in.bad(), "cannot read the TensorBoard event file '", path, "'");
  std::vector<TfEvent> events;
  std::size_t at = 0;
  auto u32 = [&](std::size_t k) {
    std::uint32_t v = 0;
    for (int b = 0; b < 4; ++b) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[k + b])) << (8 * b);
    return v;
  };
  while (at < s.size()) {
    DINO_CHECK(s.size() - at >= 12, "'", path, "': truncated record header at byte ", at);
    std::uint64_t len = 0;
    for (int b = 0; b < 8; ++b) len |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[at + b])) << (8 * b);
    DINO_CHECK(u32(at + 8) == masked_crc32c(s.data() + at, 8), "'", path, "': CRC mismatch of the record length at byte ",
               at);
    DINO_CHECK(len <= s.size() - at - 12 && s.size() - at - 12 - len >= 4, "'", path, "': truncated record at byte ", at,
               " (", len, " data bytes declared)");
    const std::size_t from = at + 12, to = from + static_cast<std::size_t>(len);
    DINO_CHECK(u32(to) == masked_crc32c(s.data() + from, to - from), "'", path, "': CRC mismatch of the record data at byte ",
               at);
    TfEvent e;
    Reader r{s, from, to};
    bool ok = true;
    while (ok && r.i < r.end) {
      int num = 0, wire = 0;
      std::size_t a = 0, b = 0;
      ok = r.field(num, wire, a, b);
      if (!ok) break;
      std::uint64_t v = 0;
      if (num == 1 && wire == kFixed64) {
        ok = r.le(v, 8);
        std::memcpy(&e.wall_time, &v, 8);
      } else if (num == 2 && wire == kVarint) {
        ok = r.varint(v);
        e.step = static_cast<std::int64_t>(v);
      } else if (num == 3 && wire == kBytes) {
        e.file_version = s.substr(a, b - a);
      } else if (num == 5 && wire == kBytes) {
        Reader sr{s, a, b};
        while (ok && sr.i < sr.end) {
          int sn = 0, sw = 0;
          std::size_t va = 0, vb = 0;
          ok = sr.field(sn, sw, va, vb);
          if (!ok) break;
          if (sn == 1 && sw == kBytes) {
            ok = parse_value(s, va, vb, e);
          } else {
            ok = sr.skip(sw);
          }
        }
      } else if (num == 6 && wire == kBytes) {
        e.has_session_log = true;
        Reader lr{s, a, b};
        while (ok && lr.i < lr.end) {
          int ln = 0, lw = 0;
          std::size_t la = 0, lb = 0;
          ok = lr.field(ln, lw, la, lb);
          if (!ok) break;
          if (ln == 1 && lw == kVarint) {
            ok = lr.varint(v);
            e.session_status = static_cast<int>(v);
          } else {
            ok = lr.skip(lw);
          }
        }
      } else {
        ok = r.skip(wire);
      }
    }
    DINO_CHECK(ok, "'", path, "': malformed Event protobuf in the record at byte ", at);
    events.push_back(std::move(e));
    at = to + 4;
  }
  return events;
}

}  // namespace dino::io
