//===- MpiExchange.cpp - the all-to-all exchanges of a sharded layer ------===//
//
// Counts travel with MPI_Ialltoall, rows with MPI_Ialltoallv over a
// contiguous row datatype (counts in rows, not floats, so a layer's P * H
// does not overflow MPI's int counts). Every collective is nonblocking and
// waited on with a deadline: a rank that never arrives makes the others fail
// with a message instead of hanging. Exchanges and control collectives
// (signature, status agreement) use two duplicates of the world
// communicator, so a control collective still completes while an exchange
// that a failed rank never joined is pending.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime_mpi.h"
#include "moe_status_codes.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

thread_local std::string lastError;
MPI_Comm exchangeComm = MPI_COMM_NULL, controlComm = MPI_COMM_NULL;
int myRank = 0, numRanks = 1;
int64_t timeoutMs = 60000;
bool exchangeBroken = false; // a request timed out and is still pending
// A step of the current layer call failed: its later exchanges fail at once
// (every rank sees the same count exchange, so all of them skip alike).
bool callFailed = false;
moe_mpi_stats stats{};

/// Adds the wall time of its scope to stats.seconds_exchanging.
struct ExchangeTimer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~ExchangeTimer() {
    stats.seconds_exchanging +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

int fail(const std::string &message) {
  callFailed = true;
  lastError = "rank " + std::to_string(myRank) + ": " + message;
  return MOE_ERR_EXCHANGE;
}

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

// Polls `request` until it completes or the deadline passes. Spins briefly,
// then sleeps 50 us between polls so that oversubscribed ranks (more ranks
// than cores) let each other run.
int waitBounded(MPI_Request &request, const char *what, MPI_Comm comm) {
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::milliseconds(timeoutMs);
  for (int polls = 0;; ++polls) {
    int done = 0;
    int rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
      return fail(std::string(what) + " failed: " + mpiError(rc));
    if (done)
      break;
    auto now = std::chrono::steady_clock::now();
    if (now > deadline) {
      if (comm == exchangeComm)
        exchangeBroken = true;
      return fail(std::string(what) + " timed out after " + std::to_string(timeoutMs) +
                  " ms: another rank failed before it or never reached it");
    }
    if (polls > 200)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (comm == exchangeComm)
    stats.seconds_waiting +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return MOE_OK;
}

int checkReady(const char *what, bool newCall = false) {
  if (newCall)
    callFailed = false;
  else if (callFailed)
    return fail(std::string(what) + ": skipped after the failure of an earlier step: " +
                lastError);
  if (exchangeComm == MPI_COMM_NULL)
    return fail(std::string(what) + ": moe_mpi_init was not called");
  if (exchangeBroken)
    return fail(std::string(what) + ": an earlier exchange timed out; the ranks are out "
                                    "of step (report the error and abort)");
  return MOE_OK;
}

int destination(const int32_t *placement, int64_t n) {
  return placement[n] < 0 ? myRank : placement[n];
}

int64_t rowsOf(const int32_t *offsets, int64_t n) { return offsets[n + 1] - offsets[n]; }

// Contiguous rows of `h` floats, so that MPI counts are row counts.
int rowType(int64_t h, MPI_Datatype &type) {
  if (h <= 0 || h > INT32_MAX)
    return fail("hidden dimension " + std::to_string(h) + " is out of range");
  MPI_Type_contiguous(static_cast<int>(h), MPI_FLOAT, &type);
  MPI_Type_commit(&type);
  return MOE_OK;
}

int alltoallvRows(const float *send, const std::vector<int> &sendCounts, float *recv,
                  const std::vector<int> &recvCounts, int64_t h, const char *what) {
  std::vector<int> sendDispls(numRanks), recvDispls(numRanks);
  for (int r = 1; r < numRanks; ++r) {
    sendDispls[r] = sendDispls[r - 1] + sendCounts[r - 1];
    recvDispls[r] = recvDispls[r - 1] + recvCounts[r - 1];
  }
  MPI_Datatype row;
  if (int rc = rowType(h, row))
    return rc;
  MPI_Request request;
  int rc = MPI_Ialltoallv(send, sendCounts.data(), sendDispls.data(), row, recv,
                          recvCounts.data(), recvDispls.data(), row, exchangeComm, &request);
  int status = rc == MPI_SUCCESS ? waitBounded(request, what, exchangeComm)
                                 : fail(std::string(what) + " failed: " + mpiError(rc));
  MPI_Type_free(&row);
  if (status == MOE_OK) {
    ++stats.exchanges;
    for (int r = 0; r < numRanks; ++r)
      (r == myRank ? stats.bytes_local : stats.bytes_sent) +=
          int64_t(sendCounts[r]) * h * int64_t(sizeof(float));
  }
  return status;
}

uint64_t fnv1a(const char *text) {
  uint64_t hash = 1469598103934665603ull;
  for (; *text; ++text)
    hash = (hash ^ uint8_t(*text)) * 1099511628211ull;
  return hash;
}

// Fixed-size records for the control allgathers (a status and a message, a
// signature hash and its text's head).
constexpr int kTextBytes = 1000;
struct ControlRecord {
  int64_t value;
  char text[kTextBytes];
};

int allgatherRecords(const ControlRecord &mine, std::vector<ControlRecord> &all,
                     const char *what) {
  if (controlComm == MPI_COMM_NULL)
    return fail(std::string(what) + ": moe_mpi_init was not called");
  all.assign(numRanks, ControlRecord{});
  MPI_Request request;
  int rc = MPI_Iallgather(&mine, sizeof(ControlRecord), MPI_BYTE, all.data(),
                          sizeof(ControlRecord), MPI_BYTE, controlComm, &request);
  if (rc != MPI_SUCCESS)
    return fail(std::string(what) + " failed: " + mpiError(rc));
  return waitBounded(request, what, controlComm);
}

ControlRecord makeRecord(int64_t value, const char *text) {
  ControlRecord record{};
  record.value = value;
  std::snprintf(record.text, kTextBytes, "%s", text ? text : "");
  return record;
}

} // namespace

extern "C" {

int moe_mpi_init(int *argc, char ***argv) {
  if (exchangeComm != MPI_COMM_NULL)
    return MOE_OK;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      return fail("MPI_Init_thread failed");
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &exchangeComm);
  MPI_Comm_dup(MPI_COMM_WORLD, &controlComm);
  MPI_Comm_set_errhandler(exchangeComm, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(controlComm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &myRank);
  MPI_Comm_size(MPI_COMM_WORLD, &numRanks);
  if (const char *env = std::getenv("MOE_MPI_TIMEOUT_MS")) {
    char *end = nullptr;
    long long ms = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && ms > 0)
      timeoutMs = ms;
    else
      std::fprintf(stderr, "moe-mpi: ignoring MOE_MPI_TIMEOUT_MS='%s' (want a positive "
                           "number of milliseconds)\n", env);
  }
  return MOE_OK;
}

void moe_mpi_finalize(void) {
  if (exchangeComm == MPI_COMM_NULL)
    return;
  if (exchangeBroken)
    moe_mpi_abort(MOE_ERR_EXCHANGE);
  MPI_Comm_free(&exchangeComm);
  MPI_Comm_free(&controlComm);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized)
    MPI_Finalize();
}

