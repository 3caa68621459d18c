//===- Passes.td - moe lowering (conversion) passes ---------*- tablegen -*-===//
//
// The CPU pipeline after the moe-level rewrites: the call slots, then one
// pass per op family emitting scf/memref/vector loops on buffers. A lowered
// op's operands are read through `bufferization.to_buffer` and its results
// handed on as `bufferization.to_tensor restrict`, so every pass's output is
// valid tensor IR that one-shot-bufferize finishes (together with any
// upstream tensor ops around the layers); moe-buffer-abi then gives the
// entry functions their C signature.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoeCheckSupportedOps : Pass<"moe-check-supported-ops", "ModuleOp"> {
  let summary = "Reject, at their location, ops the pipelines cannot lower";
  let description = [{
    The first pass of the CPU and GPU pipelines. A layer function may hold
    moe ops, upstream tensor ops that one-shot-bufferize takes (elementwise
    arith/math on tensors, linalg, tensor ops: a residual add, an RMSNorm
    around a layer), `func.return` and ops on scalars. Anything else on
    tensors (a `func.call`, an op of a dialect with no bufferization model;
    on the GPU a tensor `arith.constant`, which would be a host global) is
    reported at its own location instead of failing later in a pass's
    terms. Functions with a body must be public: each is an entry point
    with the C buffer ABI.
  }];
  let options = [
    Option<"pipeline", "pipeline", "std::string", "\"CPU\"",
           "the pipeline named in the diagnostics">,
  ];
}

