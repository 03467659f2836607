// ParamTracker: the testbed's three ParamTracker callbacks (dinopl/tracking.py, spec §11) in one object: NaN/Inf
// counts, norms, RMS and cosines of the flattened teacher and student parameters, of the student's raw gradient
// and of the distances to the parameters at fit start, for all parameters ('') and the 'head/' and 'enc/' groups.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/params.hpp"
#include "dino/core/tensor.hpp"

namespace dino {

namespace param_tracker_detail {

// torch.nn.functional.cosine_similarity of two flattened vectors (torch 1.13 and 2.x): each norm is clamped to
// eps separately, so a zero vector gives 0, not NaN; NaN norms propagate.
inline double cosine(double dot, double sq_x, double sq_y, double eps = 1e-8) {
  const double nx = std::sqrt(sq_x), ny = std::sqrt(sq_y);
  return dot / ((std::isnan(nx) ? nx : std::max(nx, eps)) * (std::isnan(ny) ? ny : std::max(ny, eps)));
}

// The sums behind every figure of one group (or one chunk of it), in double.
struct Sums {
  enum : std::size_t { kNanT, kNanS, kInfT, kInfS, kTT, kSS, kTS, kGG, kDD, kGD, kTiTi, kSiSi, kTiSi, kCount };
  std::array<double, kCount> v{};
  double n = 0;  // element count
  void add(const Sums& o) {
    for (std::size_t i = 0; i < kCount; ++i) v[i] += o.v[i];
    n += o.n;
  }
};

}  // namespace param_tracker_detail

template <class T, class B>
class ParamTracker {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  // The group prefixes of the metric names, in the testbed's callback order: all parameters, "head.*", "enc.*".
  static const std::vector<std::string>& groups() {
    static const std::vector<std::string> g{"", "head/", "enc/"};
    return g;
  }
  // The figures of one group, after "params/<group>"; exactly the testbed's strings.
  static const std::vector<std::string>& figures() {
    static const std::vector<std::string> f{
        "nans(teach)", "nans(stud)", "infs(teach)", "infs(stud)",
        "norm(teach)", "norm(stud)", "cos(teach, stud)", "rms(teach)", "rms(stud)",
        "norm(grad)", "norm(diff)", "cos(grad, diff)", "rms(grad)", "rms(diff)",
        "norm(teach - init)", "norm(stud - init)", "cos(teach-init, stud-init)", "rms(teach - init)",
        "rms(stud - init)"};
    return f;
  }

  // Keeps a host copy of both networks' parameters as the "init" of the init-relative figures (the testbed's
  // on_fit_start). The stores must hold the same names and shapes, in the same order.
  ParamTracker(const NamedStore<T, B>& student, const NamedStore<T, B>& teacher) {
    check_pair(student, teacher);
    entries_ = student.entries();
    s_init_ = student.values().to_host();
    t_init_ = teacher.values().to_host();
    group_of_.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const std::string& n = entries_[i].name;
      group_of_[i] = n.rfind("head.", 0) == 0 ? 1 : n.rfind("enc.", 0) == 0 ? 2 : 0;
    }
  }

  // Copies the student's raw gradient (the testbed's on_after_backward: before wn-freeze and clipping). Until
  // the first capture the gradient is zero; a capture stays until the next one.
  void capture_grad(Ctx<B>&, const NamedStore<T, B>& student) {
    check_layout(student, "the student");
    grad_.copy_from(student.grads());
    has_grad_ = true;
  }