void moe_mpi_abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

int moe_mpi_rank(void) { return myRank; }
int moe_mpi_size(void) { return numRanks; }
void moe_mpi_set_timeout_ms(int64_t ms) { timeoutMs = ms > 0 ? ms : timeoutMs; }
int64_t moe_mpi_timeout_ms(void) { return timeoutMs; }
const char *moe_mpi_last_error(void) { return lastError.c_str(); }
void moe_mpi_get_stats(moe_mpi_stats *out) {
  if (out)
    *out = stats;
}
void moe_mpi_reset_stats(void) { stats = moe_mpi_stats{}; }

int moe_mpi_check_signature(const char *signature) {
  if (!signature)
    return fail("moe_mpi_check_signature: signature is null");
  std::vector<ControlRecord> all;
  if (int rc = allgatherRecords(makeRecord(int64_t(fnv1a(signature)), signature), all,
                                "the layer signature check"))
    return rc;
  for (int r = 1; r < numRanks; ++r)
    if (all[r].value != all[0].value)
      return fail("the layer signature of rank " + std::to_string(r) +
                  " differs from rank 0's: rank 0 has '" + all[0].text + "', rank " +
                  std::to_string(r) + " has '" + all[r].text + "'");
  return MOE_OK;
}

int moe_mpi_agree_status(int status, const char *message) {
  std::vector<ControlRecord> all;
  if (int rc = allgatherRecords(makeRecord(status, message), all, "the status agreement"))
    return rc;
  // Root causes (a rank's own error) first, with their status; ranks that
  // only failed in an exchange (waiting for a failed rank) after them.
  int first = MOE_OK;
  std::string causes, waiting;
  for (int pass = 0; pass < 2; ++pass)
    for (int r = 0; r < numRanks; ++r) {
      bool exchange = all[r].value == MOE_ERR_EXCHANGE;
      if (all[r].value == MOE_OK || exchange != (pass == 1))
        continue;
      if (first == MOE_OK)
        first = int(all[r].value);
      std::string &text = exchange ? waiting : causes;
      text += (text.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) +
              " failed with status " + std::to_string(all[r].value) + ": " + all[r].text;
    }
  if (first != MOE_OK)
    lastError = causes.empty() ? waiting
                               : causes + (waiting.empty() ? "" : " (then " + waiting + ")");
  return first;
}

