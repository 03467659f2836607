// Teacher update rules (the testbed's DINOTeacherUpdater, spec §6.4-§6.5): the EMA of the student's
// parameters after every training batch, the value copy of prev_epoch (Part A4: a copy, never an alias),
// and, with t_bn_mode from_student, the same rule applied to the BatchNorm running statistics.
#pragma once
#include <string>

#include "dino/core/params.hpp"

namespace dino {

// BatchNorm running statistics (the buffers t_bn_mode from_student takes from the student); the head's
// centre and num_batches_tracked are never taken.
inline bool is_bn_running_stat(const std::string& name) {
  const auto ends_with = [&](const char* suffix) {
    const std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".running_mean") || ends_with(".running_var");
}

namespace detail {
template <class T, class B>
void check_same_layout(const ModelState<T, B>& teacher, const ModelState<T, B>& student) {
  DINO_CHECK(teacher.params.numel() == student.params.numel() && teacher.buffers.numel() == student.buffers.numel() &&
                 teacher.params.count() == student.params.count(),
             "teacher and student have different architectures");
}
}  // namespace detail

// teacher = m * teacher + (1 - m) * student for every parameter, and for the BN running statistics when
// bn_stats is set (t_bn_mode from_student).
template <class T, class B>
void teacher_ema_update(Ctx<B>& ctx, ModelState<T, B>& teacher, const ModelState<T, B>& student, T m, bool bn_stats) {
  detail::check_same_layout(teacher, student);
  B::ema_update(ctx, teacher.params.values().data(), student.params.values().data(), m, teacher.params.numel());
  if (!bn_stats) return;
  for (Index id = 0; id < teacher.buffers.count(); ++id) {
    const Entry& e = teacher.buffers.entry(id);
    if (!is_bn_running_stat(e.name)) continue;
    B::ema_update(ctx, teacher.buffers.value(id), student.buffers.values().data() + e.offset, m, e.shape.numel());
  }
}

// teacher = student for every parameter, and for the BN running statistics when bn_stats is set.
template <class T, class B>
void teacher_copy_update(ModelState<T, B>& teacher, const ModelState<T, B>& student, bool bn_stats) {
  detail::check_same_layout(teacher, student);
  B::copy(teacher.params.values().data(), student.params.values().data(), teacher.params.numel());
  if (!bn_stats) return;
  for (Index id = 0; id < teacher.buffers.count(); ++id) {
    const Entry& e = teacher.buffers.entry(id);
    if (is_bn_running_stat(e.name))
      B::copy(teacher.buffers.value(id), student.buffers.values().data() + e.offset, e.shape.numel());
  }
}

// Copies everything (parameters, buffers, counters): s_init teacher (the student is a deep copy).
template <class T, class B>
void copy_state(ModelState<T, B>& dst, const ModelState<T, B>& src) {
  detail::check_same_layout(dst, src);
  B::copy(dst.params.values().data(), src.params.values().data(), dst.params.numel());
  if (dst.buffers.numel() > 0) B::copy(dst.buffers.values().data(), src.buffers.values().data(), dst.buffers.numel());
  dst.counters = src.counters;
}

}  // namespace dino