def MoeCallSlots : Pass<"moe-call-slots", "ModuleOp"> {
  let summary = "Give every entry function its status (and error-detail) slot";
  let description = [{
    Runs on tensor IR before the lowerings. Each public function with a body
    gets a `moe.status` i32 stack slot, 0 (success) at the entry: the
    lowerings' run-time checks record their error code into it (codes in
    runtime/include/moe_status_codes.h), and moe-buffer-abi returns it.

    With `error-details` (the CPU pipeline), also a `moe.error_detail` slot:
    the first failed check that names a token, slot and id records them, and
    a failing call hands them to the runtime (`moe_rt_error_detail`) for its
    error message.

    Entry functions take and return ranked tensors only (each becomes a
    buffer of the C ABI); calls between entry functions are rejected.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect"];
  let options = [
    Option<"errorDetails", "error-details", "bool", "false",
           "record the token, slot and id of a failed check for the runtime's message">,
  ];
}

def MoeRecordRoutingStats : Pass<"moe-record-routing-stats", "ModuleOp"> {
  let summary = "Count each layer's routing per call and hand it to the runtime";
  let description = [{
    Runs on `moe` IR before moe-fold-trivial-experts (the CPU pipeline's
    `stats` option). Every public function with moe.layer ops gets an i64
    stack buffer of one record per layer (pre-order): tokens per expert,
    valid slots per token, valid pairs before a capacity op, tokens that
    ran the layer and the call's token count, plus each expert's FLOPs per
    row; counting loops before each layer fill it, and before each return
    the function calls `moe_rt_record_stats(address, length)`, which keeps
    a copy for `moe_last_stats` (runtime/include/moe_runtime.h). Layout:
    lib/Conversion/MoeToLoops/RecordRoutingStats.cpp; definitions:
    docs/routing-stats.md.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "func::FuncDialect",
                           "tensor::TensorDialect"];
}

def MoeOneShotBufferize : Pass<"moe-one-shot-bufferize", "ModuleOp"> {
  let summary = "One-Shot Bufferize the tensor ops left after the moe lowerings";
  let description = [{
    Upstream One-Shot Bufferize over the whole module, function boundaries
    included (identity layouts: the C ABI passes dense buffers): the
    bridges of the lowered moe ops (`bufferization.to_tensor restrict`,
    read-only `bufferization.to_buffer`) and the upstream tensor ops around
    the layers. Ops with no tensor operand or result are left alone: the
    lowered loop code needs nothing, and re-creating it (an `scf.forall`
    kernel) would drop the attributes the GPU mapping put on it.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect", "memref::MemRefDialect"];
}

def MoeBufferAbi : Pass<"moe-buffer-abi", "ModuleOp"> {
  let summary = "Give bufferized entry functions a C-callable signature";
  let description = [{
    Runs after one-shot-bufferize. Memref results become trailing
    out-parameter memrefs (identity layout), and the function returns the
    i32 of its status slot (0 = success). Results are copied to the outputs
    only when the status is still 0, so outputs are untouched on error; with
    an error-detail slot, a failing call reports it to the runtime. Every
    heap buffer the function allocates is freed before each return (the
    results have been copied out); one allocated inside a loop or branch is
    an error. Adds `llvm.emit_c_interface`.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "func::FuncDialect"];
}

def MoeLowerSkips : Pass<"moe-lower-skips", "func::FuncOp"> {
  let summary = "Compact skipped tokens out of skip_block/path_select/halting_stack regions";
  let description = [{
    Scores and selects the tokens that run a region, gathers them into a
    compact buffer (ascending token order), inlines the region on it and
    scatter-adds its output into a copy of the input. Skipped tokens cost
    only the copy. A halting_stack (ACT) does this per layer on the tokens
    that have not halted yet.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "vector::VectorDialect",
                           "math::MathDialect"];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "0",
           "f32 lanes per vector (0: from the host CPU's features)">,
    Option<"report", "report", "bool", "false",
           "emit a remark per skip op describing the compaction">,
  ];
  let statistics = [
    Statistic<"numSkipBlocks", "skip-blocks-lowered", "skip_block ops lowered">,
    Statistic<"numPathSelects", "path-selects-lowered", "path_select ops lowered">,
    Statistic<"numHaltingStacks", "halting-stacks-lowered", "halting_stack ops lowered">,
  ];
}

def MoeLowerRouters : Pass<"moe-lower-routers", "func::FuncOp"> {
  let summary = "Fuse each router's scoring, selection and normalization into one loop nest";
  let description = [{
    One scf.for over tokens computes the token's E logits into a stack
    buffer, scores them (softmax/sigmoid/relu), selects (top-k, grouped
    top-k, top-p, ReLU) and normalizes, writing only the [T, K] routing.
    Expert choice (which ranks tokens per expert) keeps the [T, E] scores it
    selects from; hash routing and capacity drop are single loops too.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "vector::VectorDialect",
                           "math::MathDialect"];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "0",
           "f32 lanes per vector (0: from the host CPU's features)">,
    Option<"tokenChunk", "token-chunk", "int64_t", "0",
           "CPU: run the per-token router loops as moe.parallel items of this many tokens, "
           "each with private scratch (0: serial loops, marked for the GPU mapping)">,
  ];
  let statistics = [
    Statistic<"numRouters", "routers-fused", "Router ops fused into one loop nest">,
  ];
}

def MoeLowerPack : Pass<"moe-lower-pack", "func::FuncOp"> {
  let summary = "Lower moe.pack to a packed copy and weight slices to strided views";
  let description = [{
    moe.pack (in an entry's _prepare function) becomes a 64-byte-aligned
    buffer of the packed shape, filled row by row with the padding zeroed.
    A tensor.extract_slice of a buffer (a run entry reading a packed weight,
    see moe-hoist-weight-packing) becomes a memref.subview, so the expert
    kernels index the weight through the packed row stride without a copy.
    Runs after moe-buffer-abi.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "vector::VectorDialect"];
  let statistics = [
    Statistic<"numPacks", "packs-lowered", "moe.pack ops lowered">,
    Statistic<"numSlices", "slices-lowered", "weight slices turned into strided views">,
  ];
}

def MoeLowerDispatch : Pass<"moe-lower-dispatch", "func::FuncOp"> {
  let summary = "Lower moe.dispatch to a counting sort";
  let description = [{
    Per-expert counts (one pass over the slots), an exclusive prefix sum into
    ragged offsets, then a stable scatter of every used slot to its sorted
    row: O(T*K + E), no per-expert scan over all tokens.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect"];
  let statistics = [
    Statistic<"numDispatches", "dispatches-lowered", "moe.dispatch ops lowered">,
  ];
}

def MoeLowerGroupedExperts : Pass<"moe-lower-grouped-experts", "func::FuncOp"> {
  let summary = "Lower grouped FFN/LoRA experts and dense FFNs to tiled GEMM loops";
  let description = [{
    FFN experts (and dense FFNs): two phases of (expert, output block) work
    items. Phase A runs every row of an expert against one L2-sized block
    (`block-bytes`) of w1/w3 rows, with the activation and gate product fused
    into its epilogue, into a [rows, I] intermediate; phase B runs the down
    projection over (expert, block of w2 rows), K-sliced (`slice-bytes`) so a
    row tile's slice of the intermediate stays in L1. An expert with at
    least `pack-min-rows` rows takes the packed path: its gathered rows are
    packed once into panels of `vector-width` rows ([K, lanes], lane = row),
    and both GEMMs are outer-product register blocks (one broadcast weight
    element times `pack-tiles` panel vectors per FMA group, no horizontal
    reductions), the first writing the intermediate directly in the second's
    panel layout. With 24 or more accumulators (AVX-512) and `pack-tiles`
    left to the host, experts with enough panels take 3-panel tiles and the
    others 2-panel tiles (two kernel bodies per phase). Experts with fewer rows (decode) use dot-product register
    blocks of `row-tile` rows x as many weight rows as the vector registers
    allow, which read the weights with full-width vector loads.
    LoRA experts run per (expert, row tile) item over base projections
    computed once per token, adding their rank-r adapter products.
    FFN banks in a low-precision format (bf16, f16, int8, q8_0, q4_0) keep
    the two phases of work items; each item calls a micro-kernel of the
    runtime (moe_ukernels.h) named for the format and `ukernel-isa`.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "vector::VectorDialect",
                           "math::MathDialect", "LLVM::LLVMDialect", "func::FuncDialect"];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "0",
           "f32 lanes per vector (0: from the host CPU's features)">,
    Option<"rowTile", "row-tile", "int64_t", "0",
           "rows of a group computed together (weight reuse factor; 0: from the host's vector registers)">,
    Option<"parallel", "parallel", "bool", "true",
           "mark the loops over work items for the thread pool">,
    Option<"blockBytes", "block-bytes", "int64_t", "0",
           "FFN experts: weight bytes one work item streams (an L2-sized block; 0: 256 KiB)">,
    Option<"sliceBytes", "slice-bytes", "int64_t", "0",
           "FFN experts: bytes of a row tile's K slice in the second GEMM (L1-sized; 0: 16 KiB)">,
    Option<"packMinRows", "pack-min-rows", "int64_t", "-1",
           "FFN experts: groups with at least this many rows use the packed outer-product kernel "
           "(0: never; -1: from the vector width)">,
    Option<"packTiles", "pack-tiles", "int64_t", "0",
           "FFN experts, packed kernel: row panels sharing each broadcast weight (0: from the host: 2, and 3 for experts with enough panels when there are 24+ accumulators)">,
    Option<"packSliceBytes", "pack-slice-bytes", "int64_t", "0",
           "FFN experts, packed kernel: bytes of the panels' K slice (L1-sized; 0: 32 KiB)">,
    Option<"packRowsOuter", "pack-rows-outer", "bool", "true",
           "FFN experts, packed kernel: loop over weight-row tiles outside the panel tiles (a "
           "weight tile stays in L1 across the group's panels) instead of inside">,
    Option<"microKernelIsa", "ukernel-isa", "std::string", "\"\"",
           "FFN banks in low-precision formats: the micro-kernels' ISA (generic, avx2, avx512, "
           "avx512bf16, avx512vnni, amx; empty: the best the host has for each format, no wider "
           "than vector-width)">,
  ];
  let statistics = [
    Statistic<"numGroupedOps", "grouped-ops-lowered", "Grouped expert ops lowered">,
    Statistic<"numMicroKernelBanks", "micro-kernel-banks",
              "Grouped FFN banks in a low-precision format lowered to micro-kernel calls">,
    Statistic<"numDenseFfns", "dense-ffns-lowered", "Dense moe.ffn ops lowered">,
  ];
}

def MoeLowerCombine : Pass<"moe-lower-combine", "func::FuncOp"> {
  let summary = "Lower combine, trivial-expert terms and id remapping to loops";
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "vector::VectorDialect"];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "0",
           "f32 lanes per vector (0: from the host CPU's features)">,
    Option<"tokenChunk", "token-chunk", "int64_t", "0",
           "CPU: run the per-token combine loops as moe.parallel items of this many tokens "
           "(0: one serial loop, marked for the GPU mapping)">,
  ];
  let statistics = [
    Statistic<"numCombines", "combines-lowered", "Combine-family ops lowered">,
  ];
}

def MoeApproximateVectorMath : Pass<"moe-approximate-vector-math", "ModuleOp"> {
  let summary = "Replace vector exp/erf by polynomial approximations (vector code)";
  let description = [{
    LLVM has no vector form of `exp` or `erf` without a vector math library:
    a `vector<16xf32>` exp becomes sixteen scalar `expf` calls (with every
    live register spilled around them), which made the fused SwiGLU in the
    FFN kernels' epilogue cost a quarter of the GEMM. Vector-typed
    `math.exp` / `math.erf` become upstream's polynomial approximations
    (range reduction + minimax polynomial, a few ulp in f32), which stay in
    vector registers. Scalar math is left alone (libm or LLVM intrinsics),
    so scalar code keeps libm's results.
  }];
  let dependentDialects = ["arith::ArithDialect", "math::MathDialect", "vector::VectorDialect"];
  let statistics = [
    Statistic<"numApproximated", "ops-approximated", "Vector math ops approximated">,
  ];
}

def MoeOutlineParallel : Pass<"moe-outline-parallel", "ModuleOp"> {
  let summary = "Outline loops marked moe.parallel for the runtime's thread pool";
  let description = [{
    Each `scf.for` over [0, n) marked `moe.parallel` (the expert-tile loops)
    becomes a private function computing one iteration from its captured
    buffers, and the loop a call to the marker `@__moe_parallel__<body>(n,
    captured...)`, which moe-lower-parallel-calls turns into a call to
    moe_rt_parallel_for once everything is in the LLVM dialect.
  }];
  let dependentDialects = ["func::FuncDialect"];
  let statistics = [
    Statistic<"numOutlined", "loops-outlined", "Parallel loops outlined">,
  ];
}

def MoeLowerParallelCalls : Pass<"moe-lower-parallel-calls", "ModuleOp"> {
  let summary = "Turn parallel-loop markers into thread-pool calls (LLVM dialect)";
  let description = [{
    For each call of `@__moe_parallel__<body>(n, args...)`: the arguments
    are stored into a stack context struct, a trampoline
    `(ctx, begin, end)` loads them and runs `<body>(i, args...)` for
    i in [begin, end), and the call becomes
    `moe_rt_parallel_for(n, trampoline, ctx)` (runtime/include/moe_runtime.h).
  }];
  let dependentDialects = ["LLVM::LLVMDialect"];
}


//===----------------------------------------------------------------------===//
// GPU: the block/thread-mapped stage (lib/Conversion/MoeToGpu/GpuMapping.h
// states its contract), its host execution, and its outlining.
//===----------------------------------------------------------------------===//

def MoeGpuMapDispatch : Pass<"moe-gpu-map-dispatch", "func::FuncOp"> {
  let summary = "Lower moe.dispatch to a device counting sort (block/thread-mapped kernels)";
  let description = [{
    Four kernels: clear the per-expert counters; one thread per token counts
    its experts with atomic increments; one thread scans the counts into the
    ragged offsets; one thread per token claims its sorted rows with atomic
    fetch-adds (within an expert, rows are in atomic order on a GPU).
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "gpu::GPUDialect"];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "256", "threads per block">,
  ];
}

def MoeGpuMapGroupedExperts : Pass<"moe-gpu-map-grouped-experts", "func::FuncOp"> {
  let summary = "Lower grouped FFN/LoRA experts and dense FFNs to grouped-GEMM kernels";
  let description = [{
    Per op, an up kernel (x W1^T and x W3^T with the activation and gate
    product fused) and a down kernel (W2): blocks of 16x16 threads over
    (expert, 16-row tile) x (16-column tile), 16x16 shared-memory tiles of x
    and the weights, a grid sized to the worst case ceil(P/16) + E row tiles
    with a device-side early exit on tiles past an expert's rows.
  }];
  let dependentDialects = ["bufferization::BufferizationDialect",
                           "memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "math::MathDialect", "gpu::GPUDialect"];
}

def MoeGpuMapLoops : Pass<"moe-gpu-map-loops", "ModuleOp"> {
  let summary = "Map the remaining host-level loops and copies to GPU kernels";
  let description = [{
    Loops marked moe.gpu.parallel become one-iteration-per-thread grids,
    copies become elementwise kernels (the status-guarded output copies keep
    their guard on the device), other side-effecting code becomes
    single-thread kernels; stack buffers shared between kernels become
    device buffers. Ops whose results the host needs (data-dependent sizes)
    stay on the host, marked moe.gpu.host_sync.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect",
                           "scf::SCFDialect", "gpu::GPUDialect"];
  let options = [
    Option<"blockSize", "block-size", "int64_t", "256", "threads per block">,
    Option<"report", "report", "bool", "false",
           "emit a remark per function counting its kernels by kind">,
  ];
}

def MoeGpuToHost : Pass<"moe-gpu-to-host", "ModuleOp"> {
  let summary = "Run the block/thread-mapped stage on the CPU";
  let description = [{
    Block foralls become loops over the grid; thread foralls are split at
    their barriers into per-phase loops over the threads; workgroup and
    per-thread buffers become stack buffers. Rejects values that cross a
    barrier outside per-thread buffers.
  }];
  let dependentDialects = ["memref::MemRefDialect", "arith::ArithDialect", "scf::SCFDialect"];
}

def MoeGpuApproximateMath : Pass<"moe-gpu-approximate-math"> {
  let summary = "Replace the kernels' math by code NVPTX selects without libdevice";
  let description = [{
    Kernels must not call libdevice (`__nv_expf`, `__nv_erff`, ...): it is
    linked only when the CUDA toolkit is found at compile time, and an
    unresolved call makes ptxas reject the PTX. The math ops upstream can
    approximate (`math.exp`, `math.erf`, `math.tanh`, ...) become its
    polynomial approximations (f32 accuracy); f32 `math.floor` (inside the
    exp approximation) and f32/f64 `math.ceil` (capacity limits) become a
    round trip through a signed integer with a correction, f32 `math.absf`
    clears the sign bit, and a scalar `math.fma` becomes `arith.mulf` +
    `arith.addf`, which NVPTX contracts back into one fma. The GPU pipelines
    run it on the gpu.module; the mapped stage's host execution
    (moe-gpu-host) runs it on the functions, so the tests against the
    reference check the math the GPU computes.
  }];
  let dependentDialects = ["arith::ArithDialect", "math::MathDialect",
                           "vector::VectorDialect"];
}

def MoeGpuOutline : Pass<"moe-gpu-outline", "ModuleOp"> {
  let summary = "Turn the mapped stage's kernels into gpu.launch ops";
  let description = [{
    Each block forall becomes a gpu.launch (grid from its sizes, block from
    its thread forall) named after the kernel; the thread id replaces the
    thread forall, workgroup buffers become workgroup attributions,
    per-thread buffers become private buffers without the thread index.
    Buffers captured from the host are passed as static-shape views
    (bare-pointer kernels cannot take dynamic shapes; the kernels read sizes
    from index arguments, never from the view), and shape queries move to
    the host. Fails on ops marked moe.gpu.host_sync: those need the host to
    wait for the device (data-dependent sizes).
  }];
  let dependentDialects = ["gpu::GPUDialect", "memref::MemRefDialect",
                           "arith::ArithDialect", "scf::SCFDialect"];
}

def MoeLowerExchanges : Pass<"moe-lower-exchanges", "ModuleOp"> {
  let summary = "Lower the all-to-all exchanges of sharded layers to moe_runtime_mpi calls";
  let description = [{
    moe.all_to_all becomes moe_mpi_dispatch_counts (which sizes the received
    buffers) and moe_mpi_dispatch_rows; moe.all_to_all_combine becomes
    moe_mpi_combine_rows. The functions are only declared (the module links
    against libmoe_runtime_mpi at run time), the placement tables become
    constant globals, and a failed exchange records MOE_ERR_EXCHANGE in the
    status slot. Runs after moe-lower-grouped-experts and before
    moe-lower-combine (the exchanges' operands and results are bridged
    buffers by then).
  }];
  let dependentDialects = ["arith::ArithDialect", "func::FuncDialect",
                           "memref::MemRefDialect", "LLVM::LLVMDialect"];
}

#endif // MOE_CONVERSION_PASSES_TD
