// The metric sinks of a training run (spec A9, names of §11): metrics.jsonl (the source of truth), metrics.csv,
// TensorBoard event files and summary.json, fed one row {name: value} per logged step; they replace the
// testbed's wandb logger (wandb.log rows and the run summary).
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/io/npy.hpp"
#include "dino/io/tfevents.hpp"

namespace dino::io {

// One RFC-4180 field: quoted when it holds a comma, a quote, CR or LF, with its quotes doubled.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// One RFC-4180 record: fields quoted as needed, joined by commas, ended by CRLF.
inline std::string csv_record(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out.push_back(',');
    out += csv_field(fields[i]);
  }
  out += "\r\n";
  return out;
}

// A value as metrics.jsonl writes it: the shortest decimal that reads back as the same double ("0.1", "3.0",
// "1e-05"); NaN and infinities as null (JSON has no NaN).
inline std::string json_number(double v) { return std::isfinite(v) ? nlohmann::json(v).dump() : std::string("null"); }

// A value as metrics.csv writes it: the same text as in metrics.jsonl, and an empty cell for NaN and infinities
// (as for a metric missing from a row), so metrics.csv is always a function of metrics.jsonl.
inline std::string csv_number(double v) { return std::isfinite(v) ? nlohmann::json(v).dump() : std::string(); }

// summary.json keeps the maximum over the run for accuracies ("*/s_acc", "probe/*"; wandb's summary "max" of the
// testbed) and the last value for every other metric.
inline bool summary_takes_max(const std::string& name) {
  const std::string acc = "/s_acc";
  return name.rfind("probe/", 0) == 0 ||
         (name.size() >= acc.size() && name.compare(name.size() - acc.size(), acc.size(), acc) == 0);
}

