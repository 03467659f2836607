// The metric sinks of a training run (spec A9, names of §11): metrics.jsonl (the source of truth), metrics.csv,
// TensorBoard event files and summary.json, fed one row {name: value} per logged step, plus histograms.jsonl for
// the histograms of §11 (wandb.Histogram of HParamTracker and FeatureHistTracker); they replace the testbed's
// wandb logger (wandb.log rows and the run summary).
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

// a * b rounded to double on its own, as numpy rounds it: the volatile store keeps GCC's default for C++
// (-ffp-contract=fast, with FMA under -march=native) from fusing it into the addition that follows.
inline double rounded_product(double a, double b) {
  volatile double p = a * b;
  return p;
}

// The 64-bin wandb histograms of §11 (range [nanmin, nanmax], as numpy.histogram(x, 64, range=...) bins them):
// NaN and infinities are left out; the finite values are counted into `bins` equal-width bins over [min, max],
// bin i holding edge[i] <= x < edge[i+1] and the last bin also its right edge, as numpy.histogram does (edges as
// numpy.linspace computes them: edge[i] = i * step + min, the last edge max). bucket_limit holds the right edges
// edge[1..bins] and bucket the counts, so TensorBoard, which takes min as the left edge of bucket 0, draws the
// numpy bins exactly. A single distinct value gives one bucket (limit = that value); no finite value gives num 0
// and no bucket. num, sum and sum_squares are over the finite values, summed in index order.
inline Histogram make_histogram(const std::vector<double>& values, int bins = 64) {
  DINO_CHECK(bins >= 1, "make_histogram: bins must be at least 1, got ", bins);
  Histogram h;
  bool any = false;
  for (double x : values) {
    if (!std::isfinite(x)) continue;
    h.min = any ? std::min(h.min, x) : x;
    h.max = any ? std::max(h.max, x) : x;
    any = true;
    h.num += 1.0;
    h.sum += x;
    h.sum_squares += rounded_product(x, x);
  }
  if (!any) return h;
  if (h.min == h.max) {
    h.bucket_limit = {h.min};
    h.bucket = {h.num};
    return h;
  }
  const auto n = static_cast<std::size_t>(bins);
  const double range = h.max - h.min;
  const double step = range / bins;
  std::vector<double> edges(n + 1);
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / bins;
    if (!std::isfinite(range)) {
      // max - min overflows only for values near DBL_MAX of opposite signs (numpy fails there); interpolate.
      edges[i] = rounded_product(h.min, 1.0 - t) + rounded_product(h.max, t);
    } else {
      // numpy.linspace falls back to (i / bins) * range when step underflows to zero.
      edges[i] = (step != 0.0 ? rounded_product(static_cast<double>(i), step) : rounded_product(t, range)) + h.min;
    }
  }
  edges[n] = h.max;
  // Counting against the stored edges (the last bin i with edge[i] <= x) keeps the counts consistent with the
  // limits whatever the rounding of the edges.
  h.bucket.assign(n, 0.0);
  for (double x : values) {
    if (!std::isfinite(x)) continue;
    const auto it = std::upper_bound(edges.begin(), edges.begin() + static_cast<std::ptrdiff_t>(n), x);
    h.bucket[static_cast<std::size_t>(it - edges.begin()) - 1] += 1.0;
  }
  h.bucket_limit.assign(edges.begin() + 1, edges.end());
  return h;
}

// One histogram as histograms.jsonl writes it: {"min":..,"max":..,"num":..,"sum":..,"sum_squares":..,
// "bucket_limit":[..],"bucket":[..]}, numbers as in metrics.jsonl (json_number; non-finite as null).
inline std::string histogram_json(const Histogram& h) {
  auto list = [](const std::vector<double>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + json_number(v[i]);
    return out + "]";
  };
  return "{\"min\":" + json_number(h.min) + ",\"max\":" + json_number(h.max) + ",\"num\":" + json_number(h.num) +
         ",\"sum\":" + json_number(h.sum) + ",\"sum_squares\":" + json_number(h.sum_squares) +
         ",\"bucket_limit\":" + list(h.bucket_limit) + ",\"bucket\":" + list(h.bucket) + "}";
}

