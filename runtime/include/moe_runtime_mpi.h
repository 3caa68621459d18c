/*===- moe_runtime_mpi.h - expert parallelism over MPI -------------*- C -*-===*\
|*                                                                          *|
|* libmoe_runtime_mpi: the all-to-all exchanges of a sharded layer          *|
|* (moe.all_to_all, docs/dialect.md) and the control collectives the tools  *|
|* need around them. Built only when CMake finds MPI; the core runtime      *|
|* (moe_runtime.h) has no MPI dependency.                                   *|
|*                                                                          *|
|* Every wait is bounded (MOE_MPI_TIMEOUT_MS, default 60000; or             *|
|* moe_mpi_set_timeout_ms): a rank that fails before an exchange, or never  *|
|* reaches it, makes the others fail with MOE_ERR_EXCHANGE and a message    *|
|* naming the exchange and the timeout, never hang. After a timeout the     *|
|* exchange communicator holds a request that cannot be cancelled: every    *|
|* later exchange fails at once, and the process should report the error    *|
|* (moe_mpi_agree_status) and call moe_mpi_abort.                           *|
|*                                                                          *|
|* Numbering: N experts (routed + shared) of a moe.dispatch; offsets[N+1]   *|
|* its exclusive prefix sum of per-expert row counts; placement[N] the rank *|
|* of each expert, -1 for "the calling rank" (shared experts: no traffic).  *|
|* plan[R*N]: plan[src*N + n] = rows of expert n this rank receives from    *|
|* rank src. Rows travel to a rank expert by expert (n ascending), each     *|
|* expert's rows in sorted order; they arrive source by source.             *|
\*===----------------------------------------------------------------------===*/
#ifndef MOE_RUNTIME_MPI_H
#define MOE_RUNTIME_MPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MPI_Init_thread unless MPI is initialized already; duplicates the world
 * communicator for exchanges and for control. Idempotent. Returns a status. */
int moe_mpi_init(int *argc, char ***argv);
/* MPI_Finalize (only when no exchange timed out: then moe_mpi_abort). */
void moe_mpi_finalize(void);
/* MPI_Abort on the world communicator with `code`. Does not return. */
void moe_mpi_abort(int code);
int moe_mpi_rank(void);
int moe_mpi_size(void);
void moe_mpi_set_timeout_ms(int64_t ms);
int64_t moe_mpi_timeout_ms(void);
/* The message of the last failure on this thread. */
const char *moe_mpi_last_error(void);

/* Every rank passes its layer's signature text; fails (on every rank) when
 * they differ, naming the first rank whose text differs from rank 0's and
 * both texts (up to 1000 characters each). */
int moe_mpi_check_signature(const char *signature);

/* Every rank passes its status and message; returns 0 when all are 0, else
 * the status of the first rank that failed on its own (else of the first
 * that failed in an exchange), with moe_mpi_last_error() naming every
 * failing rank and its message. Bounded like the exchanges. */
int moe_mpi_agree_status(int status, const char *message);

/* Forward exchange, step 1: the per-(source, expert) row counts. Writes
 * plan[R*N] and recv_offsets[N+1] (this rank's received rows grouped by
 * expert: expert n's are recv_offsets[n]..recv_offsets[n+1]). */
int moe_mpi_dispatch_counts(const int32_t *offsets, int64_t num_experts,
                            const int32_t *placement, int32_t *plan,
                            int32_t *recv_offsets);
/* Forward exchange, step 2: sends hidden[rows[p]] (rows [P], hidden
 * [T, H]) to the rank of p's expert. recv_hidden [Q, H] gets the rows in
 * arrival order (source, then expert, then sorted order), recv_rows [Q] the
 * arrival index of each expert-major position (so a grouped expert reads
 * recv_hidden[recv_rows[q]] for q in recv_offsets[n]..recv_offsets[n+1]). */
int moe_mpi_dispatch_rows(const float *hidden, int64_t hidden_dim,
                          const int32_t *rows, const int32_t *offsets,
                          int64_t num_experts, const int32_t *placement,
                          const int32_t *plan, float *recv_hidden,
                          int32_t *recv_rows);
/* The reverse exchange: expert_out [Q, H] (expert-major, as recv_rows) goes
 * back to the rows' ranks; sorted [P, H] gets, at each of this rank's sorted
 * rows p, its expert's output. */
int moe_mpi_combine_rows(const float *expert_out, int64_t hidden_dim,
                         const int32_t *recv_rows, const int32_t *plan,
                         const int32_t *offsets, int64_t num_experts,
                         const int32_t *placement, float *sorted);

/* Rank 0 gets every rank's `local_rows` rows of `row_elems` floats, in rank
 * order, in `out` (ignored elsewhere; room for the sum of the rows). For
 * tools that split a batch over ranks and check the whole result. */
int moe_mpi_gather_rows(const float *local, int64_t local_rows, int64_t row_elems,
                        float *out);

/* What the exchanges of this process cost since the last reset (tools,
 * tests): counts, bytes and time. */
typedef struct moe_mpi_stats {
  int64_t exchanges;         /* dispatch_rows + combine_rows calls */
  int64_t bytes_sent;        /* rows sent to other ranks, both directions */
  int64_t bytes_local;       /* rows that stayed on this rank */
  double seconds_waiting;    /* in the exchanges' bounded waits */
  double seconds_exchanging; /* in the three exchange calls: packing, waiting, unpacking */
} moe_mpi_stats;
void moe_mpi_get_stats(moe_mpi_stats *stats);
void moe_mpi_reset_stats(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_MPI_H */
