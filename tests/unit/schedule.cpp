// Unit tests of the schedule expressions (spec §8): parser and its errors, Python's number literals and float
// repr, materialisation of every worked example of §8.4 and the CIFAR10 default learning rate.
#include <doctest/doctest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <dino/optim/schedule.hpp>
#include <string>
#include <vector>

using namespace dino;

namespace {

std::vector<double> repeat(double v, int n) { return std::vector<double>(static_cast<std::size_t>(n), v); }

std::vector<double> cat(std::vector<double> a, const std::vector<double>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// i / (n - 1) for i in [0, n): a linear ramp from 0 to 1.
std::vector<double> ramp(int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(static_cast<double>(i) / (n - 1));
  return v;
}

// Materialises expr and compares the whole vector (length first) to within tol per element.
void check_ys(const std::string& expr, std::int64_t n_steps, std::int64_t n_epochs, std::int64_t spe,
              const std::vector<double>& expect, double tol) {
  CAPTURE(expr);
  CAPTURE(n_steps);
  CAPTURE(n_epochs);
  CAPTURE(spe);
  Schedule s = Schedule::parse(expr);
  const std::vector<double> ys = s.prep(n_steps, n_epochs, spe);
  REQUIRE(ys.size() == expect.size());
  for (std::size_t i = 0; i < ys.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(ys[i] - expect[i]) <= tol);
  }
  // str() is the canonical form: a fixed point that materialises to the very same values.
  Schedule again = Schedule::parse(s.str());
  CHECK(again.str() == s.str());
  CHECK(again.prep(n_steps, n_epochs, spe) == ys);
}

// The error message of a malformed expression (empty when it parses).
std::string parse_error(const std::string& expr) {
  try {
    Schedule::parse(expr);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("Schedule: worked examples of spec 8.4") {
  check_ys("ConstSched(0.9)", -1, 2, 2, repeat(0.9, 4), 0.0);
  check_ys("LinSched(0, 1)", -1, 1, 5, {0, .25, .5, .75, 1}, 0.0);
  check_ys("CosSched(1, 0)", -1, 1, 5, {1, .853553, .5, .146447, 0}, 1e-6);
  check_ys("CosSched(0.996, 1)", -1, 1, 5, {.996, .996586, .998, .999414, 1}, 1e-6);
  check_ys("ExpSched(1, 0.01)", -1, 1, 3, {1, 0.1, 0.01}, 1e-15);
  // Six digits in the spec's table: 5e-10 absolute at this scale.
  check_ys("CatSched(LinSched(0, 5e-4), CosSched(5e-4, 1e-6), 2)", -1, 5, 3,
           {0, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 5e-4, 4.81008e-4, 4.26923e-4, 3.45980e-4, 2.5050e-4, 1.55020e-4,
            7.40769e-5, 1.99921e-5, 1e-6},
           1e-9);
  // round(0.3 * 15) = round(4.5) = 4 (half to even).
  check_ys("CatSched(LinSched(0, 1), 1, 0.3)", -1, 5, 3, cat(ramp(4), repeat(1.0, 11)), 1e-15);
  // round(0.5 * 5) = round(2.5) = 2.
  check_ys("CatSched(LinSched(0, 1), 1, 0.5)", 5, -1, 1, {0, 1, 1, 1, 1}, 0.0);
  check_ys("LinWarmup(0.04, 0.07, 2)", -1, 5, 3, cat({.04, .046, .052, .058, .064, .07}, repeat(.07, 9)), 1e-15);
  check_ys("LinWarmup(0.04, 0.04, 0)", -1, 2, 3, repeat(0.04, 6), 0.0);
  check_ys("CosWarmup(0, 1, 1)", -1, 3, 3, cat({0, .5, 1}, repeat(1.0, 6)), 1e-15);
  check_ys("ExpWarmup(1e-3, 1e-1, 1)", -1, 2, 3, cat({.001, .01, .1}, repeat(.1, 3)), 1e-15);
  check_ys("MultiStep(0.1, 0.1, 2, 0.8)", -1, 5, 3, cat(cat(repeat(0.1, 6), repeat(0.01, 6)), repeat(0.001, 3)),
           1e-15);
  // Both limits: the schedule spans the longer (15 steps); training would stop after 7 at ys[6] = 0.43.
  check_ys("LinSched(0, 1)", 7, 5, 3, ramp(15), 1e-15);
  CHECK(Schedule::parse("LinSched(0, 1)").prep(7, 5, 3)[6] == doctest::Approx(0.43).epsilon(0.01));
  check_ys("LinSched(0, 1)", 20, 2, 3, ramp(20), 1e-15);
  check_ys("LinSched(0, 1)", 7, -1, 3, ramp(7), 1e-15);
}

TEST_CASE("Schedule: endpoints are exact") {
  for (int n : {2, 3, 7, 1000}) {
    CAPTURE(n);
    for (const char* e :
         {"LinSched(0.1, 0.7)", "CosSched(0.996, 1.0)", "ExpSched(0.3, 0.007)", "CosSched(5e-4, 1e-6)"}) {
      CAPTURE(e);
      Schedule s = Schedule::parse(e);
      const auto& ys = s.prep(n, -1, 1);
      const auto& num = s.node().numbers;
      CHECK(ys.front() == num[0].f);
      CHECK(ys.back() == num[1].f);
    }
  }
  CHECK(Schedule::parse("LinSched(0.1, 0.7)").prep(1, -1, 1) == std::vector<double>{0.1});  // n = 1 -> [lo]
  CHECK(Schedule::parse("LinSched(0.1, 0.7)").prep(0, 0, 4).empty());
  // A NaN argument makes the formula NaN everywhere, endpoints included, as in the testbed.
  for (double v : Schedule::parse("LinSched(0, nan)").prep(4, -1, 1)) CHECK(std::isnan(v));
}

TEST_CASE("Schedule: CIFAR10 default learning rate and weight decay") {
  // spe = ceil(50000 / 64) = 782, 100 epochs.
  Schedule lr = Schedule::parse("CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)");
  const auto& ys = lr.prep(-1, 100, 782);
  REQUIRE(ys.size() == 78200u);
  CHECK(ys[0] == 0.0);
  CHECK(ys[1] == doctest::Approx(6.3947e-8).epsilon(1e-4));
  CHECK(ys[7819] == 5e-4);
  CHECK(ys[7820] == 5e-4);
  CHECK(ys[43010] == doctest::Approx(2.505e-4).epsilon(1e-3));
  CHECK(ys[78199] == 1e-6);
  CHECK(lr.value(78199) == 1e-6);
  CHECK(lr.str() == "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)");
  Schedule wd = Schedule::parse("CosSched(0.04, 0.4)");
  const auto& w = wd.prep(-1, 100, 782);
  CHECK(w.front() == 0.04);
  CHECK(w[39100] == doctest::Approx(0.22).epsilon(1e-4));
  CHECK(w.back() == 0.4);
}

TEST_CASE("Schedule: str() is the testbed's repr and a fixed point") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"LinSched(0, 5e-4)", "LinSched(0.0, 0.0005)"},
      {"CatSched(LinSched(0, 5e-4), CosSched(5e-4, 1e-6), 2)",
       "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 2)"},
      {"CatSched(LinSched(0, 1), 1, 0.3)", "CatSched(LinSched(0.0, 1.0), ConstSched(1.0), 0.3)"},
      {"CatSched(LinSched(0, 1), 1, 2.0)", "CatSched(LinSched(0.0, 1.0), ConstSched(1.0), 2.0)"},
      {"LinWarmup(0.04, 0.04, 0)", "LinWarmup(0.04, 0.04, 0)"},
      {"ExpWarmup(1e-3, 1e-1, 1)", "ExpWarmup(0.001, 0.1, 1)"},
      {"CosWarmup(0, 1, 0.25)", "CosWarmup(0.0, 1.0, 0.25)"},
      {"MultiStep(0.1, 0.1, 2, 0.8)", "MultiStep(0.1, 0.1, 2, 0.8)"},
      {"MultiStep(1, 0.5)", "MultiStep(1.0, 0.5)"},
      {"ConstSched(0.9)", "ConstSched(0.9)"},
      {"CosSched(0.996, 1)", "CosSched(0.996, 1.0)"},
      {"ExpSched(1, 0.01)", "ExpSched(1.0, 0.01)"},
      {"nan", "ConstSched(nan)"},
      {"'None'", "ConstSched(nan)"},
      {"\"NaN\"", "ConstSched(nan)"},
      {"none", "ConstSched(nan)"},
      {"10", "ConstSched(10.0)"},
      {"0.001", "ConstSched(0.001)"},
      {"CatSched(None, 1e16, 1)", "CatSched(ConstSched(nan), ConstSched(1e+16), 1)"},
      {"  LinSched ( 0 ,\n 1 , ) ", "LinSched(0.0, 1.0)"},
      {"MultiStep(1, 1, 10, 10.0, .5, 5e-4, 1E3, 0., 0x1f, 1_000, 0o17, 0b11, 00)",
       "MultiStep(1.0, 1.0, 10, 10.0, 0.5, 0.0005, 1000.0, 0.0, 31, 1000, 15, 3, 0)"},
  };
  for (const auto& [in, out] : cases) {
    CAPTURE(in);
    const Schedule s = Schedule::parse(in);
    CHECK(s.str() == out);
    CHECK(Schedule::parse(s.str()).str() == out);
  }
  // The defaults of spec §17 are already canonical.
  for (const char* d : {"CosSched(0.996, 1.0)", "ConstSched(0.9)", "ConstSched(nan)", "LinWarmup(0.04, 0.04, 0)",
                        "ConstSched(0.1)", "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)",
                        "CosSched(0.04, 0.4)"})
    CHECK(Schedule::parse(d).str() == d);
  CHECK(Schedule::constant(0.001).str() == "ConstSched(0.001)");
  CHECK(Schedule::constant(5).str() == "ConstSched(5.0)");
  CHECK(Schedule().str() == "ConstSched(nan)");
  CHECK(Schedule::parse("ConstSched(3)").kind() == ScheduleKind::Const);
}

