// ParamStatSaver: the testbed's `--save_paramstats` callback (dinopl/tracking.py ParamStatSaver, spec §12.2 with
// A4/A11): the RMS of every parameter (and, for the student, of its raw gradient) per step, written as wide
// RFC-4180 CSV tables <network>_param_stats.csv and student_grad_stats.csv instead of pickled DataFrames.
#pragma once
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/params.hpp"
#include "dino/io/file.hpp"
#include "dino/io/metrics.hpp"

namespace dino::io {

// Rows are kept as their CSV text, so a table loaded for a resumed run is rewritten byte for byte.
class ParamStatSaver {
 public:
  // network: "student" (parameter and gradient tables) or "teacher" (parameter table only: the teacher has no
  // gradients, A4). The columns are the store's parameter names, in store order.
  template <class T, class B>
  ParamStatSaver(const std::string& network, const NamedStore<T, B>& params) : network_(network) {
    DINO_CHECK(network == "student" || network == "teacher", "--save_paramstats: expected student or teacher, got '",
               network, "'");
    for (const Entry& e : params.entries()) names_.push_back(e.name);
    std::vector<std::string> cells{"step"};
    cells.insert(cells.end(), names_.begin(), names_.end());
    header_ = csv_record(cells);
  }

  const std::string& network() const { return network_; }
  bool has_grads() const { return network_ == "student"; }
  const std::vector<std::string>& names() const { return names_; }
  std::size_t param_rows() const { return params_.size(); }
  std::size_t grad_rows() const { return grads_.size(); }

  // Appends the row {step, RMS of each parameter's gradient} (the testbed's on_after_backward: raw gradients,
  // one row per backward pass). Student only; steps must not decrease.
  template <class T, class B>
  void record_grads(std::int64_t step, const NamedStore<T, B>& params) {
    DINO_CHECK(has_grads(), "--save_paramstats ", network_, ": the ", network_, " has no gradients to record");
    append(grads_, step, params, params.grads(), "gradient");
  }
  // Appends the row {step, RMS of each parameter} (the testbed's on_train_batch_end). Steps must not decrease.
  template <class T, class B>
  void record_params(std::int64_t step, const NamedStore<T, B>& params) {
    append(params_, step, params, params.values(), "parameter");
  }

  std::string param_path(const std::string& dir) const {
    return (std::filesystem::path(dir) / (network_ + "_param_stats.csv")).string();
  }
  std::string grad_path(const std::string& dir) const {
    return (std::filesystem::path(dir) / (network_ + "_grad_stats.csv")).string();
  }

  // Replaces the tables in dir by every row recorded so far (the testbed rewrites its pickles at each epoch end).
  void write(const std::string& dir) const {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    DINO_CHECK(!ec, "--save_paramstats: cannot create the folder '", dir, "': ", ec.message());
    write_file_atomic(param_path(dir), text(params_));
    if (has_grads()) write_file_atomic(grad_path(dir), text(grads_));
  }

  // For a resumed run: replaces the recorded rows by those of the tables in dir with step <= up_to_step. A table
  // must have this saver's columns; a missing table is an error unless up_to_step <= 0 (nothing recorded yet).
  void load(const std::string& dir, std::int64_t up_to_step) {
    std::vector<Row> params = read(param_path(dir), up_to_step);
    std::vector<Row> grads;
    if (has_grads()) grads = read(grad_path(dir), up_to_step);
    params_ = std::move(params);
    grads_ = std::move(grads);
  }

 private:
  struct Row {
    std::int64_t step;
    std::string text;  // one CSV record, CRLF included
  };

