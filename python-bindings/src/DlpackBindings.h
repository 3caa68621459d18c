//===- DlpackBindings.h - DLPack tensors as writable numpy views -*- C++ -*-===//
#ifndef MOEC_DLPACK_BINDINGS_H
#define MOEC_DLPACK_BINDINGS_H

#include <pybind11/pybind11.h>

/// Adds array_from_dlpack to the _moec module (DlpackBindings.cpp).
void bindDlpack(pybind11::module_ &m);

#endif // MOEC_DLPACK_BINDINGS_H
