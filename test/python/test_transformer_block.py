"""A transformer-style block around a moe.layer, in upstream ops:
y = s * (x + moe.layer(RMSNorm(x))), the RMSNorm a linalg reduction and a
linalg.generic, the residual an arith.addf on tensors and the scale an
arith.mulf by a constant splat. The moe parts lower through the moe passes,
the rest through one-shot-bufferize in the same pipeline; checked against
numpy (moe_numpy.py, float64, independent of the C++ code)."""

import unittest

import numpy as np

import moec
import moe_numpy as ref

H, I, E, K = 32, 48, 8, 2
EPS = 1e-6
SCALE = 0.5

_BLOCK = """
#tok = affine_map<(t, h) -> (t)>
#row = affine_map<(t, h) -> (t, h)>
#col = affine_map<(t, h) -> (h)>
func.func @block(%x: tensor<?x{H}xf32>, %norm: tensor<{H}xf32>, %gate: tensor<{E}x{H}xf32>,
                 %w1: tensor<{E}x{I}x{H}xf32>, %w3: tensor<{E}x{I}x{H}xf32>,
                 %w2: tensor<{E}x{H}x{I}xf32>) -> tensor<?x{H}xf32> {{
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x{H}xf32>
  %zero = arith.constant 0.0 : f32
  %sums0 = tensor.empty(%t) : tensor<?xf32>
  %sums1 = linalg.fill ins(%zero : f32) outs(%sums0 : tensor<?xf32>) -> tensor<?xf32>
  %sq = linalg.generic {{indexing_maps = [#row, #tok], iterator_types = ["parallel", "reduction"]}}
      ins(%x : tensor<?x{H}xf32>) outs(%sums1 : tensor<?xf32>) {{
  ^bb0(%a: f32, %s: f32):
    %a2 = arith.mulf %a, %a : f32
    %r = arith.addf %s, %a2 : f32
    linalg.yield %r : f32
  }} -> tensor<?xf32>
  %n0 = tensor.empty(%t) : tensor<?x{H}xf32>
  %n = linalg.generic {{indexing_maps = [#row, #tok, #col, #row],
                        iterator_types = ["parallel", "parallel"]}}
      ins(%x, %sq, %norm : tensor<?x{H}xf32>, tensor<?xf32>, tensor<{H}xf32>)
      outs(%n0 : tensor<?x{H}xf32>) {{
  ^bb0(%a: f32, %s: f32, %g: f32, %o: f32):
    %hh = arith.constant {H}.0 : f32
    %eps = arith.constant {EPS:.6e} : f32
    %m = arith.divf %s, %hh : f32
    %me = arith.addf %m, %eps : f32
    %inv = math.rsqrt %me : f32
    %y = arith.mulf %a, %inv : f32
    %z = arith.mulf %y, %g : f32
    linalg.yield %z : f32
  }} -> tensor<?x{H}xf32>
  %ids, %w = moe.topk_router softmax %n, %gate {{k = {K}, renormalize}}
      : tensor<?x{H}xf32>, tensor<{E}x{H}xf32> -> tensor<?x{K}xi32>, tensor<?x{K}xf32>
  %experts = moe.ffn_experts swiglu w1(%w1 : tensor<{E}x{I}x{H}xf32>)
      w3(%w3 : tensor<{E}x{I}x{H}xf32>) w2(%w2 : tensor<{E}x{H}x{I}xf32>) -> !moe.experts<{E}, {H}>
  %moe = moe.layer %n, %ids, %w experts(%experts : !moe.experts<{E}, {H}>)
      : tensor<?x{H}xf32>, tensor<?x{K}xi32>, tensor<?x{K}xf32> -> tensor<?x{H}xf32>
  %res = arith.addf %x, %moe : tensor<?x{H}xf32>
{scaling}
  return %out : tensor<?x{H}xf32>
}}
"""

