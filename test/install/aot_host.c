/* An ahead-of-time layer's host program, built against an installed tree
 * only (test/install/check_install.py): opens a moe-compile'd shared
 * object with the C runtime, runs it on deterministic inputs, writes the
 * inputs and the result as .npy files for the checker, and prints the
 * routing statistics the call recorded.
 *
 *   aot_host layer.so T OUTDIR
 */
#include "moe_runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_npy(const char *dir, const char *name, const moe_tensor *t) {
  char path[4096], header[256], shape[128] = "";
  size_t count = 1;
  for (int d = 0; d < t->rank; ++d) {
    char dim[32];
    snprintf(dim, sizeof dim, "%lld%s", (long long)t->shape[d], t->rank == 1 ? "," : (d + 1 < t->rank ? ", " : ""));
    strcat(shape, dim);
    count *= (size_t)t->shape[d];
  }
  const char *descr = t->dtype == MOE_F32 ? "<f4" : t->dtype == MOE_I32 ? "<i4" : "<i8";
  size_t elem = t->dtype == MOE_I64 ? 8 : 4;
  int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                   descr, shape);
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  snprintf(path, sizeof path, "%s/%s.npy", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return 1;
  unsigned short len = (unsigned short)(n + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  fwrite(&len, 2, 1, f);
  fwrite(header, 1, (size_t)n, f);
  for (int i = 0; i < pad; ++i)
    fputc(' ', f);
  fputc('\n', f);
  fwrite(t->data, elem, count, f);
  return fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: aot_host layer.so T OUTDIR\n");
    return 2;
  }
  int64_t tokens = atoll(argv[2]);
  moe_layer *layer = NULL;
  if (moe_layer_open(argv[1], "main", &layer) != MOE_OK) {
    fprintf(stderr, "open: %s\n", moe_last_error());
    return 1;
  }
  int na = moe_layer_num_args(layer), nr = moe_layer_num_results(layer);
  moe_tensor args[16], results[4];
  int64_t shapes[20][4];
  for (int i = 0; i < na + nr; ++i) {
    moe_dtype dtype;
    int32_t rank;
    const int64_t *shape;
    if ((i < na ? moe_layer_arg(layer, i, &dtype, &rank, &shape)
                : moe_layer_result(layer, i - na, &dtype, &rank, &shape)) != MOE_OK)
      return 1;
    size_t count = 1;
    for (int d = 0; d < rank; ++d) {
      shapes[i][d] = shape[d] < 0 ? tokens : shape[d];
      count *= (size_t)shapes[i][d];
    }
    void *data = calloc(count ? count : 1, 8);
    /* Floats: a deterministic pattern of the size a layer expects. */
    if (dtype == MOE_F32)
      for (size_t k = 0; k < count; ++k)
        ((float *)data)[k] = (float)(0.3 * sin(0.7 * (double)k + 1.3 * i) /
                                     sqrt((double)(rank ? shapes[i][rank - 1] : 1)));
    moe_tensor t = {data, dtype, rank, shapes[i]};
    if (i < na)
      args[i] = t;
    else
      results[i - na] = t;
  }
  if (moe_layer_run(layer, args, na, results, nr) != MOE_OK) {
    fprintf(stderr, "run: %s\n", moe_last_error());
    return 1;
  }
  for (int i = 0; i < na; ++i) {
    char name[32];
    snprintf(name, sizeof name, "arg%d", i);
    if (write_npy(argv[3], name, &args[i]))
      return 1;
  }
  if (write_npy(argv[3], "result0", &results[0]))
    return 1;
  printf("ran %d args -> %d results, T = %lld\n", na, nr, (long long)tokens);
  for (int i = 0; i < moe_last_stats_count(); ++i) {
    moe_layer_stats s;
    if (moe_last_stats(i, &s) == MOE_OK)
      printf("layer %d: routed pairs %lld of %lld tokens\n", s.layer, (long long)s.routed_pairs,
             (long long)s.tokens);
  }
  moe_layer_close(layer);
  return 0;
}
