//===- QuantBindings.h - moec's quantizers and safetensors I/O --*- C++ -*-===//
#ifndef MOEC_QUANT_BINDINGS_H
#define MOEC_QUANT_BINDINGS_H

#include <pybind11/pybind11.h>

/// Adds quantize, dequantize, load_safetensors and save_safetensors to the
/// _moec module (QuantBindings.cpp).
void bindQuantization(pybind11::module_ &m);

#endif // MOEC_QUANT_BINDINGS_H
