/*===- moe_runtime.h - the moe runtime's C ABI ------------------*- C -*-===*\
|*                                                                          *|
|* Plain C, no LLVM. Loads layers compiled ahead of time by moe-compile     *|
|* (a shared object), checks the caller's tensors against the layer's       *|
|* signature, runs it, and reports errors with messages. Also provides the  *|
|* allocator the compiled code uses for its temporaries (reused across      *|
|* calls instead of going back to malloc).                                  *|
|*                                                                          *|
|* The compiler's run-time checks use the same status codes.                *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#include "moe_status_codes.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A human-readable message for a status code. */
const char *moe_status_message(int status);

/* The detailed message of the last failed call on this thread (names the
 * argument and what was expected); "" when the last call succeeded. */
const char *moe_last_error(void);

/* BF16 and F16 data are the raw 16-bit patterns (uint16_t per element). */
typedef enum moe_dtype {
  MOE_F32 = 0,
  MOE_I32 = 1,
  MOE_I64 = 2,
  MOE_BF16 = 3,
  MOE_F16 = 4,
  /* Bytes: int8 weights, and the blocks of the Q8_0/Q4_0 formats. */
  MOE_I8 = 5
} moe_dtype;

/* A dense, C-contiguous (row-major) tensor owned by the caller. */
typedef struct moe_tensor {
  void *data;
  moe_dtype dtype;
  int32_t rank;
  const int64_t *shape;
} moe_tensor;

typedef struct moe_layer moe_layer;

/* Loads `entry` (e.g. "main") from a shared object made by
 * `moe-compile -o layer.so`. On success *out is the layer; on error *out is
 * NULL and moe_last_error() says why. */
int moe_layer_open(const char *path, const char *entry, moe_layer **out);
void moe_layer_close(moe_layer *layer);

/* The layer's signature: counts, and per argument/result the rank, the
 * element type and the shape (-1 = the token count T, given at run time). */
int moe_layer_num_args(const moe_layer *layer);
int moe_layer_num_results(const moe_layer *layer);
int moe_layer_arg(const moe_layer *layer, int index, moe_dtype *dtype,
                  int32_t *rank, const int64_t **shape);
int moe_layer_result(const moe_layer *layer, int index, moe_dtype *dtype,
                     int32_t *rank, const int64_t **shape);

/* Runs the layer. Every argument and result tensor is checked first (count,
 * element type, rank, static dims; every dynamic dim is T and must agree);
 * results must be allocated by the caller with the result shapes for that
 * T. On any error, nothing is written to the results. */
int moe_layer_run(moe_layer *layer, const moe_tensor *args, int num_args,
                  moe_tensor *results, int num_results);

/* Lower level, shared by moe_layer_run and the compiler's JIT path: a
 * signature parsed from its text form ("f32 2 -1 64;i32 2 -1 2|f32 2 -1 64":
 * per tensor the dtype, the rank and the dims, -1 for T; arguments, then
 * '|', then results), and a call through a packed entry point
 * (args[i] points to the i-th memref descriptor pointer, the last entry to
 * the int32 status), with every check of moe_layer_run. `name` is used in
 * messages. */
typedef struct moe_signature moe_signature;
typedef void (*moe_packed_fn)(void **args);
moe_signature *moe_signature_parse(const char *text);
void moe_signature_free(moe_signature *sig);
int moe_run_packed(moe_packed_fn fn, const moe_signature *sig, const char *name,
                   const moe_tensor *args, int num_args, moe_tensor *results,
                   int num_results);

/* Prepared layers: the weights bound once, packed by the compiled
 * `<entry>_prepare` into the layout the kernels read (moe-compile exports
 * `<entry>_prepare` and `<entry>_run` next to `<entry>`; see
 * moe-hoist-weight-packing). The weights are the entry's arguments of
 * static shape, in their order; the activations are the others, in theirs.
 *
 * moe_layer_prepare checks every weight once (the messages of
 * moe_layer_run), allocates the packed buffers (64-byte aligned, huge pages
 * advised for large ones) and fills them; the caller's weights are not
 * referenced afterwards. moe_prepared_run checks only the activations and
 * results, then runs. Several threads may run one prepared layer at once: it
 * is read-only after moe_layer_prepare (every call has its own descriptors
 * and scratch). Free it before closing its layer. */
typedef struct moe_prepared moe_prepared;
/* The number of weights of the layer's prepared form; -1 when the shared
 * object has no prepared entries (or `layer` is null). */
int moe_layer_num_weights(const moe_layer *layer);
int moe_layer_prepare(moe_layer *layer, const moe_tensor *weights, int num_weights,
                      moe_prepared **out);
int moe_prepared_run(moe_prepared *prepared, const moe_tensor *activations,
                     int num_activations, moe_tensor *results, int num_results);
void moe_prepared_free(moe_prepared *prepared);
/* Bytes of packed weight memory it owns (0 for null). */
uint64_t moe_prepared_bytes(const moe_prepared *prepared);
/* Seconds moe_layer_prepare took (allocation + packing). */
double moe_prepared_seconds(const moe_prepared *prepared);
/* Lower level, shared by moe_layer_prepare and the compiler's JIT path:
 * the prepare and run entry points with their signatures (the run
 * signature's arguments are the activations, then one per prepare
 * result). The signatures are copied; `run` must outlive the result. */
