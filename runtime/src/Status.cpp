//===- Status.cpp - messages for moe status codes --------------------------===//
#include "moe_runtime.h"

extern "C" const char *moe_status_message(int status) {
  switch (status) {
  case MOE_OK:
    return "success";
  case MOE_ERR_EXPERT_ID:
    return "an expert id in the routing is outside [-1, E) (E = the layer's "
           "expert count); -1 marks an unused slot";
  case MOE_ERR_NONFINITE_SCORE:
    return "a router logit or skip score is NaN or infinite: the input holds "
           "NaN/Inf values";
  case MOE_ERR_PATH_ID:
    return "a path id given to moe.path_select is outside [0, P] (0 = skip)";
  case MOE_ERR_SHAPE:
    return "a buffer's shape or element type does not match the function";
  case MOE_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  default:
    return "unknown status code";
  }
}
