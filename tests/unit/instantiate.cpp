// Every class template instantiated for float and double on the CPU backend.
#include <dino/cpu.hpp>
#define DINO_TEST_BACKEND dino::Cpu
#include "../support/instantiate.hpp"

// The data loader is host-side: one instantiation per scalar type.
#include "dino/data/loader.hpp"
template class dino::Loader<float>;
template class dino::Loader<double>;
