//===- ExchangeTest.cpp - moe_runtime_mpi under mpirun ---------------------===//
//
// Run under `mpirun -np R`. Each scenario builds, on every rank, a routing
// of its own tokens, sorts the (token, slot) pairs by expert exactly as
// moe.dispatch does, exchanges the rows, applies a per-expert function on
// the receiving rank, sends the results back and checks every sorted row
// against the function applied locally. Scenarios: uneven token counts,
// a rank with zero tokens, every token routed to the last rank's experts,
// an explicit placement table, shared (local) experts; then the errors:
// mismatched signatures and a rank that fails before the exchange (every
// rank must report it within the timeout, never hang).
//
//   moe-mpi-exchange-test            the exchange scenarios
//   moe-mpi-exchange-test fail-rank  the failing-rank scenario (ends in
//                                    MPI_Abort after printing PASS/FAIL)
//===----------------------------------------------------------------------===//

#include "moe_runtime_mpi.h"
#include "moe_status_codes.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

int rank = 0, ranks = 1;
int failures = 0;

void check(bool ok, const std::string &what) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: FAIL: %s\n", rank, what.c_str());
    ++failures;
  }
}

// What expert e computes on a row: distinct per expert and per element.
float expertFn(int64_t e, float x, int64_t col) { return x * float(e + 2) + 0.25f * float(col) - float(e); }

struct Dispatch {
  std::vector<int32_t> offsets, rows;
};

// moe.dispatch's counting sort: rows of expert e in token order; shared
// experts E..N-1 take every token.
Dispatch sortByExpert(const std::vector<int32_t> &ids, int64_t tokens, int64_t k,
                      int64_t routed, int64_t shared) {
  int64_t n = routed + shared;
  Dispatch d;
  d.offsets.assign(n + 1, 0);
  std::vector<std::vector<int32_t>> perExpert(n);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t s = 0; s < k; ++s)
      if (ids[t * k + s] >= 0)
        perExpert[ids[t * k + s]].push_back(int32_t(t));
    for (int64_t e = routed; e < n; ++e)
      perExpert[e].push_back(int32_t(t));
  }
  for (int64_t e = 0; e < n; ++e) {
    d.offsets[e + 1] = d.offsets[e] + int32_t(perExpert[e].size());
    d.rows.insert(d.rows.end(), perExpert[e].begin(), perExpert[e].end());
  }
  return d;
}

struct Scenario {
  std::string name;
  int64_t tokens; // this rank's
  int64_t routed, shared, k, hidden;
  std::vector<int32_t> placement; // routed then shared (-1)
  std::function<int32_t(int64_t token, int64_t slot, std::mt19937 &)> route;
};

void runScenario(const Scenario &s) {
  int64_t n = s.routed + s.shared;
  std::mt19937 rng(1234 + rank);
  std::vector<int32_t> ids(s.tokens * s.k);
  for (int64_t t = 0; t < s.tokens; ++t)
    for (int64_t j = 0; j < s.k; ++j)
      ids[t * s.k + j] = s.route(t, j, rng);
  std::vector<float> hidden(s.tokens * s.hidden);
  std::uniform_real_distribution<float> uni(-1, 1);
  for (float &v : hidden)
    v = uni(rng);
  Dispatch d = sortByExpert(ids, s.tokens, s.k, s.routed, s.shared);

  std::vector<int32_t> plan(size_t(ranks) * n), recvOffsets(n + 1);
  int rc = moe_mpi_dispatch_counts(d.offsets.data(), n, s.placement.data(), plan.data(),
                                   recvOffsets.data());
  check(rc == MOE_OK, s.name + ": dispatch_counts: " + moe_mpi_last_error());
  int64_t q = recvOffsets[n];
  std::vector<float> recvHidden(q * s.hidden);
  std::vector<int32_t> recvRows(q);
  rc = moe_mpi_dispatch_rows(hidden.data(), s.hidden, d.rows.data(), d.offsets.data(), n,
                             s.placement.data(), plan.data(), recvHidden.data(),
                             recvRows.data());
  check(rc == MOE_OK, s.name + ": dispatch_rows: " + moe_mpi_last_error());
  // The experts this rank holds, over their received rows (expert-major).
  std::vector<float> expertOut(q * s.hidden);
  for (int64_t e = 0; e < n; ++e) {
    bool mine = s.placement[e] < 0 ? true : s.placement[e] == rank;
    check(mine || recvOffsets[e] == recvOffsets[e + 1],
          s.name + ": rows received for expert " + std::to_string(e) + " of another rank");
    for (int32_t p = recvOffsets[e]; p < recvOffsets[e + 1]; ++p)
      for (int64_t c = 0; c < s.hidden; ++c)
        expertOut[p * s.hidden + c] =
            expertFn(e, recvHidden[int64_t(recvRows[p]) * s.hidden + c], c);
  }
  std::vector<float> sorted(int64_t(d.offsets[n]) * s.hidden, NAN);
  rc = moe_mpi_combine_rows(expertOut.data(), s.hidden, recvRows.data(), plan.data(),
                            d.offsets.data(), n, s.placement.data(), sorted.data());
  check(rc == MOE_OK, s.name + ": combine_rows: " + moe_mpi_last_error());
  int bad = 0;
  for (int64_t e = 0; e < n; ++e)
    for (int32_t p = d.offsets[e]; p < d.offsets[e + 1]; ++p)
      for (int64_t c = 0; c < s.hidden; ++c)
        bad += sorted[p * s.hidden + c] !=
               expertFn(e, hidden[int64_t(d.rows[p]) * s.hidden + c], c);
  check(bad == 0, s.name + ": " + std::to_string(bad) + " wrong elements after the round trip");
  // The whole job must agree that the scenario passed.
  int agreed = moe_mpi_agree_status(failures ? MOE_ERR_EXCHANGE : MOE_OK,
                                    (s.name + " failed here").c_str());
  if (rank == 0)
    std::printf("%s: %s\n", s.name.c_str(), agreed == MOE_OK ? "PASS" : moe_mpi_last_error());
  if (agreed != MOE_OK && !failures)
    ++failures;
}