TEST_CASE("Schedule: int vs float arguments") {
  // int where = epochs, float where = fraction of the steps.
  check_ys("CatSched(0, 1, 2)", -1, 5, 3, cat(repeat(0, 6), repeat(1, 9)), 0.0);
  check_ys("CatSched(0, 1, 2.0)", -1, 5, 3, repeat(0, 30), 0.0);  // round(2.0 * 15) = 30 > 15: no right side
  check_ys("CatSched(0, 1, 0.2)", -1, 5, 3, cat(repeat(0, 3), repeat(1, 12)), 0.0);
  check_ys("CatSched(0, 1, 4)", -1, 2, 3, repeat(0, 12), 0.0);  // where > n_epochs: longer than n_steps
  // round(3.5) = 4 and round(2.5) = 2: half to even.
  check_ys("CatSched(0, 1, 0.5)", 7, -1, 1, cat(repeat(0, 4), repeat(1, 3)), 0.0);
  check_ys("CatSched(0, 1, 0.5)", 5, -1, 1, cat(repeat(0, 2), repeat(1, 3)), 0.0);
  // A float split gives 4 steps to the left; it resolves to ceil(4/3) = 2 epochs, so its int split fills 6.
  check_ys("CatSched(CatSched(0, 1, 1), 2, 0.5)", -1, 3, 3, cat(cat(repeat(0, 3), repeat(1, 3)), repeat(2, 5)), 0.0);
  // MultiStep: int milestone = epoch * spe, float = int(f * n_steps).
  check_ys("MultiStep(1, 0.5, 1)", -1, 2, 3, cat(repeat(1, 3), repeat(0.5, 3)), 0.0);
  check_ys("MultiStep(1, 0.5, 1.0)", -1, 2, 3, repeat(1, 6), 0.0);
  check_ys("MultiStep(1, 0.5, 0.49)", -1, 2, 3, cat(repeat(1, 2), repeat(0.5, 4)), 0.0);  // int(2.94) = 2
  // A milestone below the previous one assigns nothing and moves the start back (Python slices).
  check_ys("MultiStep(1, 0.5, 3, 1)", -1, 2, 2, cat(repeat(1, 2), repeat(0.25, 2)), 0.0);
  check_ys("MultiStep(1, 0.5, 0, 100, 1e300)", -1, 2, 2, repeat(0.5, 4), 0.0);
  const ScheduleNode n = Schedule::parse("LinWarmup(1, 2, 3)").node();
  CHECK(!n.numbers[0].is_int);  // float() applied, as the testbed's constructors do
  CHECK(n.numbers[2].is_int);
  CHECK(n.numbers[2].i == 3);
}

