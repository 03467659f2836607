// dino::io metric sinks and result files: MetricsLogger (metrics.jsonl, RFC-4180 metrics.csv, summary.json,
// resume truncation byte for byte), the TensorBoard event writer/reader (CRC-32C, TFRecord framing, corruption
// reports), histograms (make_histogram against numpy.histogram, HistogramProto encoding, histograms.jsonl and its
// resume truncation) and float32 .npy tables (exact header, bit-exact round trip).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../support/errors.hpp"
#include "dino/io/metrics.hpp"
#include "dino/io/npy.hpp"
#include "dino/io/tfevents.hpp"

#include "../support/temp_dir.hpp"

namespace fs = std::filesystem;
using dino::io::MetricsLogger;
using dino::testing::contains;
using dino::testing::error_of;
using Row = std::map<std::string, double>;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

using TempDir = dino::testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

// The event files of a folder, sorted by name.
std::vector<std::string> event_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A strict RFC-4180 parser: records end in CRLF, quoted fields may hold commas, CR, LF and doubled quotes;
// a stray quote or a bare LF outside quotes fails the test.
std::vector<std::vector<std::string>> parse_csv(const std::string& s) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> rec;
  std::string field;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '"') {
      ++i;
      for (;;) {
        REQUIRE_MESSAGE(i < s.size(), "unterminated quoted field");
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            field.push_back('"');
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          field.push_back(s[i++]);
        }
      }
      REQUIRE_MESSAGE((i == s.size() || s[i] == ',' || s[i] == '\r'), "text after a closing quote");
    }
    if (i == s.size()) break;
    if (s[i] == ',') {
      rec.push_back(field);
      field.clear();
      ++i;
    } else if (s[i] == '\r') {
      REQUIRE_MESSAGE((i + 1 < s.size() && s[i + 1] == '\n'), "CR without LF");
      rec.push_back(field);
      field.clear();
      records.push_back(rec);
      rec.clear();
      i += 2;
    } else {
      REQUIRE_MESSAGE((s[i] != '"' && s[i] != '\n'), "quote or LF inside an unquoted field");
      field.push_back(s[i++]);
    }
  }
  REQUIRE_MESSAGE((rec.empty() && field.empty()), "the last record does not end in CRLF");
  return records;
}

// Same double, or both NaN.
bool same(double a, double b) { return (std::isnan(a) && std::isnan(b)) || (a == b && std::signbit(a) == std::signbit(b)); }

// The rows of the logger test: new names appear in later rows, NaN and infinities, names that need CSV quotes.
std::vector<std::pair<std::pair<std::int64_t, std::int64_t>, Row>> sample_rows() {
  return {
      {{0, 0}, {{"train/loss", 1.5}, {"train/s_acc", 0.1}}},
      {{0, 0}, {{"probe/student", 0.3}, {"valid/loss", 2.0}}},
      {{1, 0}, {{"train/loss", kNaN}, {"train/s_acc", 0.4}, {"a,b", 1.0}}},
      {{2, 1}, {{"train/loss", 0.25}, {"train/s_acc", 0.2}, {"q\"x", kInf}, {"a,b", -0.0}}},
      {{2, 1}, {{"probe/student", 0.2}, {"valid/loss", 1.0}}},
      {{3, 1}, {{"train/loss", 1e-5}, {"train/s_acc", 0.3}, {"q\"x", -kInf}}},
  };
}

// Rows of a longer run for the resume test: "valid/loss" appears at step 3, "probe/teacher" at step 7, and the
// validation rows share the step of a training row.
void log_run(MetricsLogger& log, std::int64_t from, std::int64_t to) {
  for (std::int64_t k = from; k <= to; ++k) {
    const double x = static_cast<double>(k);
    log.log(k, k / 4, {{"train/loss", 1.0 / (x + 1.0)}, {"train/s_acc", k % 3 == 0 ? kNaN : 0.1 * x}});
    if (k >= 3 && k % 2 == 1) log.log(k, k / 4, {{"valid/loss", 0.5 * x}, {"probe/student", 0.05 * x}});
    if (k == 7) log.log(k, k / 4, {{"probe/teacher", 0.7}});
  }
}

}  // namespace

TEST_CASE("metrics/tfevents: CRC-32C check value and RFC 3720 vectors") {
  const std::string check = "123456789";
  CHECK(dino::io::crc32c(check.data(), check.size()) == 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), ascending(32);
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<unsigned char>(i);
  CHECK(dino::io::crc32c(zeros.data(), 32) == 0x8A9136AAu);
  CHECK(dino::io::crc32c(ones.data(), 32) == 0x62A8AB43u);
  CHECK(dino::io::crc32c(ascending.data(), 32) == 0x46DD794Eu);
  // Extending a CRC over a split buffer gives the CRC of the whole.
  CHECK(dino::io::crc32c(check.data() + 4, 5, dino::io::crc32c(check.data(), 4)) == 0xE3069283u);
  CHECK(dino::io::crc32c(nullptr, 0) == 0u);
  const std::uint32_t c = 0xE3069283u;
  CHECK(dino::io::masked_crc32c(check.data(), check.size()) == ((c >> 15) | (c << 17)) + 0xA282EAD8u);
}

TEST_CASE("metrics/tfevents: hand-encoded Event bytes") {
  dino::io::TfEvent e;
  e.wall_time = 1.0;
  e.step = 3;
  e.scalars = {{"a", 2.0f}};
  const std::string b = dino::io::encode_event(e);
  // wall_time: key 0x09 + double 1.0; step: key 0x10, varint 3; summary (5): value (1): tag (1) "a", simple_value (2).
  const std::string expected("\x09\x00\x00\x00\x00\x00\x00\xf0\x3f\x10\x03\x2a\x0a\x0a\x08\x0a\x01\x61\x15\x00\x00\x00\x40",
                             23);
  CHECK(b == expected);
  const std::string rec = dino::io::tfrecord(b);
  REQUIRE(rec.size() == b.size() + 16);
  CHECK(static_cast<std::size_t>(static_cast<unsigned char>(rec[0])) == b.size());
  CHECK(rec.compare(1, 7, std::string(7, '\0')) == 0);
  CHECK(rec.compare(12, b.size(), b) == 0);
  // A negative step takes the ten-byte varint of its two's complement and reads back.
  TempDir tmp;
  std::string path;
  {
    dino::io::TfEventsWriter w(tmp.dir.string());
    w.add_scalars(-2, {{"neg", -1.5f}}, 12.5);
    w.add_session_start(7, 13.0);
    path = w.path();
    w.close();
    CHECK(contains(error_of([&] { w.add_scalars(0, {}); }), "closed"));
  }
  const auto events = dino::io::read_tfevents(path);
  REQUIRE(events.size() == 3);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[1].step == -2);
  CHECK(events[1].wall_time == 12.5);
  REQUIRE(events[1].scalars.size() == 1);
  CHECK(events[1].scalars[0].tag == "neg");
  CHECK(events[1].scalars[0].value == -1.5f);
  CHECK(events[2].has_session_log);
  CHECK(events[2].session_status == 1);
  CHECK(events[2].step == 7);
  CHECK_FALSE(events[1].has_session_log);
}

