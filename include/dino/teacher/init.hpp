// Teacher and student initialisation (the testbed's configuration.init_student_teacher, spec §5, A7): both
// networks start from the same construction-time state, then the teacher is drawn (t_init) and the student
// derived from it (s_init). Seeds: the teacher's generator from --t_init_seed (default: derived from --seed);
// the student's continues it unless --s_init_seed is set.
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dino/io/safetensors.hpp"
#include "dino/io/state_io.hpp"
#include "dino/teacher/update.hpp"
#include "dino/train/model.hpp"

namespace dino {

struct InitOptions {
  std::uint64_t seed = 0;                    // --seed (construction-time init)
  std::uint64_t t_init_seed = 0;             // --t_init_seed, resolved
  std::optional<std::uint64_t> s_init_seed;  // --s_init_seed
  std::string t_init = "random", s_init = "teacher";
  double s_init_alpha = 0, s_init_eps = 0;
  bool s_init_var_preserving = false;
  HeadInit head_init = HeadInit::trunc_normal;
  const io::Safetensors* ckpt = nullptr;  // for s_ckpt / t_ckpt
};

inline InitOptions init_options(const Config& c, std::uint64_t seed, const io::Safetensors* ckpt) {
  InitOptions o;
  o.seed = seed;
  // A7: without --t_init_seed the teacher's seed follows from --seed, so --seed alone reproduces a run.
  o.t_init_seed = c.t_init_seed ? static_cast<std::uint64_t>(*c.t_init_seed) : Generator(seed, purpose::teacher_init).next_u64();
  if (c.s_init_seed) o.s_init_seed = static_cast<std::uint64_t>(*c.s_init_seed);
  o.t_init = c.t_init;
  o.s_init = c.s_init;
  o.s_init_alpha = c.s_init_alpha;
  o.s_init_eps = c.s_init_eps;
  o.s_init_var_preserving = c.s_init_var_preserving;
  o.head_init = c.head_init_method == "default" ? HeadInit::default_init : HeadInit::trunc_normal;
  o.ckpt = ckpt;
  return o;
}

// Initialises teacher and student (same architecture, freshly built) as spec §5 describes.
template <class T, class B>
void init_student_teacher(DinoModel<T, B>& student, DinoModel<T, B>& teacher, const InitOptions& o) {
  const auto from_ckpt = [&](DinoModel<T, B>& m, const std::string& which) {
    DINO_CHECK(o.ckpt != nullptr, "--t_init/--s_init ", which, " needs --ckpt_path");
    io::load_state(*o.ckpt, m.state(), which == "s_ckpt" ? "student" : "teacher");
  };
  {
    Generator g(o.seed, purpose::construct);
    teacher.reset_parameters(g);
  }
  Generator t_gen(o.t_init_seed, purpose::teacher_init);
  if (o.t_init == "random") teacher.initialize(t_gen, o.head_init);
  else if (o.t_init == "s_ckpt" || o.t_init == "t_ckpt") from_ckpt(teacher, o.t_init);
  else fail("--t_init: unknown value '", o.t_init, "' (choose random, s_ckpt or t_ckpt)");

  Generator s_own(o.s_init_seed.value_or(0), purpose::student_init);
  Generator& s_gen = o.s_init_seed ? s_own : t_gen;
  // The student's random draw starts from the construction-time state (conv biases the testbed never redraws).
  const auto random_student = [&] {
    Generator g(o.seed, purpose::construct);
    student.reset_parameters(g);
    student.initialize(s_gen, o.head_init);
  };
  if (o.s_init == "teacher") {
    copy_state(student.state(), teacher.state());
  } else if (o.s_init == "s_ckpt" || o.s_init == "t_ckpt") {
    Generator g(o.seed, purpose::construct);
    student.reset_parameters(g);
    from_ckpt(student, o.s_init);
  } else if (o.s_init == "random") {
    random_student();
  } else if (o.s_init == "interpolated" || o.s_init == "neighborhood") {
    random_student();
    // Parameters only (buffers stay those of the random draw): p_s = (1-a) p_t + a p_r, or p_t + eps p_r.
    const bool interp = o.s_init == "interpolated";
    const double a = o.s_init_alpha, eps = o.s_init_eps;
    const double ct = interp ? 1.0 - a : 1.0, cr = interp ? a : eps;
    const double div = !o.s_init_var_preserving ? 1.0 : interp ? std::sqrt(2 * a * a - 2 * a + 1) : std::sqrt(eps * eps + 1);
    std::vector<T> pt = teacher.state().params.values().to_host();
    std::vector<T> pr = student.state().params.values().to_host();
    for (std::size_t i = 0; i < pr.size(); ++i) pr[i] = static_cast<T>((ct * pt[i] + cr * pr[i]) / div);
    B::copy_from_host(student.state().params.values().data(), pr.data(), static_cast<Index>(pr.size()));
  } else {
    fail("--s_init: unknown value '", o.s_init, "' (choose teacher, s_ckpt, t_ckpt, random, interpolated or neighborhood)");
  }
}

}  // namespace dino
