/*===- moe_status_codes.h - the status codes of the moe ABI -----*- C -*-===*\
|*                                                                          *|
|* The codes the runtime's C API returns and the compiled code records for  *|
|* its run-time checks (a bad expert id, a non-finite score). Kept apart    *|
|* from moe_runtime.h so that the compiler, which emits these codes but     *|
|* calls nothing of the runtime, sees only this header: the build gives the *|
|* conversion libraries this file's directory, not the runtime's API.       *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_STATUS_CODES_H
#define MOE_STATUS_CODES_H

enum moe_status {
  MOE_OK = 0,
  /* An expert id outside [-1, E) in a routing given to a layer. */
  MOE_ERR_EXPERT_ID = 1,
  /* A router logit (or skip score) is NaN or infinite. */
  MOE_ERR_NONFINITE_SCORE = 2,
  /* A path id given to moe.path_select is outside [0, P]. */
  MOE_ERR_PATH_ID = 3,
  /* A tensor's shape or element type does not match the layer. */
  MOE_ERR_SHAPE = 4,
  /* Any other misuse of the API (null pointers, wrong counts). */
  MOE_ERR_INVALID_ARGUMENT = 5,
  /* The layer could not be loaded: a shared object that is not a moe layer,
   * or (GPU) an unreadable PTX file or a malformed launch description. */
  MOE_ERR_LOAD = 6,
  /* GPU path: no CUDA driver, no device, or a driver call failed (the
   * message names the call, the driver's error name and string). */
  MOE_ERR_DEVICE = 7,
  /* Expert parallelism (moe_runtime_mpi): an all-to-all exchange failed or
   * timed out, or the ranks disagree (layer signature, expert count). */
  MOE_ERR_EXCHANGE = 8,
  /* A token position given to moe.exit_layers (early exit) is negative. */
  MOE_ERR_POSITION = 9,
};

#endif /* MOE_STATUS_CODES_H */