TEST_CASE("Schedule: malformed expressions name the position") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"LinSched(0, -1)", "unexpected '-' at position 12"},
      {"", "empty expression at position 0"},
      {"   ", "empty expression at position 3"},
      {"LinSched(0, y_end=1)", "keyword argument 'y_end=' is not supported at position 17"},
      {"LinSched(0, 1+1)", "unexpected '+' at position 13"},
      {"LinSched(0, 2*1)", "unexpected '*' at position 13"},
      {"LinSched(0, 1) + 1", "unexpected '+' at position 15"},
      {"FooSched(0, 1)", "unknown schedule 'FooSched' at position 0"},
      {"LinSched(0, inf)", "unknown name 'inf' at position 12"},
      {"True", "unknown name 'True' at position 0"},
      {"LinSched(0, 1, 2)", "LinSched takes 2 arguments (y_start, y_end) but got 3 at position 15"},
      {"LinSched(0)", "LinSched takes 2 arguments (y_start, y_end) but got 1 at position 10"},
      {"ConstSched()", "ConstSched takes 1 argument (val) but got 0 at position 11"},
      {"MultiStep(1)", "MultiStep takes at least 2 arguments (start, gamma, *steps) but got 1 at position 11"},
      {"LinSched(0, 1) x", "unexpected 'x' at position 15"},
      {"LinSched(0, 1))", "unexpected ')' at position 14"},
      {"LinSched(0, 1", "unexpected end of input at position 13"},
      {"LinSched(0 1)", "unexpected '1' at position 11"},
      {"LinSched(0,,1)", "unexpected ',' at position 11"},
      {"LinSched", "expected '(' after LinSched at position 8"},
      {"LinSched(0, 01)", "invalid number '01' at position 12"},
      {"LinSched(0, 1e)", "invalid number '1e' at position 12"},
      {"LinSched(0, 1__0)", "invalid number '1__0' at position 12"},
      {"LinSched(0, 1.5.2)", "invalid number '1.5.2' at position 12"},
      {"LinSched(0, 5j)", "invalid number '5j' at position 12"},
      {"LinSched(0, 1e999)", "number '1e999' overflows a float at position 12"},
      {"CatSched(0, 1, 9223372036854775808)", "integer '9223372036854775808' is too large at position 15"},
      {"LinSched(0, 'foo')", "unknown constant 'foo' at position 12"},
      {"LinSched(0, 'nan)", "unterminated string at position 12"},
      {"(1)", "unexpected '(' at position 0"},
      {"ExpSched(0, 1)", "ExpSched: 'y_start' must be > 0 (geometric schedule), got 0.0 at position 9"},
      {"ExpWarmup(1, nan, 2)", "ExpWarmup: 'y_end' must be > 0 (geometric schedule), got nan at position 13"},
      {"CatSched(0, 1, LinSched(0, 1))", "CatSched: 'where' must be an int (epochs) or a float (fraction of the "
                                         "steps), got a schedule at position 15"},
      {"LinWarmup(0, 1, None)", "got nan at position 16"},
      {"MultiStep(1, 0.5, 2, nan)", "MultiStep: milestone 2 must be an int (epochs) or a float (fraction of the "
                                    "steps), got nan at position 21"},
      {"LinSched(ConstSched(1), 2)", "LinSched: 'y_start' must be a number, got a schedule at position 9"},
      {"nan(1)", "unknown schedule 'nan' at position 0"},
      {"LinSched(0,\n-1)", "unexpected '-' at position 12"},
      {"LinSched(0, \x01)", "unexpected '\\x01' at position 12"},
  };
  for (const auto& [expr, want] : cases) {
    CAPTURE(expr);
    const std::string msg = parse_error(expr);
    CAPTURE(msg);
    CHECK(msg.rfind("invalid schedule '", 0) == 0);
    CHECK(msg.find(want) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);  // one line, also when the expression holds newlines
  }
  CHECK(parse_error("LinSched(0, -1)") ==
        "invalid schedule 'LinSched(0, -1)': unexpected '-' at position 12 (negative numbers and arithmetic are not "
        "supported)");
  CHECK(parse_error("LinSched(0,\n-1)") ==
        "invalid schedule 'LinSched(0, -1)': unexpected '-' at position 12 (negative numbers and arithmetic are not "
        "supported)");
  CHECK_THROWS_AS(Schedule::parse("LinSched(0, -1)"), Error);
  std::string deep = "1";
  for (int i = 0; i < 101; ++i) deep = "CatSched(0, " + deep + ", 1)";  // the 101st call opens at 100 * 12
  CHECK(parse_error(deep).find("nested more than 100 deep at position 1200") != std::string::npos);
}

