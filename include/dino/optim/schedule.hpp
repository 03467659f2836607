// Parameter schedules of the testbed (safelix/dinopl:dinopl/scheduling.py, spec §8): a parsed expression that
// materialises to one value per optimizer step with prep(), prints as the testbed's repr (what config.json
// stores), and is read by global step. Values are doubles; the consumer rounds them to its scalar type at use.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/optim/schedule_parser.hpp"

namespace dino {

namespace detail {

// Longest schedule we materialise (16 GiB of doubles); longer ones come from absurd epochs or fractions.
inline constexpr std::int64_t kMaxScheduleSteps = std::int64_t{1} << 31;
inline constexpr double kPi = 3.141592653589793;  // math.pi, the value torch.pi holds

inline std::int64_t saturating_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return ((a < 0) != (b < 0)) ? std::numeric_limits<std::int64_t>::min()
                                                                    : std::numeric_limits<std::int64_t>::max();
  return r;
}

// Python's round() on a float: half to even, independent of the floating-point rounding mode.
inline double round_half_even(double x) {
  const double fl = std::floor(x);
  const double diff = x - fl;
  if (diff > 0.5) return fl + 1.0;
  if (diff < 0.5) return fl;
  return std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

// torch.linspace's rule: the first half counts up from lo, the second half down from hi, so both endpoints are
// exact and the sequence is symmetric. n = 1 gives [lo].
inline void linspace(double lo, double hi, std::int64_t n, std::vector<double>& out) {
  out.resize(static_cast<std::size_t>(n));
  if (n == 1) out[0] = lo;
  if (n <= 1) return;
  const double step = (hi - lo) / static_cast<double>(n - 1);
  const std::int64_t half = n / 2;
  for (std::int64_t i = 0; i < n; ++i)
    out[static_cast<std::size_t>(i)] = i < half ? lo + step * static_cast<double>(i)
                                                : hi - step * static_cast<double>(n - 1 - i);
}

inline std::string schedule_repr(const ScheduleNode& n);

// Schedule.prep of the testbed (spec §8.2) for one node: resolves (n_steps, n_epochs) and appends its values.
inline void materialize(const ScheduleNode& node, std::int64_t n_steps, std::int64_t n_epochs, std::int64_t spe,
                        std::vector<double>& out) {
  if (n_epochs < 0 && n_steps < 0)
    fail("schedule ", schedule_repr(node), ": prep needs n_steps or n_epochs, got n_steps=", n_steps,
         " n_epochs=", n_epochs);
  if (n_epochs < 0 || saturating_mul(n_epochs, spe) < n_steps)
    n_epochs = n_steps / spe + (n_steps % spe != 0);
  else if (n_steps < 0 || n_steps < saturating_mul(n_epochs, spe))
    n_steps = saturating_mul(n_epochs, spe);
  if (n_steps > kMaxScheduleSteps)
    fail("schedule ", schedule_repr(node), " would have ", n_steps, " steps (", n_epochs, " epochs of ", spe,
         " steps); at most ", kMaxScheduleSteps, " are supported");

  const auto& num = node.numbers;
  const std::size_t base = out.size();
  const std::size_t n = static_cast<std::size_t>(n_steps);
  std::vector<double> x;
  switch (node.kind) {
    case ScheduleKind::Const: {
      out.insert(out.end(), n, num[0].f);
      return;
    }
    case ScheduleKind::Lin:
    case ScheduleKind::Cos:
    case ScheduleKind::Exp: {
      const double a = num[0].f, b = num[1].f;
      if (node.kind == ScheduleKind::Lin) {
        linspace(0.0, 1.0, n_steps, x);
        for (double t : x) out.push_back(a + (b - a) * t);
      } else if (node.kind == ScheduleKind::Cos) {
        linspace(-kPi, 0.0, n_steps, x);
        for (double t : x) out.push_back(a + (b - a) * (0.5 + std::cos(t) / 2.0));
      } else {
        linspace(std::log(a), std::log(b), n_steps, x);
        for (double t : x) out.push_back(std::exp(t));
      }
      // Spec §8.3: the first value is exactly a and the last exactly b, where a + (b - a) or exp(log b) can miss
      // by an ulp. A NaN or infinite argument keeps the formula's values (NaN throughout, as in the testbed).
      if (std::isfinite(a) && std::isfinite(b)) {
        if (n >= 1) out[base] = a;
        if (n >= 2) out[base + n - 1] = b;
      }
      return;
    }
    case ScheduleKind::Cat:
    case ScheduleKind::LinWarmup:
    case ScheduleKind::ExpWarmup:
    case ScheduleKind::CosWarmup: {
      ScheduleNode warm_l, warm_r;
      const ScheduleNode* left = nullptr;
      const ScheduleNode* right = nullptr;
      ScheduleNumber where;
      if (node.kind == ScheduleKind::Cat) {
        left = &node.children[0];
        right = &node.children[1];
        where = num[0];
      } else {
        // XWarmup(a, b, where) = CatSched(XSched(a, b), ConstSched(b), where).
        warm_l.kind = node.kind == ScheduleKind::LinWarmup   ? ScheduleKind::Lin
                      : node.kind == ScheduleKind::ExpWarmup ? ScheduleKind::Exp
                                                             : ScheduleKind::Cos;
        warm_l.numbers = {num[0], num[1]};
        warm_r.numbers = {num[1]};
        left = &warm_l;
        right = &warm_r;
        where = num[2];
      }
      if (where.is_int) {
        // where epochs on the left, the remaining epochs on the right; each side resolves its own length.
        const std::int64_t epochs_r = n_epochs - where.i;
        if (where.i > 0) materialize(*left, -1, where.i, spe, out);
        if (epochs_r > 0) materialize(*right, -1, epochs_r, spe, out);
      } else {
        const double steps_l = round_half_even(where.f * static_cast<double>(n_steps));
        if (!(steps_l <= static_cast<double>(kMaxScheduleSteps)))
          fail("schedule ", schedule_repr(node), ": its left part would have ", python_float_repr(steps_l),
               " steps; at most ", kMaxScheduleSteps, " are supported");
        const auto n_l = static_cast<std::int64_t>(steps_l);
        const std::int64_t n_r = n_steps - n_l;
        if (n_l > 0) materialize(*left, n_l, -1, spe, out);
        if (n_r > 0) materialize(*right, n_r, -1, spe, out);
      }
      return;
    }
    case ScheduleKind::MultiStep: {
      // Python slice assignments in milestone order: ys[last:ms] = value, clipped to the length; a milestone
      // below the previous one assigns nothing and moves `last` back.
      out.resize(base + n, std::numeric_limits<double>::quiet_NaN());
      const auto clip = [&](std::int64_t s) {
        return static_cast<std::size_t>(std::min(std::max(s, std::int64_t{0}), n_steps));
      };
      double value = num[0].f;
      std::int64_t last = 0;
      for (std::size_t k = 2; k < num.size(); ++k) {
        std::int64_t ms = 0;
        if (num[k].is_int) {
          ms = saturating_mul(num[k].i, spe);
        } else {
          const double f = std::trunc(num[k].f * static_cast<double>(n_steps));
          ms = f >= 9.2e18 ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(f);
        }
        for (std::size_t i = clip(last); i < clip(ms); ++i) out[base + i] = value;
        value *= num[1].f;
        last = ms;
      }
      for (std::size_t i = clip(last); i < n; ++i) out[base + i] = value;
      return;
    }
  }
}

// The testbed's repr of a schedule: ClassName(arg, ...) with Python's reprs of ints and floats.
inline std::string schedule_repr(const ScheduleNode& n) {
  std::string s = std::string(schedule_kind_name(n.kind)) + "(";
  bool first = true;
  const auto sep = [&] {
    if (!first) s += ", ";
    first = false;
  };
  if (n.kind == ScheduleKind::Cat) {
    for (const auto& c : n.children) {
      sep();
      s += schedule_repr(c);
    }
  }
  for (const auto& x : n.numbers) {
    sep();
    s += python_repr(x);
  }
  return s + ")";
}

}  // namespace detail

// A parsed schedule plus, after prep(), its values. Copyable; the default is ConstSched(nan).
class Schedule {
 public:
  Schedule() : root_(const_node(std::numeric_limits<double>::quiet_NaN())) {}

