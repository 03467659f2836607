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

// One line per epoch, redrawn in place on a terminal: step, loss, images/s, ETA. The rate counts the time
// from one step's end to the next (so the first step of an epoch counts too), less the validations.
class Progress {
  using clock = std::chrono::steady_clock;

 public:
  Progress() : tty_(::isatty(STDERR_FILENO) != 0), last_(clock::now()) {}
  // A validation has just ended: its time is not training time.
  void skip() { last_ = clock::now(); }
  void step(std::int64_t epoch, std::int64_t b, std::int64_t steps, const StepResult& r) {
    const clock::time_point now = clock::now();
    if (epoch != epoch_) {  // the first batch of an epoch (not batch 0 when a run resumes mid-epoch)
      epoch_ = epoch;
      done_ = images_ = 0;
      busy_ = 0;
    }
    busy_ += std::chrono::duration<double>(now - last_).count();
    last_ = now;
    ++done_;
    images_ += r.images;
    const double rate = busy_ > 0 ? static_cast<double>(images_) / busy_ : 0.0;
    const double eta = busy_ / static_cast<double>(done_) * static_cast<double>(steps - b - 1);
    const bool last = b + 1 == steps;
    if (!tty_ && !last) return;
    std::fprintf(stderr, "%sepoch %lld [%lld/%lld] loss %.4f  %.0f img/s  ETA %.0fs%s", tty_ ? "\r" : "",
                 static_cast<long long>(epoch), static_cast<long long>(b + 1), static_cast<long long>(steps), r.loss.loss,
                 rate, eta, last || !tty_ ? "\n" : "   ");
  }

 private:
  std::int64_t epoch_ = -1, done_ = 0, images_ = 0;
  bool tty_;
  double busy_ = 0;  // seconds of training in this epoch so far
  clock::time_point last_;
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

// Sets the run up (the results folder appears once it has loaded), says where it goes, then trains.
template <class T, class B>
bool set_up_and_fit(const Config& c, const std::string& dir, const RunCallbacks& cb, const std::string& resume_from) {
  TrainingRun<T, B> run(c, dir, cb, resume_from);
  std::fprintf(stderr, "dino: %s on the %s in %s; results in %s\n", resume_from.empty() ? "training" : "resuming",
               std::string(B::name) == "cuda" ? "GPU" : "CPU", sizeof(T) == 8 ? "float64" : "float32", dir.c_str());
  return run.fit();
}

// Trains (or resumes) on backend B in the configured precision; false when should_stop ended the run early.
template <class B>
bool train(const Config& c, const std::string& dir, const std::string& resume_from,
           const std::function<bool()>& should_stop, ProbeResults& probes) {
  Progress progress;
  RunCallbacks cb;
  cb.on_step = [&](std::int64_t e, std::int64_t b, std::int64_t steps, const StepResult& r) { progress.step(e, b, steps, r); };
  cb.on_validation = [&](const std::string& when, const std::map<std::string, double>& m) {
    print_validation(when, m, probes);
    progress.skip();
  };
  cb.should_stop = should_stop;
  if (c.float64) return set_up_and_fit<double, B>(c, dir, cb, resume_from);
  return set_up_and_fit<float, B>(c, dir, cb, resume_from);
}

#ifdef DINO_CLI_WITH_CUDA
// In dino_cuda.cu: whether a GPU is visible, and the run on it.
int cuda_device_count();
bool train_cuda(const Config& c, const std::string& dir, const std::string& resume_from,
                const std::function<bool()>& should_stop, ProbeResults& probes);
#endif

}  // namespace dino::cli_tool