# The scale as a splat constant broadcast over the tokens (CPU: a
# memref.global), or as a scalar constant inside a linalg.generic (the GPU
# pipelines take no tensor constants: a host global its kernels cannot read).
SCALE_BY_CONSTANT = """  %s = arith.constant dense<{SCALE}> : tensor<{H}xf32>
  %sb0 = tensor.empty(%t) : tensor<?x{H}xf32>
  %sb = linalg.broadcast ins(%s : tensor<{H}xf32>) outs(%sb0 : tensor<?x{H}xf32>) dimensions = [0]
  %out = arith.mulf %res, %sb : tensor<?x{H}xf32>"""
SCALE_IN_GENERIC = """  %o0 = tensor.empty(%t) : tensor<?x{H}xf32>
  %out = linalg.generic {{indexing_maps = [#row, #row], iterator_types = ["parallel", "parallel"]}}
      ins(%res : tensor<?x{H}xf32>) outs(%o0 : tensor<?x{H}xf32>) {{
  ^bb0(%a: f32, %o: f32):
    %sc = arith.constant {SCALE} : f32
    %z = arith.mulf %a, %sc : f32
    linalg.yield %z : f32
  }} -> tensor<?x{H}xf32>"""


def block(scaling):
    fields = dict(H=H, I=I, E=E, K=K, EPS=EPS, SCALE=SCALE)
    return _BLOCK.format(scaling=scaling.format(**fields), **fields)


BLOCK = block(SCALE_BY_CONSTANT)
BLOCK_GPU = block(SCALE_IN_GENERIC)


def rand(rng, *shape):
    a = (3.0 / shape[-1]) ** 0.5
    return rng.uniform(-a, a, size=shape).astype(np.float32)


def block_numpy(x, norm, gate, w1, w3, w2):
    xd = ref.d(x)
    ms = ref.f32((xd * xd).sum(axis=1) / H)
    n = ref.f32(xd / np.sqrt(ms + EPS)[:, None] * ref.d(norm)[None, :])
    ids, w = ref.topk_router(n.astype(np.float32), gate, K, renormalize=True)
    bank = ref.ffn_bank("swiglu", w1, w2, w3)
    moe = ref.layer(n.astype(np.float32), ids, w, [bank])
    return SCALE * (xd + moe)


class TransformerBlockTest(unittest.TestCase):
    def check(self, target, tokens):
        rng = np.random.default_rng(tokens)
        args = [rand(rng, tokens, H), (1.0 + 0.1 * rand(rng, H)).astype(np.float32),
                rand(rng, E, H), rand(rng, E, I, H), rand(rng, E, I, H), rand(rng, E, H, I)]
        fn = moec.compile(BLOCK if target == "cpu" else BLOCK_GPU, target=target)
        got = fn(*args)
        want = block_numpy(*args)
        self.assertEqual(got.shape, (tokens, H))
        self.assertLess(ref.rel_error(got, want), 1e-4, f"{target} T={tokens}")

    def test_cpu(self):
        for tokens in (1, 7, 64, 513):
            self.check("cpu", tokens)

    def test_inputs_are_not_written(self):
        # One-Shot Bufferize would put the residual add into x's buffer if
        # arguments were writable.
        rng = np.random.default_rng(3)
        args = [rand(rng, 5, H), np.ones(H, np.float32), rand(rng, E, H),
                rand(rng, E, I, H), rand(rng, E, I, H), rand(rng, E, H, I)]
        before = [a.copy() for a in args]
        moec.compile(BLOCK)(*args)
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b)

    def test_gpu_host(self):
        # The GPU's mapped stage run on the host: the linalg parts become
        # loops there too.
        for tokens in (1, 7, 64):
            self.check("gpu-host", tokens)

    def test_stages_show_bufferized_upstream_ops(self):
        fn = moec.compile(BLOCK)
        loops = fn.stage("loops")
        self.assertNotIn("tensor<", loops)
        self.assertNotIn("bufferization.to_", loops)
        self.assertNotIn("linalg.", loops)


if __name__ == "__main__":
    unittest.main()