  // Every "params/<group><figure>" value (groups() x figures(), 57 names) for the current parameters. Sums run
  // in double over fixed chunks combined in index order, so the result does not depend on the thread count.
  std::map<std::string, double> metrics(Ctx<B>&, const NamedStore<T, B>& student, const NamedStore<T, B>& teacher) {
    using param_tracker_detail::Sums;
    check_layout(student, "the student");
    check_layout(teacher, "the teacher");
    const T* s = host_view(student.values(), s_host_);
    const T* t = host_view(teacher.values(), t_host_);
    const T* g = has_grad_ ? host_view(grad_, g_host_) : nullptr;

    // Chunks never straddle two parameters, so each chunk belongs to one group.
    constexpr Index kChunk = Index(1) << 15;
    chunks_.clear();
    for (std::size_t e = 0; e < entries_.size(); ++e) {
      const Index begin = entries_[e].offset, end = begin + entries_[e].shape.numel();
      for (Index b = begin; b < end; b += kChunk) chunks_.push_back({b, std::min(end, b + kChunk), group_of_[e]});
    }
    partial_.assign(chunks_.size(), Sums{});
    const Index n_chunks = static_cast<Index>(chunks_.size());
    const T* ti = t_init_.data();
    const T* si = s_init_.data();
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (Index c = 0; c < n_chunks; ++c) {
      const Chunk ch = chunks_[static_cast<std::size_t>(c)];
      // Local accumulators: stores into partial_ could alias the inputs (T = double) and defeat registers.
      double nan_t = 0, nan_s = 0, inf_t = 0, inf_s = 0, tt = 0, ss = 0, ts = 0, gg = 0, dd = 0, gd = 0, titi = 0,
             sisi = 0, tisi = 0;
      for (Index i = ch.begin; i < ch.end; ++i) {
        const double tv = static_cast<double>(t[i]), sv = static_cast<double>(s[i]);
        const double gv = g ? static_cast<double>(g[i]) : 0.0;
        const double dv = tv - sv;
        const double tr = tv - static_cast<double>(ti[i]), sr = sv - static_cast<double>(si[i]);
        nan_t += std::isnan(tv) ? 1 : 0;
        nan_s += std::isnan(sv) ? 1 : 0;
        inf_t += std::isinf(tv) ? 1 : 0;
        inf_s += std::isinf(sv) ? 1 : 0;
        tt += tv * tv;
        ss += sv * sv;
        ts += tv * sv;
        gg += gv * gv;
        dd += dv * dv;
        gd += gv * dv;
        titi += tr * tr;
        sisi += sr * sr;
        tisi += tr * sr;
      }
      partial_[static_cast<std::size_t>(c)].v = {nan_t, nan_s, inf_t, inf_s, tt, ss, ts, gg, dd, gd, titi, sisi, tisi};
      partial_[static_cast<std::size_t>(c)].n = static_cast<double>(ch.end - ch.begin);
    }
    std::array<Sums, 3> group{};  // all, head, enc
    for (std::size_t c = 0; c < chunks_.size(); ++c) {
      group[0].add(partial_[c]);
      if (chunks_[c].group > 0) group[static_cast<std::size_t>(chunks_[c].group)].add(partial_[c]);
    }

    std::map<std::string, double> out;
    for (std::size_t k = 0; k < 3; ++k) {
      const auto& v = group[k].v;
      const double n = group[k].n;
      // An empty group (an encoder without parameters): norms 0, RMS NaN (torch's mean of an empty tensor).
      auto rms = [n](double sq) { return std::sqrt(sq / n); };
      using param_tracker_detail::cosine;
      const double values[] = {
          v[Sums::kNanT], v[Sums::kNanS], v[Sums::kInfT], v[Sums::kInfS],
          std::sqrt(v[Sums::kTT]), std::sqrt(v[Sums::kSS]), cosine(v[Sums::kTS], v[Sums::kTT], v[Sums::kSS]),
          rms(v[Sums::kTT]), rms(v[Sums::kSS]),
          std::sqrt(v[Sums::kGG]), std::sqrt(v[Sums::kDD]), cosine(v[Sums::kGD], v[Sums::kGG], v[Sums::kDD]),
          rms(v[Sums::kGG]), rms(v[Sums::kDD]),
          std::sqrt(v[Sums::kTiTi]), std::sqrt(v[Sums::kSiSi]), cosine(v[Sums::kTiSi], v[Sums::kTiTi], v[Sums::kSiSi]),
          rms(v[Sums::kTiTi]), rms(v[Sums::kSiSi])};
      static_assert(sizeof(values) / sizeof(values[0]) == 19, "one value per figure");
      for (std::size_t f = 0; f < figures().size(); ++f) out["params/" + groups()[k] + figures()[f]] = values[f];
    }
    return out;
  }

 private:
  struct Chunk {
    Index begin, end;
    int group;  // 0: neither head nor enc, 1: head, 2: enc
  };

  static void check_pair(const NamedStore<T, B>& student, const NamedStore<T, B>& teacher) {
    DINO_CHECK(student.finalized() && teacher.finalized(), "ParamTracker: the parameter stores must be finalized");
    DINO_CHECK(student.count() == teacher.count(), "ParamTracker: the student has ", student.count(),
               " parameters, the teacher ", teacher.count());
    for (Index i = 0; i < student.count(); ++i) {
      const Entry &a = student.entry(i), &b = teacher.entry(i);
      DINO_CHECK(a.name == b.name && a.shape == b.shape, "ParamTracker: parameter ", i, " is '", a.name, "' ",
                 a.shape.str(), " in the student but '", b.name, "' ", b.shape.str(), " in the teacher");
    }
  }

  void check_layout(const NamedStore<T, B>& store, const char* who) const {
    DINO_CHECK(store.finalized() && store.count() == static_cast<Index>(entries_.size()) &&
                   store.numel() == static_cast<Index>(s_init_.size()),
               "ParamTracker: ", who, " has ", store.count(), " parameters (", store.numel(), " values); tracked: ",
               entries_.size(), " (", s_init_.size(), ")");
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = store.entry(static_cast<Index>(i));
      DINO_CHECK(e.name == entries_[i].name && e.shape == entries_[i].shape, "ParamTracker: parameter ", i, " of ",
                 who, " is '", e.name, "' ", e.shape.str(), "; tracked: '", entries_[i].name, "' ",
                 entries_[i].shape.str());
    }
  }

  // The CPU backend's memory is the host's: no copy. Otherwise one transfer into a reused host buffer.
  static const T* host_view(const Tensor<T, B>& x, std::vector<T>& staging) {
    if constexpr (std::is_same_v<B, Cpu>) {
      (void)staging;
      return x.data();
    } else {
      staging.resize(static_cast<std::size_t>(x.numel()));
      B::copy_to_host(staging.data(), x.data(), x.numel());
      return staging.data();
    }
  }

  std::vector<Entry> entries_;
  std::vector<int> group_of_;
  std::vector<T> s_init_, t_init_;
  Tensor<T, B> grad_;
  bool has_grad_ = false;
  std::vector<T> s_host_, t_host_, g_host_;
  std::vector<Chunk> chunks_;
  std::vector<param_tracker_detail::Sums> partial_;
};

}  // namespace dino
