/*===- moe_runtime.h - the moe runtime's C ABI ------------------*- C -*-===*\
|*                                                                          *|
|* Status codes returned by compiled layers and the runtime. Plain C, no    *|
|* LLVM: the compiler's lowering uses the same numbers for its checks.      *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#ifdef __cplusplus
extern "C" {
#endif

enum moe_status {
  MOE_OK = 0,
  /* An expert id outside [-1, E) in a routing given to a layer. */
  MOE_ERR_EXPERT_ID = 1,
  /* A router logit (or skip score) is NaN or infinite. */
  MOE_ERR_NONFINITE_SCORE = 2,
  /* A path id outside [0, P] given to moe.path_select. */
  MOE_ERR_PATH_ID = 3,
  /* A buffer's shape or element type does not match the function. */
  MOE_ERR_SHAPE = 4,
  /* Any other misuse of the API (null pointers, wrong counts). */
  MOE_ERR_INVALID_ARGUMENT = 5,
};

/* A human-readable message for a status code. */
const char *moe_status_message(int status);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_H */
