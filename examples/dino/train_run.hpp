// The part of the dino command that is compiled once per backend: a TrainingRun with the console output (one
// progress line per epoch, the validations' figures).
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>

#include "dino/train/run.hpp"

namespace dino::cli_tool {

// One line per epoch, redrawn in place on a terminal: step, loss, images/s, ETA.
class Progress {
 public:
  explicit Progress(std::int64_t bs) : bs_(bs), tty_(::isatty(STDERR_FILENO) != 0) {}
  void step(std::int64_t epoch, std::int64_t b, std::int64_t steps, const StepResult& r) {
    using clock = std::chrono::steady_clock;
    if (epoch != epoch_) {  // the first batch of an epoch (not batch 0 when a run resumes mid-epoch)
      epoch_ = epoch;
      first_ = b;
      start_ = clock::now();
    }
    const double s = std::chrono::duration<double>(clock::now() - start_).count();
    const std::int64_t done = b + 1 - first_;
    const double rate = s > 0 ? static_cast<double>(done * bs_) / s : 0.0;
    const double eta = s / static_cast<double>(done) * static_cast<double>(steps - b - 1);
    const bool last = b + 1 == steps;
    if (!tty_ && !last) return;
    std::fprintf(stderr, "%sepoch %lld [%lld/%lld] loss %.4f  %.0f img/s  ETA %.0fs%s", tty_ ? "\r" : "",
                 static_cast<long long>(epoch), static_cast<long long>(b + 1), static_cast<long long>(steps), r.loss.loss,
                 rate, eta, last || !tty_ ? "\n" : "   ");
  }

 private:
  std::int64_t bs_, epoch_ = -1, first_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

// What the command prints at the end: the last validation's probe accuracies.
using ProbeResults = std::map<std::string, double>;

inline void print_validation(const std::string& when, const std::map<std::string, double>& m, ProbeResults& last) {
  std::fprintf(stderr, "validation (%s):", when.c_str());
  for (const char* k : {"valid/loss", "probe/student", "probe/teacher", "probe/student/knn", "probe/teacher/knn"})
    if (auto it = m.find(k); it != m.end()) std::fprintf(stderr, "  %s %.4f", k, it->second);
  std::fprintf(stderr, "\n");
  for (const auto& [k, v] : m)
    if (k.rfind("probe/", 0) == 0) last[k] = v;
}

// Trains (or resumes) on backend B in the configured precision; false when should_stop ended the run early.
template <class B>
bool train(const Config& c, const std::string& dir, const std::string& resume_from,
           const std::function<bool()>& should_stop, ProbeResults& probes) {
  Progress progress(c.bs_train);
  RunCallbacks cb;
  cb.on_step = [&](std::int64_t e, std::int64_t b, std::int64_t steps, const StepResult& r) { progress.step(e, b, steps, r); };
  cb.on_validation = [&](const std::string& when, const std::map<std::string, double>& m) {
    print_validation(when, m, probes);
  };
  cb.should_stop = should_stop;
  if (c.float64) return TrainingRun<double, B>(c, dir, cb, resume_from).fit();
  return TrainingRun<float, B>(c, dir, cb, resume_from).fit();
}

#ifdef DINO_CLI_WITH_CUDA
// In dino_cuda.cu: whether a GPU is visible, and the run on it.
int cuda_device_count();
bool train_cuda(const Config& c, const std::string& dir, const std::string& resume_from,
                const std::function<bool()>& should_stop, ProbeResults& probes);
#endif

}  // namespace dino::cli_tool