  template <class T, class B>
  void append(std::vector<Row>& rows, std::int64_t step, const NamedStore<T, B>& store, const Tensor<T, B>& flat,
              const char* what) {
    DINO_CHECK(step >= 0, "--save_paramstats: negative step ", step);
    DINO_CHECK(rows.empty() || step >= rows.back().step, "--save_paramstats: ", what, " statistics of step ", step,
               " recorded after step ", rows.back().step);
    DINO_CHECK(store.finalized() && store.count() == static_cast<Index>(names_.size()), "--save_paramstats: the ",
               network_, " store has ", store.count(), " parameters; the table has ", names_.size(), " columns");
    const T* x = flat.data();
    if constexpr (!std::is_same_v<B, Cpu>) {
      std::vector<T>& staging = staging_for<T>();
      staging.resize(static_cast<std::size_t>(flat.numel()));
      B::copy_to_host(staging.data(), flat.data(), flat.numel());
      x = staging.data();
    }
    std::vector<std::string> cells{std::to_string(step)};
    for (Index i = 0; i < store.count(); ++i) {
      const Entry& e = store.entry(i);
      DINO_CHECK(e.name == names_[static_cast<std::size_t>(i)], "--save_paramstats: parameter ", i, " is '", e.name,
                 "'; the table's column is '", names_[static_cast<std::size_t>(i)], "'");
      const Index n = e.shape.numel();
      double sq = 0;
      for (Index j = 0; j < n; ++j) {
        const double v = static_cast<double>(x[e.offset + j]);
        sq += v * v;
      }
      cells.push_back(csv_number(std::sqrt(sq / static_cast<double>(n))));
    }
    rows.push_back({step, csv_record(cells)});
  }

  template <class T>
  std::vector<T>& staging_for() {
    if constexpr (std::is_same_v<T, float>)
      return staging_f_;
    else
      return staging_d_;
  }

  std::string text(const std::vector<Row>& rows) const {
    std::string out = header_;
    for (const Row& r : rows) out += r.text;
    return out;
  }

  // The rows of one of our tables with step <= up_to_step; anything else than what write() produces is an error.
  std::vector<Row> read(const std::string& path, std::int64_t up_to_step) const {
    std::vector<Row> rows;
    if (!std::filesystem::exists(path)) {
      DINO_CHECK(up_to_step <= 0, "cannot resume the parameter statistics at step ", up_to_step, ": '", path,
                 "' is missing");
      return rows;
    }
    std::ifstream in(path, std::ios::binary);
    DINO_CHECK(in, "cannot open '", path, "' for reading");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    DINO_CHECK(!in.bad(), "cannot read '", path, "'");
    DINO_CHECK(bytes.compare(0, header_.size(), header_) == 0, "'", path, "' does not start with the header 'step,",
               "<the ", names_.size(), " parameter names of the ", network_, ">'");
    std::size_t at = header_.size();
    for (std::size_t line = 2; at < bytes.size(); ++line) {
      const std::size_t end = bytes.find("\r\n", at);
      DINO_CHECK(end != std::string::npos, "'", path, "' line ", line, ": the record does not end in CRLF");
      const std::string record = bytes.substr(at, end - at);
      at = end + 2;
      std::vector<std::string> fields;
      for (std::size_t b = 0;;) {
        const std::size_t c = record.find(',', b);
        fields.push_back(record.substr(b, c == std::string::npos ? std::string::npos : c - b));
        if (c == std::string::npos) break;
        b = c + 1;
      }
      DINO_CHECK(fields.size() == names_.size() + 1, "'", path, "' line ", line, ": ", fields.size(),
                 " fields; expected ", names_.size() + 1);
      const std::int64_t step = parse_step(fields[0], path, line);
      for (std::size_t f = 1; f < fields.size(); ++f)
        DINO_CHECK(is_number_or_empty(fields[f]), "'", path, "' line ", line, ": '", fields[f],
                   "' in column '", names_[f - 1], "' is not a number");
      DINO_CHECK(rows.empty() || step >= rows.back().step, "'", path, "' line ", line, ": step ", step,
                 " after step ", rows.back().step);
      if (step > up_to_step) break;
      rows.push_back({step, record + "\r\n"});
    }
    return rows;
  }

  static std::int64_t parse_step(const std::string& s, const std::string& path, std::size_t line) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    DINO_CHECK(!s.empty() && s[0] != '-' && s[0] != '+' && errno == 0 && end == s.c_str() + s.size(), "'", path,
               "' line ", line, ": the step '", s, "' is not a non-negative integer");
    return static_cast<std::int64_t>(v);
  }

  static bool is_number_or_empty(const std::string& s) {
    if (s.empty()) return true;
    // csv_number writes JSON numbers only: no spaces, "nan", "inf" or hexadecimal.
    if (s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
    char* end = nullptr;
    std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size();
  }

  std::string network_;
  std::vector<std::string> names_;
  std::string header_;
  std::vector<Row> params_, grads_;
  std::vector<float> staging_f_;
  std::vector<double> staging_d_;
};

}  // namespace dino::io
