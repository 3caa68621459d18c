; A three-kernel layer in real PTX, for checking the CUDA runtime on a GPU
; independently of the compiler (GpuRuntimeTest.cpp, RealGpu.*):
;   y[T,4] = 3 * x[T,4];  sum[4] = column sums of x, through a zero-filled
;   scratch accumulator (float atomics).
; Bare-pointer calling convention as in docs/gpu-launch.md: every pointer is
; one .u64 parameter, T and constants are i64. Regenerate smoke.ptx with
;   llc-22 -O2 -mtriple=nvptx64-nvidia-cuda -mcpu=sm_90 smoke.ll -o smoke.ptx
target datalayout = "e-p6:32:32-i64:64-i128:128-i256:256-v16:16-v32:32-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
declare i32 @llvm.nvvm.read.ptx.sreg.ntid.x()

define internal i64 @global_index() {
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %ctaid = call i32 @llvm.nvvm.read.ptx.sreg.ctaid.x()
  %ntid = call i32 @llvm.nvvm.read.ptx.sreg.ntid.x()
  %base = mul i32 %ctaid, %ntid
  %i = add i32 %base, %tid
  %wide = zext i32 %i to i64
  ret i64 %wide
}

; out[i] = in[i] * factor for i < tokens * cols
define ptx_kernel void @smoke_scale(ptr %in, ptr %out, i64 %tokens, i64 %cols, i64 %factor) {
entry:
  %i = call i64 @global_index()
  %n = mul i64 %tokens, %cols
  %inside = icmp ult i64 %i, %n
  br i1 %inside, label %body, label %exit
body:
  %src = getelementptr float, ptr %in, i64 %i
  %v = load float, ptr %src, align 4
  %f = sitofp i64 %factor to float
  %r = fmul float %v, %f
  %dst = getelementptr float, ptr %out, i64 %i
  store float %r, ptr %dst, align 4
  br label %exit
exit:
  ret void
}

; acc[i % cols] += in[i] for i < tokens * cols
define ptx_kernel void @smoke_accumulate(ptr %in, ptr %acc, i64 %tokens, i64 %cols) {
entry:
  %i = call i64 @global_index()
  %n = mul i64 %tokens, %cols
  %inside = icmp ult i64 %i, %n
  br i1 %inside, label %body, label %exit
body:
  %src = getelementptr float, ptr %in, i64 %i
  %v = load float, ptr %src, align 4
  %col = urem i64 %i, %cols
  %dst = getelementptr float, ptr %acc, i64 %col
  %old = atomicrmw fadd ptr %dst, float %v monotonic, align 4
  br label %exit
exit:
  ret void
}

; out[i] = acc[i] for i < cols
define ptx_kernel void @smoke_write_sum(ptr %acc, ptr %out, i64 %cols) {
entry:
  %i = call i64 @global_index()
  %inside = icmp ult i64 %i, %cols
  br i1 %inside, label %body, label %exit
body:
  %src = getelementptr float, ptr %acc, i64 %i
  %v = load float, ptr %src, align 4
  %dst = getelementptr float, ptr %out, i64 %i
  store float %v, ptr %dst, align 4
  br label %exit
exit:
  ret void
}