TEST_CASE("Schedule: prep and value errors") {
  Schedule s = Schedule::parse("CosSched(0.996, 1)");
  CHECK_THROWS_WITH_AS(s.value(0), "schedule CosSched(0.996, 1.0) has no values yet: call prep() before value(0)",
                       Error);
  CHECK_THROWS_AS(s.prep(-1, -1, 5), Error);
  CHECK_THROWS_AS(s.prep(10, -1, 0), Error);
  s.prep(-1, 1, 5);
  CHECK(s.prepared());
  CHECK(s.size() == 5);
  CHECK(s.value(4) == 1.0);
  CHECK_THROWS_WITH_AS(s.value(5), "schedule CosSched(0.996, 1.0) has no value for step 5: it holds 5 steps (0 to 4)",
                       Error);
  CHECK_THROWS_AS(s.value(-1), Error);
  CHECK_THROWS_AS(Schedule::parse("CatSched(0, 1, 3000000000)").prep(-1, 1, 1), Error);  // too long
  CHECK_THROWS_AS(Schedule::parse("LinSched(0, 1)").prep(1, 3000000, 1000), Error);
}

TEST_CASE("python_float_repr matches Python's repr(float)") {
  const std::vector<std::pair<double, std::string>> cases = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.0, "1.0"},
      {5e-4, "0.0005"},
      {1e-6, "1e-06"},
      {0.0001, "0.0001"},
      {1e-05, "1e-05"},
      {1e16, "1e+16"},
      {1e15, "1000000000000000.0"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {0.1, "0.1"},
      {0.996, "0.996"},
      {1.0 / 3.0, "0.3333333333333333"},
      {2.5e-7, "2.5e-07"},
      {1e22, "1e+22"},
      {1.5e300, "1.5e+300"},
      {5e-324, "5e-324"},
      {9999999999999998.0, "9999999999999998.0"},
      {1234.5, "1234.5"},
      {100.0, "100.0"},
      {-2.5, "-2.5"},
      {3.0000000000000004e-05, "3.0000000000000004e-05"},
      {std::nan(""), "nan"},
      {HUGE_VAL, "inf"},
      {-HUGE_VAL, "-inf"},
  };
  for (const auto& [v, want] : cases) CHECK(python_float_repr(v) == want);
  // Shortest round trip over many magnitudes, positional exactly in [1e-4, 1e16).
  std::uint64_t state = 12345;
  for (int i = 0; i < 20000; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const double v = std::ldexp(static_cast<double>(state >> 11) / 9007199254740992.0 + 0.5, int(state % 140) - 70);
    const std::string r = python_float_repr(v);
    CAPTURE(r);
    double back = 0;
    std::from_chars(r.data(), r.data() + r.size(), back);
    CHECK(back == v);
    CHECK((r.find('e') == std::string::npos) == (v >= 1e-4 && v < 1e16));
    CHECK(Schedule::parse(r).prep(1, -1, 1)[0] == v);
  }
}
