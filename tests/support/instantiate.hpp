// Explicit instantiation of every class template for both scalar types on one backend (DESIGN: CI compiles
// every member for double and for Cuda, also the members no test calls). The including file defines
// DINO_TEST_BACKEND; the list grows with the library.
#pragma once
#include "dino/probe/prober.hpp"
#include "dino/train/run.hpp"
#include "dino/train/step.hpp"

#define DINO_INSTANTIATE_ALL(T, B)                \
  template class dino::Tensor<T, B>;              \
  template class dino::NamedStore<T, B>;          \
  template struct dino::ModelState<T, B>;         \
  template struct dino::Saved<T, B>;              \
  template class dino::Linear<T, B>;              \
  template class dino::Conv2d<T, B>;              \
  template class dino::BatchNorm<T, B>;           \
  template class dino::BatchNorm1d<T, B>;         \
  template class dino::BatchNorm2d<T, B>;         \
  template class dino::GroupNorm<T, B>;           \
  template class dino::ReLU<T, B>;                \
  template class dino::GELU<T, B>;                \
  template class dino::MaxPool2d<T, B>;           \
  template class dino::AvgPool2d<T, B>;           \
  template class dino::AdaptiveAvgPool2d<T, B>;   \
  template class dino::Identity<T, B>;            \
  template class dino::Flatten<T, B>;             \
  template class dino::L2Normalize<T, B>;         \
  template class dino::Sequential<T, B>;          \
  template class dino::Residual<T, B>;            \
  template class dino::Encoder<T, B>;             \
  template class dino::MLP<T, B>;                 \
  template class dino::L2Bottleneck<T, B>;        \
  template class dino::DinoHead<T, B>;            \
  template class dino::MulticropLoss<T, B>;       \
  template class dino::Optimizer<T, B>;           \
  template class dino::DinoModel<T, B>;           \
  template class dino::DinoTrainer<T, B>;         \
  template class dino::GradVarTracker<T, B>;      \
  template class dino::ParamTracker<T, B>;        \
  template class dino::CropAveragedArgmax<T, B>;  \
  template class dino::RunTrackers<T, B>;         \
  template class dino::TrainingRun<T, B>;         \
  template class dino::probe::LinearProbe<T, B>;

DINO_INSTANTIATE_ALL(float, DINO_TEST_BACKEND)
DINO_INSTANTIATE_ALL(double, DINO_TEST_BACKEND)