TEST_CASE("metrics/logger: jsonl, csv, tensorboard and summary of rows with new columns and NaN") {
  TempDir tmp;
  const auto rows = sample_rows();
  std::string tb_path;
  {
    MetricsLogger log(tmp.dir.string());
    for (const auto& r : rows) log.log(r.first.first, r.first.second, r.second);
    tb_path = log.tfevents_path();
    CHECK(fs::path(tb_path).parent_path() == tmp.dir);
    char host[256] = {};
    REQUIRE(::gethostname(host, sizeof(host) - 1) == 0);
    const std::string name = fs::path(tb_path).filename().string();
    CHECK(name.rfind("events.out.tfevents.", 0) == 0);
    CHECK(contains(name, std::string(".") + host));
    CHECK(log.columns() ==
          std::vector<std::string>{"train/loss", "train/s_acc", "probe/student", "valid/loss", "a,b", "q\"x"});
    log.close();
    log.close();  // idempotent
    CHECK(contains(error_of([&] { log.log(4, 1, {{"x", 1.0}}); }), "closed"));
  }
  // No temporary file is left behind.
  for (const auto& e : fs::directory_iterator(tmp.dir)) CHECK_FALSE(contains(e.path().string(), ".tmp."));

  // metrics.jsonl: exact text of the first lines, then every value (null for NaN and infinities).
  const std::string jsonl = read_file(tmp.path("metrics.jsonl"));
  CHECK(jsonl.rfind("{\"step\":0,\"epoch\":0,\"train/loss\":1.5,\"train/s_acc\":0.1}\n"
                    "{\"step\":0,\"epoch\":0,\"probe/student\":0.3,\"valid/loss\":2.0}\n"
                    "{\"step\":1,\"epoch\":0,\"a,b\":1.0,\"train/loss\":null,\"train/s_acc\":0.4}\n",
                    0) == 0);
  const auto back = MetricsLogger::read_jsonl(tmp.path("metrics.jsonl"));
  REQUIRE(back.size() == rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(back[i]["step"].get<std::int64_t>() == rows[i].first.first);
    CHECK(back[i]["epoch"].get<std::int64_t>() == rows[i].first.second);
    CHECK(back[i].size() == rows[i].second.size() + 2);
    for (const auto& kv : rows[i].second) {
      REQUIRE(back[i].contains(kv.first));
      if (std::isfinite(kv.second)) {
        CHECK(same(back[i][kv.first].get<double>(), kv.second));
      } else {
        CHECK(back[i][kv.first].is_null());
      }
    }
  }

  // metrics.csv: a valid RFC-4180 table with every column, empty cells for missing and non-finite values.
  const std::string csv_text = read_file(tmp.path("metrics.csv"));
  CHECK(contains(csv_text, ",\"a,b\",\"q\"\"x\"\r\n"));
  const auto csv = parse_csv(csv_text);
  REQUIRE(csv.size() == rows.size() + 1);
  const std::vector<std::string> header{"step", "epoch", "train/loss", "train/s_acc", "probe/student", "valid/loss",
                                        "a,b", "q\"x"};
  CHECK(csv[0] == header);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    REQUIRE(csv[i + 1].size() == header.size());
    CHECK(csv[i + 1][0] == std::to_string(rows[i].first.first));
    CHECK(csv[i + 1][1] == std::to_string(rows[i].first.second));
    for (std::size_t c = 2; c < header.size(); ++c) {
      const auto it = rows[i].second.find(header[c]);
      const std::string& cell = csv[i + 1][c];
      if (it == rows[i].second.end() || !std::isfinite(it->second)) {
        CHECK(cell.empty());
      } else {
        REQUIRE_FALSE(cell.empty());
        CHECK(same(std::stod(cell), it->second));
      }
    }
  }
  CHECK(csv[4][6] == "-0.0");
  CHECK(csv[6][2] == "1e-05");

  // TensorBoard: the version event, then one event per row with one scalar per metric.
  const auto events = dino::io::read_tfevents(tb_path);
  REQUIRE(events.size() == rows.size() + 1);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].scalars.empty());
  const double now = dino::io::wall_time_now();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& e = events[i + 1];
    CHECK(e.file_version.empty());
    CHECK(e.step == rows[i].first.first);
    CHECK(e.wall_time > now - 3600.0);
    CHECK(e.wall_time <= now);
    REQUIRE(e.scalars.size() == rows[i].second.size());
    std::size_t k = 0;
    for (const auto& kv : rows[i].second) {
      CHECK(e.scalars[k].tag == kv.first);
      CHECK(same(e.scalars[k].value, static_cast<float>(kv.second)));
      ++k;
    }
  }

  // summary.json: maximum for "*/s_acc" and "probe/*", last value otherwise, null for non-finite.
  const auto summary = nlohmann::json::parse(read_file(tmp.path("summary.json")));
  CHECK(summary.size() == 6);
  CHECK(summary["train/s_acc"].get<double>() == 0.4);
  CHECK(summary["probe/student"].get<double>() == 0.3);
  CHECK(summary["train/loss"].get<double>() == 1e-5);
  CHECK(summary["valid/loss"].get<double>() == 1.0);
  CHECK(same(summary["a,b"].get<double>(), -0.0));
  CHECK(summary["q\"x"].is_null());
  CHECK(dino::io::summary_takes_max("valid/s_acc"));
  CHECK(dino::io::summary_takes_max("probe/norm/teacher/knn"));
  CHECK_FALSE(dino::io::summary_takes_max("train/s_accx"));
  CHECK_FALSE(dino::io::summary_takes_max("s_acc"));
}