std::vector<int32_t> contiguous(int64_t routed, int64_t shared) {
  std::vector<int32_t> placement;
  int64_t perRank = (routed + ranks - 1) / ranks;
  for (int64_t e = 0; e < routed; ++e)
    placement.push_back(int32_t(e / perRank));
  placement.insert(placement.end(), shared, -1);
  return placement;
}

void exchangeScenarios() {
  auto uniform = [](int64_t routed) {
    return [routed](int64_t, int64_t, std::mt19937 &rng) {
      return int32_t(std::uniform_int_distribution<int>(-1, int(routed) - 1)(rng));
    };
  };
  runScenario({"uneven tokens", 5 + 11 * rank, 8, 0, 2, 16, contiguous(8, 0), uniform(8)});
  runScenario({"rank 0 has no tokens", rank == 0 ? 0 : 9, 8, 1, 2, 8, contiguous(8, 1),
               uniform(8)});
  runScenario({"all tokens to the last rank", 13, 8, 0, 2, 8, contiguous(8, 0),
               [](int64_t, int64_t slot, std::mt19937 &) { return int32_t(7 - slot); }});
  std::vector<int32_t> table;
  for (int e = 0; e < 6; ++e)
    table.push_back((e * 3 + 1) % ranks);
  table.push_back(-1);
  runScenario({"placement table + shared expert", 7 + rank, 6, 1, 3, 12, table, uniform(6)});
  runScenario({"no tokens anywhere", 0, 4, 0, 1, 4, contiguous(4, 0), uniform(4)});

  // Mismatched signatures: every rank gets the error, naming rank 1.
  std::string signature = rank == 1 ? "main(tensor<?x64xf32>)" : "main(tensor<?x32xf32>)";
  int rc = moe_mpi_check_signature(signature.c_str());
  check(rc == MOE_ERR_EXCHANGE && std::strstr(moe_mpi_last_error(), "signature of rank 1"),
        std::string("mismatched signatures not reported: ") + moe_mpi_last_error());
  check(moe_mpi_check_signature("same") == MOE_OK, "equal signatures rejected");
  // An expert placed on a rank the job does not have.
  std::vector<int32_t> badPlacement(2, int32_t(ranks)), plan(2 * ranks), offs(3);
  std::vector<int32_t> zeroOffsets(3, 0);
  rc = moe_mpi_dispatch_counts(zeroOffsets.data(), 2, badPlacement.data(), plan.data(),
                               offs.data());
  check(rc == MOE_ERR_EXCHANGE && std::strstr(moe_mpi_last_error(), "placed on rank"),
        std::string("bad placement not reported: ") + moe_mpi_last_error());
}

// The last rank fails before the exchange (as a layer call does on a bad
// expert id); the others must time out, and every rank must learn who failed.
int failingRankScenario() {
  moe_mpi_set_timeout_ms(500);
  int last = ranks - 1;
  int status = MOE_OK;
  std::string message;
  if (rank == last) {
    status = 1;
    message = "first bad id: 9 at ids[0, 0]";
  } else {
    std::vector<int32_t> offsets = {0, 0}, placement = {int32_t(last)}, plan(ranks), recv(2);
    status = moe_mpi_dispatch_counts(offsets.data(), 1, placement.data(), plan.data(),
                                     recv.data());
    message = moe_mpi_last_error();
    check(status == MOE_ERR_EXCHANGE && message.find("timed out") != std::string::npos,
          "the exchange did not time out: " + message);
  }
  moe_mpi_set_timeout_ms(20000);
  int agreed = moe_mpi_agree_status(status, message.c_str());
  std::string all = moe_mpi_last_error();
  check(agreed == 1 && all.find("rank " + std::to_string(last) +
                                " failed with status 1: first bad id") != std::string::npos,
        "the failure was not reported to every rank: " + all);
  std::printf("rank %d sees: %s\n", rank, all.c_str());
  std::fflush(stdout);
  int verdict = moe_mpi_agree_status(failures ? MOE_ERR_EXCHANGE : MOE_OK, "check failed");
  if (rank == 0)
    std::printf("failing-rank scenario: %s\n", verdict == MOE_OK ? "PASS" : "FAIL");
  // The survivors hold a pending exchange request: abort, as a tool would.
  moe_mpi_abort(verdict == MOE_OK ? 0 : 1);
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  if (moe_mpi_init(&argc, &argv) != MOE_OK) {
    std::fprintf(stderr, "%s\n", moe_mpi_last_error());
    return 1;
  }
  rank = moe_mpi_rank();
  ranks = moe_mpi_size();
  moe_mpi_set_timeout_ms(20000);
  if (argc > 1 && std::string(argv[1]) == "fail-rank")
    return failingRankScenario();
  exchangeScenarios();
  int verdict = moe_mpi_agree_status(failures ? MOE_ERR_EXCHANGE : MOE_OK, "checks failed");
  if (rank == 0)
    std::printf("exchange scenarios at %d ranks: %s\n", ranks,
                verdict == MOE_OK ? "PASS" : "FAIL");
  moe_mpi_finalize();
  return verdict == MOE_OK ? 0 : 1;
}