  // Parses an expression of spec §8.1 (see parse_schedule_expr for the grammar and the error format). A string
  // that is just a number or a named constant gives ConstSched(float).
  static Schedule parse(const std::string& expr) { return Schedule(parse_schedule_expr(expr)); }

  // ConstSched(v): what the testbed makes of a non-string value such as a JSON number.
  static Schedule constant(double v) { return Schedule(const_node(v)); }

  ScheduleKind kind() const { return root_.kind; }
  const ScheduleNode& node() const { return root_; }

  // The canonical form, as the testbed's repr: floats as Python prints them ("LinSched(0.0, 0.0005)"), ints
  // kept where the testbed keeps them (CatSched/Warmup `where`, MultiStep milestones), NaN as "nan".
  // parse(str()) gives the same schedule, and str() of that is the same string.
  std::string str() const { return detail::schedule_repr(root_); }

  // Materialises the values per spec §8.2/§8.3 and keeps them for value(). A negative n_steps or n_epochs means
  // "not given" (not both); steps_per_epoch must be >= 1. The length is max(n_steps, n_epochs * spe) (n_steps
  // when n_epochs < 0) and can be longer where a nested int split rounds epochs up or `where` exceeds them.
  // On a temporary Schedule the values are returned by value, so they outlive it.
  const std::vector<double>& prep(std::int64_t n_steps, std::int64_t n_epochs, std::int64_t steps_per_epoch) & {
    DINO_CHECK(steps_per_epoch >= 1, "schedule ", str(), ": steps_per_epoch must be >= 1, got ", steps_per_epoch);
    std::vector<double> ys;
    detail::materialize(root_, n_steps, n_epochs, steps_per_epoch, ys);
    ys_ = std::move(ys);
    prepared_ = true;
    return ys_;
  }
  std::vector<double> prep(std::int64_t n_steps, std::int64_t n_epochs, std::int64_t steps_per_epoch) && {
    prep(n_steps, n_epochs, steps_per_epoch);
    return std::move(ys_);
  }

  bool prepared() const { return prepared_; }
  // The values of the last prep() (empty before).
  const std::vector<double>& ys() const { return ys_; }
  std::int64_t size() const { return static_cast<std::int64_t>(ys_.size()); }

  // ys[step] of the last prep(); throws dino::Error naming the schedule when unprepared or out of range.
  double value(std::int64_t step) const {
    DINO_CHECK(prepared_, "schedule ", str(), " has no values yet: call prep() before value(", step, ")");
    DINO_CHECK(step >= 0 && step < size(), "schedule ", str(), " has no value for step ", step, ": it holds ",
               size(), " steps (0 to ", size() - 1, ")");
    return ys_[static_cast<std::size_t>(step)];
  }

 private:
  explicit Schedule(ScheduleNode root) : root_(std::move(root)) {}

  static ScheduleNode const_node(double v) { return {ScheduleKind::Const, {ScheduleNumber::floating(v)}, {}}; }

  ScheduleNode root_;
  std::vector<double> ys_;
  bool prepared_ = false;
};

}  // namespace dino