TEST_CASE("metrics/logger: summary max ignores NaN, keeps the last value while none is finite") {
  TempDir tmp;
  MetricsLogger log(tmp.dir.string());
  log.log(0, 0, {{"probe/student", kNaN}, {"train/loss", 2.0}});
  CHECK(log.summary()["probe/student"].is_null());
  log.log(1, 0, {{"probe/student", 0.5}});
  log.log(2, 0, {{"probe/student", kNaN}, {"train/loss", kNaN}});
  log.log(3, 0, {{"probe/student", 0.25}});
  const auto s = nlohmann::json::parse(read_file(tmp.path("summary.json")));
  CHECK(s["probe/student"].get<double>() == 0.5);
  CHECK(s["train/loss"].is_null());
  CHECK(s == log.summary());
}

TEST_CASE("metrics/logger: rejected rows write nothing") {
  TempDir tmp;
  MetricsLogger log(tmp.dir.string());
  log.log(5, 0, {{"x", 1.0}});
  CHECK(contains(error_of([&] { log.log(4, 0, {{"x", 1.0}}); }), "step 4 logged after step 5"));
  CHECK(contains(error_of([&] { log.log(5, 0, {{"step", 1.0}}); }), "reserved"));
  CHECK(contains(error_of([&] { log.log(5, 0, {{"", 1.0}}); }), "reserved or empty"));
  CHECK(contains(error_of([&] { log.log(5, 0, {{"x", 1.0}, {std::string("bad\xff"), 1.0}}); }), "UTF-8"));
  log.log(5, 0, {{"x", 2.0}});
  CHECK(MetricsLogger::read_jsonl(tmp.path("metrics.jsonl")).size() == 2);
  CHECK(parse_csv(read_file(tmp.path("metrics.csv"))).size() == 3);
  CHECK(dino::io::read_tfevents(log.tfevents_path()).size() == 3);
}