static int dispatchCounts(const int32_t *offsets, int64_t n, const int32_t *placement,
                          int32_t *plan, int32_t *recvOffsets);

int moe_mpi_dispatch_counts(const int32_t *offsets, int64_t n, const int32_t *placement,
                            int32_t *plan, int32_t *recvOffsets) {
  ExchangeTimer timer;
  if (!offsets || !placement || !plan || !recvOffsets || n <= 0)
    return fail("moe_mpi_dispatch_counts: null buffer or expert count " + std::to_string(n));
  int status = dispatchCounts(offsets, n, placement, plan, recvOffsets);
  // On failure the counts are zero, so compiled code sizes empty buffers.
  if (status != MOE_OK) {
    std::fill(plan, plan + int64_t(numRanks) * n, 0);
    std::fill(recvOffsets, recvOffsets + n + 1, 0);
  }
  return status;
}

static int dispatchCounts(const int32_t *offsets, int64_t n, const int32_t *placement,
                          int32_t *plan, int32_t *recvOffsets) {
  if (int rc = checkReady("the dispatch count exchange", /*newCall=*/true))
    return rc;
  for (int64_t e = 0; e < n; ++e)
    if (placement[e] >= numRanks)
      return fail("expert " + std::to_string(e) + " is placed on rank " +
                  std::to_string(placement[e]) + " but the job has " +
                  std::to_string(numRanks) + " ranks");
  // Each block: {N, checksum of the placement}, then N counts (0 for the
  // experts not on that rank); the header catches ranks that disagree.
  int64_t block = n + 2;
  if (block * numRanks > INT32_MAX)
    return fail("too many experts for one count exchange");
  int64_t placementSum = 0;
  for (int64_t e = 0; e < n; ++e)
    placementSum = placementSum * 31 + placement[e];
  std::vector<int64_t> send(block * numRanks, 0), recv(block * numRanks, 0);
  for (int r = 0; r < numRanks; ++r) {
    send[r * block] = n;
    send[r * block + 1] = placementSum;
  }
  for (int64_t e = 0; e < n; ++e)
    send[destination(placement, e) * block + 2 + e] = rowsOf(offsets, e);
  MPI_Request request;
  int rc = MPI_Ialltoall(send.data(), int(block), MPI_INT64_T, recv.data(), int(block),
                         MPI_INT64_T, exchangeComm, &request);
  if (rc != MPI_SUCCESS)
    return fail("the dispatch count exchange failed: " + mpiError(rc));
  if (int status = waitBounded(request, "the dispatch count exchange", exchangeComm))
    return status;
  int64_t total = 0;
  for (int src = 0; src < numRanks; ++src) {
    if (recv[src * block] != n || recv[src * block + 1] != placementSum)
      return fail("rank " + std::to_string(src) + " dispatches " +
                  std::to_string(recv[src * block]) + " experts with another placement; " +
                  "this rank has " + std::to_string(n) + " (layers differ across ranks)");
  }
  for (int64_t e = 0; e < n; ++e) {
    recvOffsets[e] = int32_t(total);
    for (int src = 0; src < numRanks; ++src) {
      int64_t count = recv[src * block + 2 + e];
      plan[src * n + e] = int32_t(count);
      total += count;
    }
  }
  if (total > INT32_MAX)
    return fail("this rank would receive " + std::to_string(total) + " rows (> 2^31)");
  recvOffsets[n] = int32_t(total);
  return MOE_OK;
}