// Writes the metric rows of a run into dir:
//   metrics.jsonl  one object per row, {"step":k,"epoch":e,"<name>":value,...}, names sorted, NaN/inf as null;
//                  the source of truth, from which the other files can be rebuilt.
//   metrics.csv    RFC-4180 (CRLF records, quoted as needed): header "step,epoch,<names>" with every name seen so
//                  far, in order of first appearance (sorted within a row); an empty cell for a metric missing from
//                  a row and for NaN/inf. When a row brings new names the whole file is rebuilt from
//                  metrics.jsonl and replaced atomically (so it stays a valid table); otherwise the row is appended.
//   events.out.tfevents.<unix seconds>.<hostname>[.n]
//                  one TensorBoard event per row holding one float32 scalar per metric (NaN kept), tag = name.
//   summary.json   {name: value}: the last value of every metric, the maximum of the finite values for
//                  summary_takes_max names (the last value while none is finite); NaN/inf as null; replaced
//                  atomically after every row.
// Each row is flushed to the operating system before log() returns, so a crash of the process loses no row
// already logged; close() (or the destructor) also fsyncs.
//
// Fresh logger (resume = false): metrics.jsonl, metrics.csv and summary.json are started anew; event files already
// in dir are left alone. Resumed logger (resume = true): the rows of metrics.jsonl whose step is > resume_step
// are dropped (and a torn last line that a crash left behind), metrics.csv and summary.json are rebuilt from the
// rows kept, and later rows are appended; a run resumed at the step of its checkpoint thus ends with the same
// metrics.jsonl, metrics.csv and summary.json, byte for byte, as an uninterrupted run. TensorBoard gets a new
// event file that opens with a SessionLog START at resume_step + 1: TensorBoard merges the files of a folder and,
// on that marker, discards the older files' events at steps > resume_step.
class MetricsLogger {
 public:
  explicit MetricsLogger(const std::string& dir, bool resume = false, std::int64_t resume_step = 0) : dir_(dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    DINO_CHECK(!ec && std::filesystem::is_directory(dir_), "metrics: cannot create the log folder '", dir_,
               "': ", ec ? ec.message() : std::string("not a folder"));
    std::string jsonl_text;
    std::vector<nlohmann::json> rows;
    if (resume && std::filesystem::exists(jsonl_path())) {
      std::vector<std::string> lines;
      const std::vector<nlohmann::json> all = read_rows(jsonl_path(), true, &lines);
      for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i]["step"].get<std::int64_t>() > resume_step) continue;
        jsonl_text += lines[i];
        jsonl_text.push_back('\n');
        rows.push_back(all[i]);
      }
    }
    for (const nlohmann::json& row : rows) {
      last_step_ = std::max(last_step_, row["step"].get<std::int64_t>());
      for (auto it = row.begin(); it != row.end(); ++it) {
        if (it.key() == "step" || it.key() == "epoch") continue;
        add_column(it.key());
        update_summary(it.key(), it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN());
      }
    }
    write_file_atomic(jsonl_path(), jsonl_text);
    write_file_atomic(csv_path(), csv_text(rows, columns_));
    write_summary(true);
    jsonl_ = open_append(jsonl_path());
    csv_ = open_append(csv_path());
    tb_ = std::make_unique<TfEventsWriter>(dir_);
    if (resume) tb_->add_session_start(resume_step + 1);
  }
  MetricsLogger(const MetricsLogger&) = delete;
  MetricsLogger& operator=(const MetricsLogger&) = delete;
  ~MetricsLogger() {
    try {
      close();
    } catch (...) {
      // A destructor must not throw; call close() to see the error.
    }
  }

  // Logs one row at global step `step` of epoch `epoch` to every sink. Names must be non-empty, valid UTF-8 and
  // not "step" or "epoch"; steps must not decrease from row to row (several rows may share a step). A row that
  // fails these checks writes nothing.
  void log(std::int64_t step, std::int64_t epoch, const std::map<std::string, double>& values) {
    DINO_CHECK(jsonl_ != nullptr, "metrics: log() on the closed logger of '", dir_, "'");
    DINO_CHECK(step >= last_step_, "metrics: step ", step, " logged after step ", last_step_,
               "; steps must not decrease (log folder '", dir_, "')");
    std::string line = "{\"step\":" + std::to_string(step) + ",\"epoch\":" + std::to_string(epoch);
    bool grows = false;
    for (const auto& kv : values) {
      DINO_CHECK(!kv.first.empty() && kv.first != "step" && kv.first != "epoch", "metrics: the name '", kv.first,
                 "' is reserved or empty");
      std::string key;
      try {
        key = nlohmann::json(kv.first).dump();
      } catch (const nlohmann::json::exception&) {
        fail("metrics: the metric name '", kv.first, "' is not valid UTF-8");
      }
      line += "," + key + ":" + json_number(kv.second);
      grows = grows || column_set_.count(kv.first) == 0;
    }
    line += "}\n";
    write_flush(jsonl_, line, jsonl_path());
    last_step_ = step;
    for (const auto& kv : values) add_column(kv.first);

    if (grows) {
      // Rebuilt from metrics.jsonl (which now holds this row) rather than kept in memory: new names are rare
      // (validation and probe metrics appear a few times per run), rows are many.
      std::fclose(csv_);
      csv_ = nullptr;
      write_file_atomic(csv_path(), csv_text(read_rows(jsonl_path(), false, nullptr), columns_), false);
      csv_ = open_append(csv_path());
    } else {
      std::vector<std::string> cells{std::to_string(step), std::to_string(epoch)};
      for (const std::string& c : columns_) {
        const auto it = values.find(c);
        cells.push_back(it == values.end() ? std::string() : csv_number(it->second));
      }
      write_flush(csv_, csv_record(cells), csv_path());
    }

    std::vector<TfScalar> scalars;
    scalars.reserve(values.size());
    for (const auto& kv : values) scalars.push_back({kv.first, static_cast<float>(kv.second)});
    tb_->add_scalars(step, scalars);

    for (const auto& kv : values) update_summary(kv.first, kv.second);
    write_summary(false);
  }

  // Flushes and fsyncs every file and closes them; later log() calls fail. Idempotent.
  void close() {
    if (!jsonl_) return;
    std::string err;
    for (std::FILE** f : {&jsonl_, &csv_}) {
      if (!*f) continue;
      if (std::fflush(*f) != 0 || (::fsync(::fileno(*f)) != 0 && errno != EINVAL)) err = std::strerror(errno);
      if (std::fclose(*f) != 0 && err.empty()) err = std::strerror(errno);
      *f = nullptr;
    }
    DINO_CHECK(err.empty(), "metrics: cannot close the metric files of '", dir_, "': ", err);
    tb_->close();
    write_summary(true);
  }

  // The metric names of metrics.csv after "step,epoch", in column order.
  const std::vector<std::string>& columns() const { return columns_; }
  // The content of summary.json (null for NaN and infinities).
  nlohmann::json summary() const {
    nlohmann::json s = nlohmann::json::object();
    for (const auto& kv : summary_) {
      const double v = summary_takes_max(kv.first) && kv.second.has_finite ? kv.second.max : kv.second.last;
      s[kv.first] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
    }
    return s;
  }

  std::string jsonl_path() const { return (std::filesystem::path(dir_) / "metrics.jsonl").string(); }
  std::string csv_path() const { return (std::filesystem::path(dir_) / "metrics.csv").string(); }
  std::string summary_path() const { return (std::filesystem::path(dir_) / "summary.json").string(); }
  // The TensorBoard event file this logger writes.
  const std::string& tfevents_path() const { return tb_->path(); }

  // Every row of a metrics.jsonl file, as JSON objects (null for NaN/inf). Each line must be an object with
  // integer "step" and "epoch" and numbers or null for the rest; otherwise dino::Error naming the file and line.
  static std::vector<nlohmann::json> read_jsonl(const std::string& path) { return read_rows(path, false, nullptr); }

 private:
  struct SummaryEntry {
    double last = 0.0;
    double max = 0.0;
    bool has_finite = false;
  };

  void add_column(const std::string& name) {
    if (column_set_.insert(name).second) columns_.push_back(name);
  }

  void update_summary(const std::string& name, double v) {
    SummaryEntry& e = summary_[name];
    e.last = v;
    if (std::isfinite(v) && (!e.has_finite || v > e.max)) {
      e.max = v;
      e.has_finite = true;
    }
  }

  void write_summary(bool durable) const { write_file_atomic(summary_path(), summary().dump(2) + "\n", durable); }

  static std::FILE* open_append(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "ab");
    DINO_CHECK(f != nullptr, "metrics: cannot open '", path, "' for appending: ", std::strerror(errno));
    return f;
  }

  static void write_flush(std::FILE* f, const std::string& text, const std::string& path) {
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
    DINO_CHECK(ok, "metrics: cannot write '", path, "': ", std::strerror(errno));
  }

  // metrics.csv as a function of the rows of metrics.jsonl and the column order.
  static std::string csv_text(const std::vector<nlohmann::json>& rows, const std::vector<std::string>& columns) {
    std::vector<std::string> cells{"step", "epoch"};
    cells.insert(cells.end(), columns.begin(), columns.end());
    std::string out = csv_record(cells);
    for (const nlohmann::json& row : rows) {
      cells.assign({std::to_string(row["step"].get<std::int64_t>()), std::to_string(row["epoch"].get<std::int64_t>())});
      for (const std::string& c : columns) {
        const auto it = row.find(c);
        cells.push_back(it != row.end() && it->is_number() ? csv_number(it->get<double>()) : std::string());
      }
      out += csv_record(cells);
    }
    return out;
  }

  // Reads metrics.jsonl; with tolerate_torn_tail a last line without its '\n' (a write cut by a crash) is
  // dropped instead of rejected. lines, when given, receives each kept row's text without its '\n'.
  static std::vector<nlohmann::json> read_rows(const std::string& path, bool tolerate_torn_tail,
                                               std::vector<std::string>* lines) {
    std::ifstream in(path, std::ios::binary);
    DINO_CHECK(in, "metrics: cannot open '", path, "'");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    DINO_CHECK(!in.bad(), "metrics: cannot read '", path, "'");
    std::vector<nlohmann::json> rows;
    std::size_t at = 0;
    for (std::size_t line_no = 1; at < text.size(); ++line_no) {
      const std::size_t nl = text.find('\n', at);
      if (nl == std::string::npos) {
        if (tolerate_torn_tail) break;
        fail("'", path, "' line ", line_no, ": the last line has no '\\n' (a torn write?)");
      }
      const std::string line = text.substr(at, nl - at);
      at = nl + 1;
      nlohmann::json row;
      try {
        row = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        fail("'", path, "' line ", line_no, ": not JSON (", e.what(), ")");
      }
      DINO_CHECK(row.is_object() && row.contains("step") && row["step"].is_number_integer() && row.contains("epoch") &&
                     row["epoch"].is_number_integer(),
                 "'", path, "' line ", line_no, ": not an object with integer \"step\" and \"epoch\"");
      for (auto it = row.begin(); it != row.end(); ++it)
        DINO_CHECK(it->is_number() || it->is_null(), "'", path, "' line ", line_no, ": the value of '", it.key(),
                   "' is neither a number nor null");
      if (lines) lines->push_back(line);
      rows.push_back(std::move(row));
    }
    return rows;
  }

  std::string dir_;
  std::FILE* jsonl_ = nullptr;
  std::FILE* csv_ = nullptr;
  std::unique_ptr<TfEventsWriter> tb_;
  std::vector<std::string> columns_;
  std::set<std::string> column_set_;
  std::map<std::string, SummaryEntry> summary_;
  std::int64_t last_step_ = std::numeric_limits<std::int64_t>::min();
};

}  // namespace dino::io