TEST_CASE("metrics/logger: read_jsonl reports malformed lines with file and line") {
  TempDir tmp;
  const std::string path = tmp.path("m.jsonl");
  write_file(path, "{\"step\":0,\"epoch\":0,\"a\":1.0}\n{\"step\":1,\"epoch\":0,\"a\":\n");
  std::string err = error_of([&] { MetricsLogger::read_jsonl(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "line 2"));
  write_file(path, "{\"step\":0,\"epoch\":0,\"a\":1.0}\n{\"epoch\":0}\n");
  CHECK(contains(error_of([&] { MetricsLogger::read_jsonl(path); }), "integer \"step\""));
  write_file(path, "{\"step\":0,\"epoch\":0,\"a\":\"text\"}\n");
  CHECK(contains(error_of([&] { MetricsLogger::read_jsonl(path); }), "neither a number nor null"));
  write_file(path, "{\"step\":0,\"epoch\":0,\"a\":1.0}\n{\"step\":1,\"ep");
  err = error_of([&] { MetricsLogger::read_jsonl(path); });
  CHECK(contains(err, "torn"));
  CHECK(contains(err, "line 2"));
  CHECK(contains(error_of([&] { MetricsLogger::read_jsonl(tmp.path("missing.jsonl")); }), "missing.jsonl"));
}

TEST_CASE("metrics/logger: a resumed run ends with the same jsonl, csv and summary as an uninterrupted one") {
  TempDir a, b;
  {
    MetricsLogger log(a.dir.string());
    log_run(log, 0, 9);
  }
  {
    MetricsLogger log(b.dir.string());
    log_run(log, 0, 8);  // the crashed run went past its last checkpoint (step 5)...
  }
  {
    // ...and died in the middle of a line.
    std::ofstream out(b.path("metrics.jsonl"), std::ios::binary | std::ios::app);
    out << "{\"step\":9,\"epoch\":2,\"train/lo";
  }
  const auto before = MetricsLogger::read_jsonl(a.path("metrics.jsonl"));
  {
    MetricsLogger log(b.dir.string(), true, 5);
    // Rows after step 5 are gone; "probe/teacher" (first seen at step 7) is no longer a column.
    const auto kept = MetricsLogger::read_jsonl(b.path("metrics.jsonl"));
    REQUIRE_FALSE(kept.empty());
    CHECK(kept.back()["step"].get<std::int64_t>() == 5);
    CHECK(std::count_if(before.begin(), before.end(), [](const nlohmann::json& r) { return r["step"] <= 5; }) ==
          static_cast<std::ptrdiff_t>(kept.size()));
    CHECK(log.columns() == std::vector<std::string>{"train/loss", "train/s_acc", "probe/student", "valid/loss"});
    CHECK(parse_csv(read_file(b.path("metrics.csv"))).size() == kept.size() + 1);
    CHECK(nlohmann::json::parse(read_file(b.path("summary.json")))["probe/student"].get<double>() == 0.05 * 5);
    CHECK(contains(error_of([&] { log.log(4, 1, {{"x", 1.0}}); }), "step 4 logged after step 5"));
    log_run(log, 6, 9);
  }
  CHECK(read_file(a.path("metrics.jsonl")) == read_file(b.path("metrics.jsonl")));
  CHECK(read_file(a.path("metrics.csv")) == read_file(b.path("metrics.csv")));
  CHECK(read_file(a.path("summary.json")) == read_file(b.path("summary.json")));
  CHECK(MetricsLogger::read_jsonl(b.path("metrics.jsonl")).size() == before.size());

  // TensorBoard: the resumed run adds a second event file that opens with a restart marker at step 6.
  const auto files = event_files(b.dir);
  REQUIRE(files.size() == 2);
  std::vector<dino::io::TfEvent> second;
  for (const auto& f : files) {
    const auto ev = dino::io::read_tfevents(f);
    REQUIRE(ev.size() >= 2);
    if (ev[1].has_session_log) second = ev;
  }
  REQUIRE(second.size() >= 3);
  CHECK(second[0].file_version == "brain.Event:2");
  CHECK(second[1].session_status == 1);
  CHECK(second[1].step == 6);
  CHECK(second[2].step == 6);
  CHECK(second.back().step == 9);

  // Resuming where no metrics.jsonl exists starts empty files.
  TempDir c;
  {
    MetricsLogger log(c.dir.string(), true, 100);
    CHECK(log.columns().empty());
  }
  CHECK(read_file(c.path("metrics.jsonl")).empty());
  CHECK(read_file(c.path("metrics.csv")) == "step,epoch\r\n");
  CHECK(nlohmann::json::parse(read_file(c.path("summary.json"))) == nlohmann::json::object());
}

TEST_CASE("metrics/logger: a resumed run keeps only the rows its checkpoint had seen, even at the same step") {
  TempDir a, b;
  {
    MetricsLogger log(a.dir.string());
    log_run(log, 0, 9);
  }
  std::int64_t rows_at_checkpoint = -1;
  {
    MetricsLogger log(b.dir.string());
    log_run(log, 0, 4);
    log.log(5, 1, {{"train/loss", 1.0 / 6.0}, {"train/s_acc", 0.5}});
    rows_at_checkpoint = log.rows();  // the checkpoint of step 5 precedes step 5's validation...
    log.log(5, 1, {{"valid/loss", 2.5}, {"probe/student", 0.25}});  // ...which was logged before the crash
  }
  CHECK(rows_at_checkpoint == 7);
  {
    MetricsLogger log(b.dir.string(), true, 5, rows_at_checkpoint);
    CHECK(log.rows() == rows_at_checkpoint);
    log.log(5, 1, {{"valid/loss", 2.5}, {"probe/student", 0.25}});  // the resumed run repeats the validation
    log_run(log, 6, 9);
    CHECK(log.rows() == static_cast<std::int64_t>(MetricsLogger::read_jsonl(a.path("metrics.jsonl")).size()));
  }
  CHECK(read_file(a.path("metrics.jsonl")) == read_file(b.path("metrics.jsonl")));
  CHECK(read_file(a.path("metrics.csv")) == read_file(b.path("metrics.csv")));
  CHECK(read_file(a.path("summary.json")) == read_file(b.path("summary.json")));
}

TEST_CASE("metrics/tfevents: a corrupted or truncated event file is reported with its name") {
  TempDir tmp;
  std::string path;
  {
    MetricsLogger log(tmp.dir.string());
    for (const auto& r : sample_rows()) log.log(r.first.first, r.first.second, r.second);
    path = log.tfevents_path();
  }
  const std::string good = read_file(path);
  REQUIRE(dino::io::read_tfevents(path).size() == 7);
  // The first record's data length, from its header.
  std::uint64_t len0 = 0;
  for (int i = 0; i < 8; ++i) len0 |= static_cast<std::uint64_t>(static_cast<unsigned char>(good[i])) << (8 * i);
  const std::size_t second = 12 + len0 + 4;

  std::string bad = good;
  bad[second + 12 + 5] ^= 0x20;  // a byte of the second record's data
  write_file(path, bad);
  std::string err = error_of([&] { dino::io::read_tfevents(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "CRC mismatch of the record data"));
  CHECK(contains(err, "byte " + std::to_string(second)));

  bad = good;
  bad[second + 1] ^= 0x01;  // the second record's length
  write_file(path, bad);
  err = error_of([&] { dino::io::read_tfevents(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "CRC mismatch of the record length"));

  bad = good;
  bad[second + 12 + len0] ^= 0x01;  // the second record's data CRC itself
  write_file(path, bad);
  CHECK(contains(error_of([&] { dino::io::read_tfevents(path); }), "CRC mismatch"));

  write_file(path, good.substr(0, good.size() - 3));
  err = error_of([&] { dino::io::read_tfevents(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "truncated"));

  write_file(path, good.substr(0, second + 5));
  CHECK(contains(error_of([&] { dino::io::read_tfevents(path); }), "truncated record header"));

  // A record whose CRCs match but whose Event does not parse.
  write_file(path, good.substr(0, second) + dino::io::tfrecord(std::string("\x0a\x05" "ab", 4)));
  CHECK(contains(error_of([&] { dino::io::read_tfevents(path); }), "malformed Event"));

  write_file(path, good);
  CHECK(dino::io::read_tfevents(path).size() == 7);
}

TEST_CASE("metrics/npy: header format and bit-exact round trip") {
  TempDir tmp;
  const std::int64_t rows = 3, cols = 5;
  std::vector<float> data(static_cast<std::size_t>(rows * cols));
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = 0.5f * static_cast<float>(i) - 3.25f;
  data[1] = std::numeric_limits<float>::quiet_NaN();
  data[2] = -std::numeric_limits<float>::infinity();
  data[3] = -0.0f;
  data[4] = std::numeric_limits<float>::denorm_min();
  data[14] = std::numeric_limits<float>::max();
  const std::string path = tmp.path("table_000000.npy");
  dino::io::write_npy_f32(path, rows, cols, data.data());

  const std::string bytes = read_file(path);
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }";
  REQUIRE(bytes.size() == 128 + 4 * data.size());
  CHECK(bytes.compare(0, 6, "\x93NUMPY", 6) == 0);
  CHECK(bytes[6] == '\x01');
  CHECK(bytes[7] == '\x00');
  CHECK(static_cast<unsigned char>(bytes[8]) == 118);
  CHECK(bytes[9] == '\x00');
  CHECK(bytes.compare(10, dict.size(), dict) == 0);
  CHECK(bytes.substr(10 + dict.size(), 128 - 11 - dict.size()) == std::string(128 - 11 - dict.size(), ' '));
  CHECK(bytes[127] == '\n');
  // Little-endian float32 values from byte 128: 0.5*0 - 3.25 = -3.25 = 0xC0500000.
  CHECK(bytes.compare(128, 4, std::string("\x00\x00\x50\xc0", 4)) == 0);

  const auto t = dino::io::read_npy_f32(path);
  CHECK(t.rows == rows);
  CHECK(t.cols == cols);
  REQUIRE(t.data.size() == data.size());
  CHECK(std::memcmp(t.data.data(), data.data(), 4 * data.size()) == 0);

  // An empty table and a wide one (the header then passes 64 bytes in a longer block).
  dino::io::write_npy_f32(tmp.path("empty.npy"), 0, 4, nullptr);
  const auto e = dino::io::read_npy_f32(tmp.path("empty.npy"));
  CHECK(e.rows == 0);
  CHECK(e.cols == 4);
  CHECK(read_file(tmp.path("empty.npy")).size() == 128);
  std::vector<float> wide(2 * 123456, 1.0f);
  dino::io::write_npy_f32(tmp.path("wide.npy"), 2, 123456, wide.data());
  CHECK(dino::io::read_npy_f32(tmp.path("wide.npy")).data == wide);
  for (const auto& f : fs::directory_iterator(tmp.dir)) CHECK_FALSE(contains(f.path().string(), ".tmp."));
}

TEST_CASE("metrics/npy: malformed files and arguments are reported with their name") {
  TempDir tmp;
  const std::string path = tmp.path("t.npy");
  const std::vector<float> data{1.f, 2.f, 3.f, 4.f, 5.f, 6.f};
  dino::io::write_npy_f32(path, 2, 3, data.data());
  const std::string good = read_file(path);

  write_file(path, "\x93NUMPX" + good.substr(6));
  std::string err = error_of([&] { dino::io::read_npy_f32(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "magic"));

  write_file(path, good.substr(0, good.size() - 1));
  err = error_of([&] { dino::io::read_npy_f32(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "needs 24"));

  std::string f8 = good;
  f8.replace(f8.find("<f4"), 3, "<f8");
  write_file(path, f8);
  CHECK(contains(error_of([&] { dino::io::read_npy_f32(path); }), "not a 2-D little-endian float32"));

  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  write_file(path, fortran);
  CHECK(contains(error_of([&] { dino::io::read_npy_f32(path); }), "not a 2-D"));

  std::string v9 = good;
  v9[6] = '\x09';
  write_file(path, v9);
  CHECK(contains(error_of([&] { dino::io::read_npy_f32(path); }), "version 9.0"));

  CHECK(contains(error_of([&] { dino::io::read_npy_f32(tmp.path("missing.npy")); }), "missing.npy"));
  CHECK(contains(error_of([&] { dino::io::write_npy_f32(path, -1, 3, data.data()); }), "non-negative"));
  CHECK(contains(error_of([&] { dino::io::write_npy_f32(path, 2, 3, nullptr); }), "no data"));
  CHECK(contains(error_of([&] { dino::io::write_npy_f32(tmp.path("no/such/dir/t.npy"), 2, 3, data.data()); }),
                 "no/such/dir/t.npy"));
}

namespace {

using dino::io::Histogram;
using dino::io::make_histogram;

// Same bits: doubles that must survive a round trip exactly (-0.0 and NaN payloads included).
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

bool same_histogram(const Histogram& a, const Histogram& b) {
  if (a.bucket_limit.size() != b.bucket_limit.size() || a.bucket.size() != b.bucket.size()) return false;
  bool ok = same_bits(a.min, b.min) && same_bits(a.max, b.max) && same_bits(a.num, b.num) && same_bits(a.sum, b.sum) &&
            same_bits(a.sum_squares, b.sum_squares);
  for (std::size_t i = 0; i < a.bucket.size(); ++i)
    ok = ok && same_bits(a.bucket_limit[i], b.bucket_limit[i]) && same_bits(a.bucket[i], b.bucket[i]);
  return ok;
}

// The histograms of the logger tests: a 64-bin t_cent-like one every step, a feature histogram at some steps, and
// an empty one (all NaN) at step 4.
std::map<std::string, Histogram> histograms_at(std::int64_t k) {
  std::vector<double> cent(40);
  for (std::size_t j = 0; j < cent.size(); ++j)
    cent[j] = static_cast<double>((static_cast<std::int64_t>(j) * (k + 3)) % 11) / 3.0 - 0.25 * static_cast<double>(k);
  std::map<std::string, Histogram> out{{"hparams/t_cent", make_histogram(cent)}};
  if (k % 3 == 0)
    out["train/feat/embed/t_x.std().hist()"] = make_histogram({1.0, 2.0, kNaN, 0.5 * static_cast<double>(k)}, 8);
  if (k == 4) out["train/feat/embed/s_x.std().hist()"] = make_histogram({kNaN, kNaN});
  return out;
}

// log_run with histograms: on the training rows, and in rows of their own after the validation rows.
void log_run_with_histograms(MetricsLogger& log, std::int64_t from, std::int64_t to) {
  for (std::int64_t k = from; k <= to; ++k) {
    const double x = static_cast<double>(k);
    const auto h = histograms_at(k);
    log.log(k, k / 4, {{"train/loss", 1.0 / (x + 1.0)}, {"train/s_acc", k % 3 == 0 ? kNaN : 0.1 * x}},
            {{"hparams/t_cent", h.at("hparams/t_cent")}});
    if (k >= 3 && k % 2 == 1) log.log(k, k / 4, {{"valid/loss", 0.5 * x}, {"probe/student", 0.05 * x}});
    if (k == 7) log.log(k, k / 4, {{"probe/teacher", 0.7}});
    std::map<std::string, Histogram> rest = h;
    rest.erase("hparams/t_cent");
    if (!rest.empty()) log.log(k, k / 4, {}, rest);
  }
}

}  // namespace

TEST_CASE("metrics/histogram: make_histogram matches numpy.histogram") {
  // Expected edges and counts from numpy 1.24.2:
  //   f = np.array(v); np.histogram(f, bins=b, range=(f.min(), f.max()))
  SUBCASE("integers, values on the edges") {
    std::vector<double> v;
    for (int i = 0; i <= 10; ++i) v.push_back(i);
    const Histogram h = make_histogram(v, 4);  // edges [0, 2.5, 5, 7.5, 10], counts [3, 2, 3, 3]
    CHECK(h.min == 0.0);
    CHECK(h.max == 10.0);
    CHECK(h.num == 11.0);
    CHECK(h.sum == 55.0);
    CHECK(h.sum_squares == 385.0);
    CHECK(h.bucket_limit == std::vector<double>{2.5, 5.0, 7.5, 10.0});
    CHECK(h.bucket == std::vector<double>{3, 2, 3, 3});
  }
  SUBCASE("decimal fractions: rounded edges decide the bin") {
    // 0.1 * i for i = 0..10, then 0.3, 0.7, 0.6: edges i * 0.1 are 0.30000000000000004, 0.6000000000000001 and
    // 0.7000000000000001 for i = 3, 6, 7, so 0.1 * 3 lands in bin 3 and 0.3 in bin 2.
    std::vector<double> v;
    for (int i = 0; i <= 10; ++i) v.push_back(0.1 * i);
    v.insert(v.end(), {0.3, 0.7, 0.6});
    const Histogram h = make_histogram(v, 10);
    CHECK(h.bucket == std::vector<double>{1, 1, 2, 1, 1, 2, 2, 1, 1, 2});
    CHECK(h.bucket_limit == std::vector<double>{0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001,
                                                0.7000000000000001, 0.8, 0.9, 1.0});
  }
  SUBCASE("64 bins of 100 values") {
    // v[i] = (i*i*7919 % 1009) / 7.3 - 60.0; sum and sum of squares accumulated in index order in Python. Built
    // with -march=native (FMA), so the edges and sum_squares also check that no product is fused.
    std::vector<double> v;
    for (std::int64_t i = 0; i < 100; ++i) v.push_back(static_cast<double>(i * i * 7919 % 1009) / 7.3 - 60.0);
    const Histogram h = make_histogram(v);
    const std::vector<double> counts{1, 0, 2, 3, 1, 0, 1, 4, 1, 2, 4, 2, 0, 1, 1, 0, 2, 2, 2, 3, 1, 1,
                                     2, 1, 3, 1, 2, 0, 2, 2, 3, 2, 3, 1, 3, 1, 2, 1, 1, 2, 2, 3, 2, 0,
                                     0, 1, 2, 2, 1, 1, 1, 0, 0, 2, 2, 1, 2, 1, 3, 3, 2, 1, 0, 2};
    CHECK(h.bucket == counts);
    REQUIRE(h.bucket_limit.size() == 64);
    CHECK(h.bucket_limit[0] == -57.86815068493151);
    CHECK(h.bucket_limit[16] == -23.758561643835613);
    CHECK(h.bucket_limit[31] == 8.219178082191789);
    CHECK(h.bucket_limit[62] == 74.30650684931507);
    CHECK(h.bucket_limit[63] == 76.43835616438358);
    CHECK(h.min == -60.0);
    CHECK(h.max == 76.43835616438358);
    CHECK(h.num == 100.0);
    CHECK(h.sum == 711.2328767123288);
    CHECK(h.sum_squares == 153148.28297992118);
  }
}

TEST_CASE("metrics/histogram: NaN and infinities, a single value, no finite value") {
  // np.histogram([1, 3, 2], bins=2, range=(1, 3)) -> counts [1, 2], edges [1, 2, 3].
  Histogram h = make_histogram({kNaN, 1.0, kInf, 3.0, -kInf, 2.0, kNaN}, 2);
  CHECK(h.min == 1.0);
  CHECK(h.max == 3.0);
  CHECK(h.num == 3.0);
  CHECK(h.sum == 6.0);
  CHECK(h.sum_squares == 14.0);
  CHECK(h.bucket_limit == std::vector<double>{2.0, 3.0});
  CHECK(h.bucket == std::vector<double>{1.0, 2.0});

  h = make_histogram({2.5, kNaN, 2.5, -kInf});
  CHECK(h.min == 2.5);
  CHECK(h.max == 2.5);
  CHECK(h.num == 2.0);
  CHECK(h.sum == 5.0);
  CHECK(h.sum_squares == 12.5);
  CHECK(h.bucket_limit == std::vector<double>{2.5});
  CHECK(h.bucket == std::vector<double>{2.0});

  for (const std::vector<double>& none : {std::vector<double>{}, std::vector<double>{kNaN, kInf, -kInf}}) {
    h = make_histogram(none);
    CHECK(h.num == 0.0);
    CHECK(h.min == 0.0);
    CHECK(h.max == 0.0);
    CHECK(h.sum == 0.0);
    CHECK(h.bucket_limit.empty());
    CHECK(h.bucket.empty());
  }

  // Values near DBL_MAX of both signs: max - min overflows, the bins still cover [min, max].
  const double big = std::numeric_limits<double>::max();
  h = make_histogram({-big, 0.0, big}, 4);
  REQUIRE(h.bucket_limit.size() == 4);
  CHECK(h.bucket_limit[0] == doctest::Approx(-0.5 * big).epsilon(1e-15));
  CHECK(h.bucket_limit[1] == 0.0);
  CHECK(h.bucket_limit[2] == doctest::Approx(0.5 * big).epsilon(1e-15));
  CHECK(h.bucket_limit[3] == big);
  CHECK(h.bucket == std::vector<double>{1, 0, 1, 1});

  // One bin: everything in it, limit = max.
  h = make_histogram({3.0, 1.0, 2.0}, 1);
  CHECK(h.bucket_limit == std::vector<double>{3.0});
  CHECK(h.bucket == std::vector<double>{3.0});

  CHECK(contains(error_of([] { make_histogram({1.0}, 0); }), "bins must be at least 1"));
}

TEST_CASE("metrics/tfevents: histograms and scalars in one event, bit-exact") {
  // Hand-encoded HistogramProto: min (1), max (2), num (3), sum (4), sum_squares (5) as fixed64 doubles (keys 0x09,
  // 0x11, 0x19, 0x21, 0x29), bucket_limit (6) and bucket (7) packed (keys 0x32, 0x3a, then the byte length).
  dino::io::TfEvent e;
  e.step = 1;
  e.histograms = {{"h", Histogram{1.0, 2.0, 1.0, 2.0, 4.0, {2.0}, {1.0}}}};
  const std::string one("\x00\x00\x00\x00\x00\x00\xf0\x3f", 8), two("\x00\x00\x00\x00\x00\x00\x00\x40", 8),
      four("\x00\x00\x00\x00\x00\x00\x10\x40", 8);
  const std::string histo = "\x09" + one + "\x11" + two + "\x19" + one + "\x21" + two + "\x29" + four +
                            std::string("\x32\x08", 2) + two + std::string("\x3a\x08", 2) + one;
  REQUIRE(histo.size() == 65);
  // Summary.Value: tag (1) "h", histo (5); inside the summary (5) of the event.
  const std::string value = std::string("\x0a\x01h\x2a\x41", 5) + histo;
  const std::string expected =
      std::string("\x09", 1) + std::string(8, '\0') + std::string("\x10\x01\x2a\x48\x0a\x46", 6) + value;
  CHECK(dino::io::encode_event(e) == expected);

  TempDir tmp;
  const double big = std::numeric_limits<double>::max();
  const double tiny = std::numeric_limits<double>::denorm_min();
  std::vector<double> wide(64);
  for (std::size_t i = 0; i < wide.size(); ++i)
    wide[i] = std::ldexp(1.0 + static_cast<double>(i) / 3.0, static_cast<int>(i) - 32);
  const std::vector<dino::io::TfHistogram> histos{
      {"hparams/t_cent", make_histogram(wide)},
      {"odd", Histogram{-0.0, tiny, 3.0, kNaN, big, {-0.0, tiny, big}, {0.0, 1.0, 2.0}}},
      {"empty", Histogram{}},
  };
  const std::vector<dino::io::TfScalar> scalars{{"hparams/t_cent.norm()", 0.5f}, {"zero", 0.0f}};
  std::string path;
  {
    dino::io::TfEventsWriter w(tmp.dir.string());
    w.add_summary(12, scalars, histos, 3.5);
    w.add_summary(13, {}, {histos[1]}, 4.5);
    path = w.path();
  }
  const auto events = dino::io::read_tfevents(path);
  REQUIRE(events.size() == 3);
  CHECK(events[1].step == 12);
  CHECK(events[1].wall_time == 3.5);
  REQUIRE(events[1].scalars.size() == 2);
  CHECK(events[1].scalars[0].tag == "hparams/t_cent.norm()");
  CHECK(events[1].scalars[0].value == 0.5f);
  CHECK(events[1].scalars[1].tag == "zero");
  REQUIRE(events[1].histograms.size() == 3);
  for (std::size_t i = 0; i < histos.size(); ++i) {
    CHECK(events[1].histograms[i].tag == histos[i].tag);
    CHECK(same_histogram(events[1].histograms[i].histo, histos[i].histo));
  }
  CHECK(events[1].histograms[0].histo.bucket.size() == 64);
  CHECK(events[2].step == 13);
  CHECK(events[2].scalars.empty());
  REQUIRE(events[2].histograms.size() == 1);
  CHECK(same_histogram(events[2].histograms[0].histo, histos[1].histo));

  // Repeated doubles written one per field (wire type 1), as a non-packing protobuf writer may, read the same;
  // a packed field whose length is not a multiple of 8 is malformed.
  const std::string unpacked = "\x09" + one + "\x31" + two + "\x31" + four + "\x39" + one + "\x39" + two;
  const std::string event2 = std::string("\x10\x02\x2a", 3) + static_cast<char>(unpacked.size() + 7) +
                             std::string("\x0a", 1) + static_cast<char>(unpacked.size() + 5) +
                             std::string("\x0a\x01u\x2a", 4) + static_cast<char>(unpacked.size()) + unpacked;
  write_file(path, dino::io::tfrecord(event2));
  const auto back = dino::io::read_tfevents(path);
  REQUIRE(back.size() == 1);
  REQUIRE(back[0].histograms.size() == 1);
  CHECK(back[0].histograms[0].tag == "u");
  CHECK(same_histogram(back[0].histograms[0].histo, Histogram{1.0, 0.0, 0.0, 0.0, 0.0, {2.0, 4.0}, {1.0, 2.0}}));
  const std::string bad_packed = std::string("\x0a\x01u\x2a\x03\x32\x01\x00", 8);
  write_file(path, dino::io::tfrecord(std::string("\x2a\x0a\x0a\x08", 4) + bad_packed));
  CHECK(contains(error_of([&] { dino::io::read_tfevents(path); }), "malformed Event"));
}

TEST_CASE("metrics/logger: histograms go to histograms.jsonl and tensorboard only") {
  TempDir plain, with;
  {
    MetricsLogger log(plain.dir.string());
    log_run(log, 0, 9);
  }
  std::string tb_path;
  {
    MetricsLogger log(with.dir.string());
    log_run_with_histograms(log, 0, 9);
    tb_path = log.tfevents_path();
  }
  // Scalar sinks: byte for byte those of the run without histograms.
  CHECK(read_file(plain.path("metrics.jsonl")) == read_file(with.path("metrics.jsonl")));
  CHECK(read_file(plain.path("metrics.csv")) == read_file(with.path("metrics.csv")));
  CHECK(read_file(plain.path("summary.json")) == read_file(with.path("summary.json")));
  CHECK(read_file(plain.path("histograms.jsonl")).empty());

  // histograms.jsonl: exact text of a small histogram, then every histogram of the run, bit for bit.
  const std::string text = read_file(with.path("histograms.jsonl"));
  CHECK(contains(text, "{\"step\":0,\"epoch\":0,\"train/feat/embed/t_x.std().hist()\":{\"min\":0.0,\"max\":2.0,"
                       "\"num\":3.0,\"sum\":3.0,\"sum_squares\":5.0,\"bucket_limit\":[0.25,0.5,0.75,1.0,1.25,1.5,1.75,"
                       "2.0],\"bucket\":[1.0,0.0,0.0,0.0,1.0,0.0,0.0,1.0]}}\n"));
  CHECK(contains(text, "\"train/feat/embed/s_x.std().hist()\":{\"min\":0.0,\"max\":0.0,\"num\":0.0,\"sum\":0.0,"
                       "\"sum_squares\":0.0,\"bucket_limit\":[],\"bucket\":[]}"));
  const auto rows = MetricsLogger::read_histograms_jsonl(with.path("histograms.jsonl"));
  std::vector<std::pair<std::int64_t, std::map<std::string, Histogram>>> expected;
  for (std::int64_t k = 0; k <= 9; ++k) {
    auto h = histograms_at(k);
    expected.push_back({k, {{"hparams/t_cent", h.at("hparams/t_cent")}}});
    h.erase("hparams/t_cent");
    if (!h.empty()) expected.push_back({k, h});
  }
  REQUIRE(rows.size() == expected.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    CHECK(rows[i].step == expected[i].first);
    CHECK(rows[i].epoch == expected[i].first / 4);
    REQUIRE(rows[i].histograms.size() == expected[i].second.size());
    for (const auto& kv : expected[i].second) {
      REQUIRE(rows[i].histograms.count(kv.first) == 1);
      CHECK(same_histogram(rows[i].histograms.at(kv.first), kv.second));
    }
  }

  // TensorBoard: the run's scalars as without histograms, and every non-empty histogram in the event of its row.
  const auto plain_events = dino::io::read_tfevents(event_files(plain.dir).at(0));
  const auto events = dino::io::read_tfevents(tb_path);
  std::size_t histogram_only = 0;
  for (const auto& r : expected) histogram_only += r.second.count("hparams/t_cent") ? 0 : 1;
  REQUIRE(events.size() == plain_events.size() + histogram_only);
  std::size_t p = 1, next = 0;
  for (std::size_t i = 1; i < events.size(); ++i) {
    const auto& e = events[i];
    if (e.scalars.empty()) {
      // A row of histograms only (empty ones left out).
      while (next < expected.size() && expected[next].second.count("hparams/t_cent")) ++next;
      REQUIRE(next < expected.size());
      CHECK(e.step == expected[next].first);
      std::size_t k = 0;
      for (const auto& kv : expected[next].second) {
        if (kv.second.num == 0.0) continue;
        REQUIRE(k < e.histograms.size());
        CHECK(e.histograms[k].tag == kv.first);
        CHECK(same_histogram(e.histograms[k].histo, kv.second));
        ++k;
      }
      CHECK(k == e.histograms.size());
      ++next;
      continue;
    }
    REQUIRE(p < plain_events.size());
    CHECK(e.step == plain_events[p].step);
    REQUIRE(e.scalars.size() == plain_events[p].scalars.size());
    for (std::size_t k = 0; k < e.scalars.size(); ++k) {
      CHECK(e.scalars[k].tag == plain_events[p].scalars[k].tag);
      CHECK(same(e.scalars[k].value, plain_events[p].scalars[k].value));
    }
    if (e.scalars[0].tag == "train/loss") {
      REQUIRE(e.histograms.size() == 1);
      CHECK(e.histograms[0].tag == "hparams/t_cent");
      CHECK(same_histogram(e.histograms[0].histo, histograms_at(e.step).at("hparams/t_cent")));
    } else {
      CHECK(e.histograms.empty());
    }
    ++p;
  }
  CHECK(p == plain_events.size());
}

TEST_CASE("metrics/logger: a resumed run ends with the same histograms.jsonl as an uninterrupted one") {
  TempDir a, b;
  {
    MetricsLogger log(a.dir.string());
    log_run_with_histograms(log, 0, 9);
  }
  {
    MetricsLogger log(b.dir.string());
    log_run_with_histograms(log, 0, 8);
  }
  {
    std::ofstream out(b.path("histograms.jsonl"), std::ios::binary | std::ios::app);
    out << "{\"step\":9,\"epoch\":2,\"hparams/t_cent\":{\"min\":-2.";
  }
  {
    MetricsLogger log(b.dir.string(), true, 5);
    const auto kept = MetricsLogger::read_histograms_jsonl(b.path("histograms.jsonl"));
    REQUIRE_FALSE(kept.empty());
    CHECK(kept.back().step == 5);
    CHECK(contains(error_of([&] { log.log(4, 1, {}, {{"h", make_histogram({1.0})}}); }), "step 4 logged after step 5"));
    log_run_with_histograms(log, 6, 9);
  }
  for (const char* f : {"metrics.jsonl", "metrics.csv", "summary.json", "histograms.jsonl"})
    CHECK_MESSAGE(read_file(a.path(f)) == read_file(b.path(f)), f);

  // A resumed run whose histograms reach further than its scalars keeps the later step as the last one.
  TempDir c;
  {
    MetricsLogger log(c.dir.string());
    log.log(2, 0, {{"x", 1.0}});
    log.log(4, 0, {}, {{"h", make_histogram({1.0, 2.0})}});
    log.log(8, 0, {}, {{"h", make_histogram({1.0, 3.0})}});
  }
  MetricsLogger log(c.dir.string(), true, 6);
  CHECK(MetricsLogger::read_histograms_jsonl(c.path("histograms.jsonl")).size() == 1);
  CHECK(contains(error_of([&] { log.log(3, 0, {{"x", 1.0}}); }), "step 3 logged after step 4"));
  // A name keeps its kind across the restart.
  CHECK(contains(error_of([&] { log.log(6, 0, {{"h", 1.0}}); }), "both as a scalar and as a histogram"));
  CHECK(contains(error_of([&] { log.log(6, 0, {}, {{"x", make_histogram({1.0})}}); }), "both as a scalar"));
}

TEST_CASE("metrics/logger: rejected histogram rows write nothing; malformed histograms.jsonl is reported") {
  TempDir tmp;
  {
    MetricsLogger log(tmp.dir.string());
    log.log(1, 0, {{"x", 1.0}}, {{"h", make_histogram({1.0, 2.0})}});
    Histogram bad = make_histogram({1.0, 2.0});
    bad.bucket.pop_back();
    CHECK(contains(error_of([&] { log.log(2, 0, {{"y", 1.0}}, {{"g", bad}}); }), "bucket limits for"));
    CHECK(contains(error_of([&] { log.log(2, 0, {{"h", 1.0}}); }), "both as a scalar and as a histogram"));
    CHECK(contains(error_of([&] { log.log(2, 0, {}, {{"x", make_histogram({1.0})}}); }), "both as a scalar"));
    CHECK(contains(error_of([&] { log.log(2, 0, {{"z", 1.0}}, {{"z", make_histogram({1.0})}}); }), "both as a scalar"));
    CHECK(contains(error_of([&] { log.log(2, 0, {}, {{"epoch", make_histogram({1.0})}}); }), "reserved"));
    CHECK(contains(error_of([&] { log.log(2, 0, {}, {{std::string("bad\xff"), make_histogram({1.0})}}); }), "UTF-8"));
    CHECK(MetricsLogger::read_jsonl(tmp.path("metrics.jsonl")).size() == 1);
    CHECK(MetricsLogger::read_histograms_jsonl(tmp.path("histograms.jsonl")).size() == 1);
    CHECK(dino::io::read_tfevents(log.tfevents_path()).size() == 2);
    CHECK(log.columns() == std::vector<std::string>{"x"});
    log.log(2, 0, {}, {{"h", make_histogram({kNaN})}, {"g", make_histogram({3.0})}});
    CHECK(MetricsLogger::read_jsonl(tmp.path("metrics.jsonl")).size() == 1);
    CHECK(parse_csv(read_file(tmp.path("metrics.csv"))).size() == 2);
  }
  const std::string path = tmp.path("h.jsonl");
  const std::string h = "{\"min\":0.0,\"max\":1.0,\"num\":1.0,\"sum\":1.0,\"sum_squares\":null,\"bucket_limit\":[1.0],"
                        "\"bucket\":[1.0]}";
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":" + h + "}\n");
  const auto rows = MetricsLogger::read_histograms_jsonl(path);
  REQUIRE(rows.size() == 1);
  CHECK(std::isnan(rows[0].histograms.at("h").sum_squares));
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":1.0}\n");
  std::string err = error_of([&] { MetricsLogger::read_histograms_jsonl(path); });
  CHECK(contains(err, path));
  CHECK(contains(err, "line 1"));
  CHECK(contains(err, "not a histogram object"));
  std::string no_sum = h;
  no_sum.replace(no_sum.find("\"sum\":1.0,"), 10, "");
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":" + h + "}\n{\"step\":1,\"epoch\":0,\"h\":" + no_sum + "}\n");
  err = error_of([&] { MetricsLogger::read_histograms_jsonl(path); });
  CHECK(contains(err, "line 2"));
  CHECK(contains(err, "has no \"sum\""));
  std::string uneven = h;
  uneven.replace(uneven.find("[1.0]}"), 6, "[1.0,2.0]}");
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":" + uneven + "}\n");
  CHECK(contains(error_of([&] { MetricsLogger::read_histograms_jsonl(path); }), "1 bucket limits for 2 buckets"));
  std::string text_value = h;
  text_value.replace(text_value.find("[1.0],"), 6, "[\"a\"],");
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":" + text_value + "}\n");
  CHECK(contains(error_of([&] { MetricsLogger::read_histograms_jsonl(path); }), "neither a number nor null"));
  write_file(path, "{\"step\":0,\"epoch\":0,\"h\":" + h + "}\n{\"step\":1");
  CHECK(contains(error_of([&] { MetricsLogger::read_histograms_jsonl(path); }), "torn"));
}