int moe_mpi_dispatch_rows(const float *hidden, int64_t h, const int32_t *rows,
                          const int32_t *offsets, int64_t n, const int32_t *placement,
                          const int32_t *plan, float *recvHidden, int32_t *recvRows) {
  ExchangeTimer timer;
  if (int rc = checkReady("the dispatch row exchange"))
    return rc;
  // Send buffer: rank by rank, expert by expert, each expert's sorted rows.
  std::vector<int> sendCounts(numRanks, 0), recvCounts(numRanks, 0);
  for (int64_t e = 0; e < n; ++e)
    sendCounts[destination(placement, e)] += int(rowsOf(offsets, e));
  std::vector<float> send(size_t(offsets[n]) * h);
  std::vector<int64_t> cursor(numRanks, 0);
  for (int r = 1; r < numRanks; ++r)
    cursor[r] = cursor[r - 1] + sendCounts[r - 1];
  for (int64_t e = 0; e < n; ++e) {
    int64_t &at = cursor[destination(placement, e)];
    for (int32_t p = offsets[e]; p < offsets[e + 1]; ++p, ++at)
      std::memcpy(&send[at * h], hidden + int64_t(rows[p]) * h, h * sizeof(float));
  }
  // Arrival order is source-major; recv_rows lists it expert-major.
  std::vector<int64_t> arrival(size_t(numRanks) * n);
  int64_t next = 0;
  for (int src = 0; src < numRanks; ++src)
    for (int64_t e = 0; e < n; ++e) {
      arrival[src * n + e] = next;
      next += plan[src * n + e];
      recvCounts[src] += plan[src * n + e];
    }
  int64_t q = 0;
  for (int64_t e = 0; e < n; ++e)
    for (int src = 0; src < numRanks; ++src)
      for (int32_t i = 0; i < plan[src * n + e]; ++i)
        recvRows[q++] = int32_t(arrival[src * n + e] + i);
  return alltoallvRows(send.data(), sendCounts, recvHidden, recvCounts, h,
                       "the dispatch row exchange");
}

int moe_mpi_combine_rows(const float *expertOut, int64_t h, const int32_t *recvRows,
                         const int32_t *plan, const int32_t *offsets, int64_t n,
                         const int32_t *placement, float *sorted) {
  ExchangeTimer timer;
  if (int rc = checkReady("the combine row exchange"))
    return rc;
  // Back in arrival order, so each source gets its rows in the order it sent.
  std::vector<int> sendCounts(numRanks, 0), recvCounts(numRanks, 0);
  int64_t total = 0;
  for (int src = 0; src < numRanks; ++src)
    for (int64_t e = 0; e < n; ++e)
      sendCounts[src] += plan[src * n + e];
  for (int src = 0; src < numRanks; ++src)
    total += sendCounts[src];
  std::vector<float> send(size_t(total) * h);
  for (int64_t qi = 0; qi < total; ++qi)
    std::memcpy(&send[int64_t(recvRows[qi]) * h], expertOut + qi * h, h * sizeof(float));
  for (int64_t e = 0; e < n; ++e)
    recvCounts[destination(placement, e)] += int(rowsOf(offsets, e));
  std::vector<float> recv(size_t(offsets[n]) * h);
  if (int rc = alltoallvRows(send.data(), sendCounts, recv.data(), recvCounts, h,
                             "the combine row exchange"))
    return rc;
  std::vector<int64_t> cursor(numRanks, 0);
  for (int r = 1; r < numRanks; ++r)
    cursor[r] = cursor[r - 1] + recvCounts[r - 1];
  for (int64_t e = 0; e < n; ++e) {
    int64_t &at = cursor[destination(placement, e)];
    for (int32_t p = offsets[e]; p < offsets[e + 1]; ++p, ++at)
      std::memcpy(sorted + int64_t(p) * h, &recv[at * h], h * sizeof(float));
  }
  return MOE_OK;
}

int moe_mpi_gather_rows(const float *local, int64_t localRows, int64_t rowElems,
                        float *out) {
  if (controlComm == MPI_COMM_NULL)
    return fail("moe_mpi_gather_rows: moe_mpi_init was not called");
  if (localRows < 0 || localRows > INT32_MAX || rowElems <= 0 || rowElems > INT32_MAX)
    return fail("moe_mpi_gather_rows: " + std::to_string(localRows) + " rows of " +
                std::to_string(rowElems) + " elements is out of range");
  int mine = int(localRows);
  std::vector<int> counts(numRanks), displs(numRanks);
  MPI_Request request;
  MPI_Igather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, controlComm, &request);
  if (int rc = waitBounded(request, "the result row count gather", controlComm))
    return rc;
  for (int r = 1; r < numRanks; ++r)
    displs[r] = displs[r - 1] + counts[r - 1];
  MPI_Datatype row;
  if (int rc = rowType(rowElems, row))
    return rc;
  MPI_Igatherv(local, mine, row, out, counts.data(), displs.data(), row, 0, controlComm,
               &request);
  int status = waitBounded(request, "the result row gather", controlComm);
  MPI_Type_free(&row);
  return status;
}

} // extern "C"
