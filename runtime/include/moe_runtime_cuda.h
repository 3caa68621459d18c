/*===- moe_runtime_cuda.h - the moe runtime's GPU (CUDA) C ABI ---*- C -*-===*\
|*                                                                          *|
|* Runs layers compiled by `moe-compile --target=nvptx`: a PTX module and a *|
|* launch description (docs/gpu-launch.md). The CUDA driver is loaded at    *|
|* run time (dlopen of libcuda.so.1, or $MOE_LIBCUDA), so nothing here      *|
|* needs CUDA to build; on a machine without a driver or a GPU every entry  *|
|* point returns MOE_ERR_DEVICE with a message saying so.                   *|
|*                                                                          *|
|* Errors use the status codes of moe_runtime.h and moe_last_error();       *|
|* driver failures name the call, what it was doing, and the driver's error *|
|* name and string. The device is MOE_CUDA_DEVICE (an ordinal), default 0.  *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_CUDA_H
#define MOE_RUNTIME_CUDA_H

#include "moe_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the driver loads, initializes and has at least one device; else 0
 * and moe_last_error() says why. */
int moe_cuda_available(void);

/* Parses a launch description without touching a GPU: MOE_OK, or
 * MOE_ERR_LOAD with the line number and what was expected. */
int moe_gpu_launch_check(const char *launch_path);

typedef struct moe_gpu_layer moe_gpu_layer;

/* Reads and checks the launch description, then the PTX, then loads the
 * module on the device and resolves every kernel it names. The description
 * is checked before the driver is needed, so a malformed one is MOE_ERR_LOAD
 * on any machine. On error *out is NULL. */
int moe_gpu_layer_open(const char *ptx_path, const char *launch_path, moe_gpu_layer **out);
/* Frees the layer's device buffers, stream and module. NULL is a no-op. */
void moe_gpu_layer_close(moe_gpu_layer *layer);

/* The signature, as for moe_layer_*: inputs are the description's `arg ...
 * in` lines, results its `arg ... out` lines (-1 in a shape = T). */
int moe_gpu_layer_num_args(const moe_gpu_layer *layer);
int moe_gpu_layer_num_results(const moe_gpu_layer *layer);
int moe_gpu_layer_arg(const moe_gpu_layer *layer, int index, moe_dtype *dtype, int32_t *rank,
                      const int64_t **shape);
int moe_gpu_layer_result(const moe_gpu_layer *layer, int index, moe_dtype *dtype,
                         int32_t *rank, const int64_t **shape);
/* The names of the description's `arg` lines (NULL for a bad index). */
const char *moe_gpu_layer_arg_name(const moe_gpu_layer *layer, int index);
const char *moe_gpu_layer_result_name(const moe_gpu_layer *layer, int index);
/* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" for the layer's device. */
const char *moe_gpu_layer_device(const moe_gpu_layer *layer);

/* Runs the layer on host tensors, with every check of moe_layer_run: copies
 * the inputs to the device, zero-fills the scratch buffers, launches every
 * kernel in order on the layer's stream (grids computed from T; a kernel
 * whose grid is empty for this T is skipped), waits, and
 * copies the results back. On any error, nothing is written to the results.
 * Device buffers are kept and reused across calls (grown when T grows), so
 * a layer runs one call at a time: do not use one layer from two threads at
 * once (open one layer per thread). */
int moe_gpu_layer_run(moe_gpu_layer *layer, const moe_tensor *args, int num_args,
                      moe_tensor *results, int num_results);

/* Lower level, for callers that manage device memory (and for CUDA-graph
 * capture): `buffers` holds one device pointer (CUdeviceptr) per `arg` line
 * of the description, inputs then outputs, each sized for `tokens`.
 * Zero-fills the scratch buffers and enqueues every kernel on `stream` (a
 * CUstream; NULL = the layer's own stream) and returns without waiting.
 * Scratch is owned by the layer; call moe_gpu_layer_reserve first so that a
 * launch being captured into a graph allocates nothing. A captured graph is
 * for that one T (grids and the T parameter are baked in). The scratch is
 * shared by every launch of the layer: launches on different streams must
 * not overlap. */
int moe_gpu_layer_launch(moe_gpu_layer *layer, int64_t tokens, const uint64_t *buffers,
                         int num_buffers, void *stream);
/* Allocates the scratch buffers for every T up to max_tokens. */
int moe_gpu_layer_reserve(moe_gpu_layer *layer, int64_t max_tokens);
/* The layer's own stream (a CUstream), and waiting for it. */
void *moe_gpu_layer_stream(const moe_gpu_layer *layer);
int moe_gpu_layer_synchronize(moe_gpu_layer *layer);

/* Device memory on the layer's device, for the caller of
 * moe_gpu_layer_launch (copies are synchronous). */
int moe_gpu_alloc(moe_gpu_layer *layer, size_t bytes, uint64_t *device_ptr);
int moe_gpu_free(moe_gpu_layer *layer, uint64_t device_ptr);
int moe_gpu_copy_to_device(moe_gpu_layer *layer, uint64_t device_dst, const void *host_src,
                           size_t bytes);
int moe_gpu_copy_to_host(moe_gpu_layer *layer, void *host_dst, uint64_t device_src,
                         size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_CUDA_H */