// One row of histograms.jsonl.
struct HistogramRow {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::map<std::string, Histogram> histograms;
};

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
//                  one TensorBoard event per row holding one float32 scalar per metric (NaN kept), tag = name, and
//                  the row's histograms (HistogramProto, tag = name; those with num 0 are left out, as older
//                  TensorBoards fail on a histogram without buckets).
//   summary.json   {name: value}: the last value of every metric, the maximum of the finite values for
//                  summary_takes_max names (the last value while none is finite); NaN/inf as null; replaced
//                  atomically after every row.
//   histograms.jsonl
//                  one object per row that has histograms, {"step":k,"epoch":e,"<name>":histogram_json,...},
//                  names sorted. Histograms never reach metrics.jsonl, metrics.csv or summary.json, and a row of
//                  histograms only writes nothing there.
// Each row is flushed to the operating system before log() returns, so a crash of the process loses no row
// already logged; close() (or the destructor) also fsyncs.
//
// Fresh logger (resume = false): metrics.jsonl, metrics.csv, summary.json and histograms.jsonl are started anew;
// event files already in dir are left alone. Resumed logger (resume = true): the rows of metrics.jsonl and
// histograms.jsonl whose step is > resume_step are dropped (and a torn last line that a crash left behind), and
// of the others only the first keep_rows / keep_histogram_rows when those are >= 0 (rows() and histogram_rows()
// at the time of the checkpoint: several rows may share the checkpoint's step); metrics.csv and summary.json are
// rebuilt from the rows kept, and later rows are appended. A run resumed at the step of its checkpoint thus ends
// with the same metrics.jsonl, metrics.csv, summary.json and histograms.jsonl, byte for byte, as an
// uninterrupted run. TensorBoard gets a new event file that opens with a SessionLog START at resume_step + 1:
// TensorBoard merges the files of a folder and, on that marker, discards the older files' events at steps
// > resume_step.
class MetricsLogger {
 public:
  explicit MetricsLogger(const std::string& dir, bool resume = false, std::int64_t resume_step = 0,
                         std::int64_t keep_rows = -1, std::int64_t keep_histogram_rows = -1)
      : dir_(dir) {
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
        if (keep_rows >= 0 && rows_ == keep_rows) break;
        ++rows_;
        jsonl_text += lines[i];
        jsonl_text.push_back('\n');
        rows.push_back(all[i]);
      }
    }
    std::string hist_text;
    if (resume && std::filesystem::exists(histograms_path())) {
      std::vector<std::string> lines;
      const std::vector<HistogramRow> all = read_histogram_rows(histograms_path(), true, &lines);
      for (std::size_t i = 0; i < all.size(); ++i) {
        if (all[i].step > resume_step) continue;
        if (keep_histogram_rows >= 0 && histogram_rows_ == keep_histogram_rows) break;
        ++histogram_rows_;
        hist_text += lines[i];
        hist_text.push_back('\n');
        last_step_ = std::max(last_step_, all[i].step);
        for (const auto& kv : all[i].histograms) histogram_names_.insert(kv.first);
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
    write_file_atomic(histograms_path(), hist_text);
    jsonl_ = open_append(jsonl_path());
    csv_ = open_append(csv_path());
    hist_ = open_append(histograms_path());
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

  // Logs one row at global step `step` of epoch `epoch`: the scalars `values` to every sink, the `histograms` to
  // histograms.jsonl and the row's TensorBoard event. A row with histograms and no scalar writes nothing to
  // metrics.jsonl, metrics.csv and summary.json; a row with neither writes {"step":k,"epoch":e} there. Names must
  // be non-empty, valid UTF-8 and not "step" or "epoch", and a name is a scalar or a histogram for the whole run;
  // a histogram needs as many bucket_limit as bucket entries; steps must not decrease from row to row (several
  // rows may share a step). A row that fails these checks writes nothing.
  void log(std::int64_t step, std::int64_t epoch, const std::map<std::string, double>& values,
           const std::map<std::string, Histogram>& histograms = {}) {
    DINO_CHECK(jsonl_ != nullptr, "metrics: log() on the closed logger of '", dir_, "'");
    DINO_CHECK(step >= last_step_, "metrics: step ", step, " logged after step ", last_step_,
               "; steps must not decrease (log folder '", dir_, "')");
    const std::string head = "{\"step\":" + std::to_string(step) + ",\"epoch\":" + std::to_string(epoch);
    std::string line = head;
    bool grows = false;
    for (const auto& kv : values) {
      DINO_CHECK(histogram_names_.count(kv.first) == 0 && histograms.count(kv.first) == 0, "metrics: '", kv.first,
                 "' is logged both as a scalar and as a histogram");
      line += "," + json_key(kv.first) + ":" + json_number(kv.second);
      grows = grows || column_set_.count(kv.first) == 0;
    }
    line += "}\n";
    std::string hist_line = head;
    for (const auto& kv : histograms) {
      DINO_CHECK(column_set_.count(kv.first) == 0, "metrics: '", kv.first,
                 "' is logged both as a scalar and as a histogram");
      DINO_CHECK(kv.second.bucket_limit.size() == kv.second.bucket.size(), "metrics: the histogram '", kv.first,
                 "' has ", kv.second.bucket_limit.size(), " bucket limits for ", kv.second.bucket.size(), " buckets");
      hist_line += "," + json_key(kv.first) + ":" + histogram_json(kv.second);
    }
    hist_line += "}\n";
    const bool scalar_row = !values.empty() || histograms.empty();

    if (scalar_row) {
      write_flush(jsonl_, line, jsonl_path());
      ++rows_;
    }
    last_step_ = step;
    if (!histograms.empty()) {
      write_flush(hist_, hist_line, histograms_path());
      ++histogram_rows_;
    }
    for (const auto& kv : histograms) histogram_names_.insert(kv.first);
    for (const auto& kv : values) add_column(kv.first);

    if (!scalar_row) {
      // Nothing for metrics.csv and summary.json.
    } else if (grows) {
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
    std::vector<TfHistogram> histos;
    for (const auto& kv : histograms)
      if (kv.second.num != 0.0) histos.push_back({kv.first, kv.second});
    tb_->add_summary(step, scalars, histos);

    if (scalar_row) {
      for (const auto& kv : values) update_summary(kv.first, kv.second);
      write_summary(false);
    }
  }

  // Flushes and fsyncs every file and closes them; later log() calls fail. Idempotent.
  void close() {
    if (!jsonl_) return;
    std::string err;
    for (std::FILE** f : {&jsonl_, &csv_, &hist_}) {
      if (!*f) continue;
      if (std::fflush(*f) != 0 || (::fsync(::fileno(*f)) != 0 && errno != EINVAL)) err = std::strerror(errno);
      if (std::fclose(*f) != 0 && err.empty()) err = std::strerror(errno);
      *f = nullptr;
    }
    DINO_CHECK(err.empty(), "metrics: cannot close the metric files of '", dir_, "': ", err);
    tb_->close();
    write_summary(true);
  }

  // The rows of metrics.jsonl and of histograms.jsonl so far (kept from a resumed run's files included).
  std::int64_t rows() const { return rows_; }
  std::int64_t histogram_rows() const { return histogram_rows_; }
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
  std::string histograms_path() const { return (std::filesystem::path(dir_) / "histograms.jsonl").string(); }
  // The TensorBoard event file this logger writes.
  const std::string& tfevents_path() const { return tb_->path(); }

  // Every row of a metrics.jsonl file, as JSON objects (null for NaN/inf). Each line must be an object with
  // integer "step" and "epoch" and numbers or null for the rest; otherwise dino::Error naming the file and line.
  static std::vector<nlohmann::json> read_jsonl(const std::string& path) { return read_rows(path, false, nullptr); }

  // Every row of a histograms.jsonl file, null read back as NaN. Each line must be an object with integer "step"
  // and "epoch" whose other members are histogram_json objects (numbers or null, bucket_limit and bucket of
  // equal lengths); otherwise dino::Error naming the file and line.
  static std::vector<HistogramRow> read_histograms_jsonl(const std::string& path) {
    return read_histogram_rows(path, false, nullptr);
  }

 private:
  struct SummaryEntry {
    double last = 0.0;
    double max = 0.0;
    bool has_finite = false;
  };

  // A metric name as a JSON string; rejects reserved, empty and non-UTF-8 names.
  static std::string json_key(const std::string& name) {
    DINO_CHECK(!name.empty() && name != "step" && name != "epoch", "metrics: the name '", name,
               "' is reserved or empty");
    try {
      return nlohmann::json(name).dump();
    } catch (const nlohmann::json::exception&) {
      fail("metrics: the metric name '", name, "' is not valid UTF-8");
    }
  }

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

  // The lines of a jsonl file without their '\n'; with tolerate_torn_tail a last line without its '\n' (a write
  // cut by a crash) is dropped instead of rejected.
  static std::vector<std::string> read_lines(const std::string& path, bool tolerate_torn_tail) {
    std::ifstream in(path, std::ios::binary);
    DINO_CHECK(in, "metrics: cannot open '", path, "'");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    DINO_CHECK(!in.bad(), "metrics: cannot read '", path, "'");
    std::vector<std::string> lines;
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t nl = text.find('\n', at);
      if (nl == std::string::npos) {
        if (tolerate_torn_tail) break;
        fail("'", path, "' line ", lines.size() + 1, ": the last line has no '\\n' (a torn write?)");
      }
      lines.push_back(text.substr(at, nl - at));
      at = nl + 1;
    }
    return lines;
  }

  // One line of a jsonl file as an object with integer "step" and "epoch".
  static nlohmann::json parse_row(const std::string& path, std::size_t line_no, const std::string& line) {
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("'", path, "' line ", line_no, ": not JSON (", e.what(), ")");
    }
    DINO_CHECK(row.is_object() && row.contains("step") && row["step"].is_number_integer() && row.contains("epoch") &&
                   row["epoch"].is_number_integer(),
               "'", path, "' line ", line_no, ": not an object with integer \"step\" and \"epoch\"");
    return row;
  }

  // Reads metrics.jsonl (read_lines for tolerate_torn_tail). lines, when given, receives each row's text.
  static std::vector<nlohmann::json> read_rows(const std::string& path, bool tolerate_torn_tail,
                                               std::vector<std::string>* lines) {
    std::vector<std::string> text = read_lines(path, tolerate_torn_tail);
    std::vector<nlohmann::json> rows;
    for (std::size_t i = 0; i < text.size(); ++i) {
      nlohmann::json row = parse_row(path, i + 1, text[i]);
      for (auto it = row.begin(); it != row.end(); ++it)
        DINO_CHECK(it->is_number() || it->is_null(), "'", path, "' line ", i + 1, ": the value of '", it.key(),
                   "' is neither a number nor null");
      rows.push_back(std::move(row));
    }
    if (lines) *lines = std::move(text);
    return rows;
  }

  // Reads histograms.jsonl (read_lines for tolerate_torn_tail). lines, when given, receives each row's text.
  static std::vector<HistogramRow> read_histogram_rows(const std::string& path, bool tolerate_torn_tail,
                                                       std::vector<std::string>* lines) {
    std::vector<std::string> text = read_lines(path, tolerate_torn_tail);
    std::vector<HistogramRow> rows;
    for (std::size_t i = 0; i < text.size(); ++i) {
      const nlohmann::json row = parse_row(path, i + 1, text[i]);
      HistogramRow out;
      out.step = row["step"].get<std::int64_t>();
      out.epoch = row["epoch"].get<std::int64_t>();
      for (auto it = row.begin(); it != row.end(); ++it) {
        if (it.key() == "step" || it.key() == "epoch") continue;
        out.histograms[it.key()] = histogram_from_json(*it, path, i + 1, it.key());
      }
      rows.push_back(std::move(out));
    }
    if (lines) *lines = std::move(text);
    return rows;
  }

  // One histogram_json object back (null as NaN), checked; name and line_no only for the messages.
  static Histogram histogram_from_json(const nlohmann::json& j, const std::string& path, std::size_t line_no,
                                       const std::string& name) {
    auto number = [&](const nlohmann::json& v) {
      DINO_CHECK(v.is_number() || v.is_null(), "'", path, "' line ", line_no, ": the histogram '", name,
                 "' holds a value that is neither a number nor null");
      return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
    };
    auto member = [&](const char* key) -> const nlohmann::json& {
      DINO_CHECK(j.contains(key), "'", path, "' line ", line_no, ": the histogram '", name, "' has no \"", key,
                 "\"");
      return j[key];
    };
    auto list = [&](const char* key) {
      const nlohmann::json& v = member(key);
      DINO_CHECK(v.is_array(), "'", path, "' line ", line_no, ": \"", key, "\" of the histogram '", name,
                 "' is not an array");
      std::vector<double> out;
      out.reserve(v.size());
      for (const nlohmann::json& x : v) out.push_back(number(x));
      return out;
    };
    DINO_CHECK(j.is_object(), "'", path, "' line ", line_no, ": the value of '", name, "' is not a histogram object");
    Histogram h;
    h.min = number(member("min"));
    h.max = number(member("max"));
    h.num = number(member("num"));
    h.sum = number(member("sum"));
    h.sum_squares = number(member("sum_squares"));
    h.bucket_limit = list("bucket_limit");
    h.bucket = list("bucket");
    DINO_CHECK(h.bucket_limit.size() == h.bucket.size(), "'", path, "' line ", line_no, ": the histogram '", name,
               "' has ", h.bucket_limit.size(), " bucket limits for ", h.bucket.size(), " buckets");
    return h;
  }

  std::string dir_;
  std::FILE* jsonl_ = nullptr;
  std::FILE* csv_ = nullptr;
  std::FILE* hist_ = nullptr;
  std::unique_ptr<TfEventsWriter> tb_;
  std::vector<std::string> columns_;
  std::set<std::string> column_set_;
  std::set<std::string> histogram_names_;
  std::map<std::string, SummaryEntry> summary_;
  std::int64_t last_step_ = std::numeric_limits<std::int64_t>::min();
  std::int64_t rows_ = 0, histogram_rows_ = 0;
};

}  // namespace dino::io
