// The parity fixtures themselves: both precisions hold the same cases and tensors, every tensor has a known
// role, every case has what check_case reads, and every case's kind is handled by a compiled parity test.
#include "parity.hpp"

namespace dino::parity {
namespace {

TEST_CASE("parity: every fixture case is exercised and complete") {
  const io::Safetensors& f64 = fixture<double>();
  const io::Safetensors& f32 = fixture<float>();
  CHECK(f64.metadata.at("dtype") == "F64");
  CHECK(f32.metadata.at("dtype") == "F32");
  CHECK(f64.metadata.at("cases") == f32.metadata.at("cases"));
  CHECK(f64.names() == f32.names());

  const std::vector<Case> cases = all_cases(f64);
  REQUIRE(!cases.empty());
  std::set<std::string> expected;
  for (const Case& c : cases) {
    INFO("case ", c.name);
    CHECK_MESSAGE(registered_kinds().count(c.kind()) == 1, "no compiled parity test handles kind ", c.kind());
    for (const char* t : {"x", "dy", "y", "dx"}) expected.insert(c.name + "/" + t);
    for (const auto& n : c.options.at("parameters")) {
      expected.insert(c.name + "/param/" + n.get<std::string>());
      expected.insert(c.name + "/grad/" + n.get<std::string>());
    }
    for (const auto& n : c.options.at("buffers")) {
      expected.insert(c.name + "/param/" + n.get<std::string>());
      expected.insert(c.name + "/buffer_after/" + n.get<std::string>());
    }
  }
  // No tensor that no test reads, none missing.
  const auto names = f64.names();
  CHECK(std::set<std::string>(names.begin(), names.end()) == expected);
  for (const auto& n : names) {
    INFO("tensor ", n);
    const io::DType d64 = f64.at(n).dtype, d32 = f32.at(n).dtype;
    CHECK((d64 == io::DType::F64 || d64 == io::DType::I64));
    CHECK((d64 == io::DType::I64 ? d32 == io::DType::I64 : d32 == io::DType::F32));
    CHECK(f64.at(n).shape == f32.at(n).shape);
  }
}

}  // namespace
}  // namespace dino::parity