int moe_prepare_packed(moe_packed_fn prepare, const moe_signature *prepare_sig,
                       moe_packed_fn run, const moe_signature *run_sig, const char *name,
                       const moe_tensor *weights, int num_weights, moe_prepared **out);

/* Routing statistics (docs/routing-stats.md). A layer compiled with the
 * CPU pipeline's `stats` option (moe-compile --stats, moe-run --stats,
 * moec.compile(..., stats=True)) counts, in every call, what each of its
 * moe.layer ops did; after a successful call (moe_layer_run,
 * moe_prepared_run, the JIT path) moe_last_stats_count() says how many
 * layers that call recorded on this thread (0: compiled without stats, or
 * the last call failed) and moe_last_stats(i, &s) fills s for layer i (in
 * the function's pre-order). The arrays point into this thread's copy,
 * valid until its next layer call. */
typedef struct moe_layer_stats {
  int32_t layer;                    /* its index among the function's moe.layer ops */
  int32_t line;                     /* its source line (0: unknown) */
  int32_t num_experts;              /* E: the routed experts of its table */
  int32_t k;                        /* K: slots per token */
  int64_t tokens;                   /* T of the call (before any skip) */
  int64_t tokens_routed;            /* tokens the layer ran on */
  int64_t tokens_skipped;           /* tokens - tokens_routed */
  int64_t routed_pairs;             /* (token, slot) pairs with a valid expert id */
  int64_t dropped_pairs;            /* pairs its capacity op dropped; -1: no capacity op */
  const int64_t *tokens_per_expert; /* [num_experts]: rows routed to each expert */
  const int64_t *slots_per_token;   /* [k + 1]: tokens that ran j = 0..k valid slots */
  const int64_t *expert_flops;      /* [num_experts]: FLOPs of one row through each */
  int64_t shared_flops;             /* FLOPs of one token through the shared experts */
  double flops;                     /* expert FLOPs of this call */
  double flops_full;                /* the same with every token of the call in all K
                                       slots of its most expensive expert */
  double flops_saved_fraction;      /* 1 - flops / flops_full (0 when flops_full is 0) */
} moe_layer_stats;
int moe_last_stats_count(void);
int moe_last_stats(int index, moe_layer_stats *out);
/* Called by compiled code (moe-record-routing-stats) before it returns, on
 * the caller's thread: keeps a copy of the `count` int64 counters at
 * `address` for moe_last_stats. */
void moe_rt_record_stats(int64_t address, int64_t count);

/* The thread pool compiled layers run their parallel loops on, the calling
 * thread included: MOE_NUM_THREADS threads when set, else as many as the
 * CPUs this process may use (its affinity mask, capped by the cgroup CPU
 * quota). A loop never waits for a worker that has not started: the caller
 * claims the remaining items itself. Workers spin briefly between loops
 * unless the machine is oversubscribed (MOE_POOL_SPIN=always|never
 * overrides). Several threads may run layers at once: the pool serves one
 * loop at a time, and a loop posted while it is busy runs on its caller's
 * thread alone. */
int moe_get_num_threads(void);
/* Resizes the pool; not to be called while a layer runs. */
int moe_set_num_threads(int threads);
/* Runs fn(ctx, i, i + 1) for every i in [0, n) on the pool, iterations
 * claimed one at a time (dynamic schedule); returns when all are done.
 * Called by compiled code. */
typedef void (*moe_parallel_body)(void *ctx, int64_t begin, int64_t end);
void moe_rt_parallel_for(int64_t n, moe_parallel_body fn, void *ctx);

/* What the pool has done since the process started (counters only grow;
 * moe_set_num_threads keeps them). */
typedef struct moe_thread_pool_stats {
  int threads;                /* pool size, the calling thread included */
  int spinning;               /* 1 if idle workers spin now, 0 if they sleep
                                 (the machine looked oversubscribed) */
  uint64_t loops;             /* loops shared with the workers */
  uint64_t loops_inline;      /* loops run by their caller alone: one item,
                                 one thread, pool busy or nested */
  uint64_t items_by_callers;  /* items of shared loops run by their caller */
  uint64_t items_by_workers;  /* items of shared loops run by workers */
  uint64_t worker_wakeups;    /* loops that had to wake sleeping workers */
} moe_thread_pool_stats;
moe_thread_pool_stats moe_get_thread_pool_stats(void);

/* Scratch memory statistics of this thread's allocator: bytes obtained from
 * malloc, and allocations served from memory kept from earlier calls. */
typedef struct moe_scratch_stats {
  uint64_t bytes_from_system;
  uint64_t allocations;
  uint64_t allocations_reused;
} moe_scratch_stats;
moe_scratch_stats moe_scratch_get_stats(void);
/* Returns the cached scratch blocks of this thread to the system. */
void moe_scratch_release(void);

/* The allocator compiled code calls for its temporaries (the memref-to-LLVM
 * "generic functions"): freed blocks are kept per thread, by size, and
 * handed out again, so steady-state calls do not touch malloc. */
void *_mlir_memref_to_llvm_alloc(size_t size);
void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size);
void _mlir_memref_to_llvm_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_H */
