// The backend-independent library: tensors, parameter stores and every layer. Include <dino/cpu.hpp> or
// <dino/cuda.hpp> instead of this header: they define the backend and include it.
#pragma once
#include "dino/core/backend.hpp"
#include "dino/core/context.hpp"
#include "dino/core/error.hpp"
#include "dino/core/math.hpp"
#include "dino/core/module.hpp"
#include "dino/core/params.hpp"
#include "dino/core/random.hpp"
#include "dino/core/saved.hpp"
#include "dino/core/shape.hpp"
#include "dino/core/tensor.hpp"
#include "dino/layers/activations.hpp"
#include "dino/layers/linear.hpp"
#include "dino/layers/reshape.hpp"
#include "dino/layers/sequential.hpp"
