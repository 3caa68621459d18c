"""moec.from_config / map_layer_weights / load_layer_weights: the MoE layers
of Mixtral, Qwen3-MoE, OLMoE, DeepSeek-V2/V3 and Switch from configuration
files with the families' published field values (hidden and intermediate
sizes shrunk with overrides, noted per case) and from small safetensors
checkpoints written here with the families' tensor names, compared with the
blocks of torch_blocks.py (plain torch); errors for unknown or inconsistent
configurations. The comparisons need torch (skipped without it)."""

import json
import os
import tempfile
import unittest

import numpy as np

import moec

try:
    import torch
    import moec.torch as moec_torch
    import torch_blocks as tb
except ImportError:  # pragma: no cover - CI installs python3-torch
    torch = None

# Published values (the models' config.json), MoE fields only.
MIXTRAL_8X7B = dict(model_type="mixtral", hidden_size=4096, intermediate_size=14336,
                    num_local_experts=8, num_experts_per_tok=2, hidden_act="silu",
                    num_hidden_layers=32)
QWEN3_30B_A3B = dict(model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144,
                     moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
                     norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                     hidden_act="silu", num_hidden_layers=48)
QWEN15_MOE_A27B = dict(model_type="qwen2_moe", hidden_size=2048, moe_intermediate_size=1408,
                       shared_expert_intermediate_size=5632, num_experts=60,
                       num_experts_per_tok=4, norm_topk_prob=False, hidden_act="silu")
OLMOE_1B_7B = dict(model_type="olmoe", hidden_size=2048, intermediate_size=1024, num_experts=64,
                   num_experts_per_tok=8, norm_topk_prob=False, hidden_act="silu")
DEEPSEEK_V3 = dict(model_type="deepseek_v3", hidden_size=7168, moe_intermediate_size=2048,
                   n_routed_experts=256, num_experts_per_tok=8, n_shared_experts=1, n_group=8,
                   topk_group=4, routed_scaling_factor=2.5, norm_topk_prob=True,
                   scoring_func="sigmoid", topk_method="noaux_tc", first_k_dense_replace=3,
                   moe_layer_freq=1, hidden_act="silu")
DEEPSEEK_V2_LITE = dict(model_type="deepseek_v2", hidden_size=2048, moe_intermediate_size=1408,
                        n_routed_experts=64, num_experts_per_tok=6, n_shared_experts=2,
                        n_group=1, topk_group=1, topk_method="greedy", scoring_func="softmax",
                        norm_topk_prob=False, routed_scaling_factor=1.0,
                        first_k_dense_replace=1, moe_layer_freq=1, hidden_act="silu")
DEEPSEEK_V2 = dict(DEEPSEEK_V2_LITE, hidden_size=5120, n_routed_experts=160, n_group=8,
                   topk_group=3, topk_method="group_limited_greedy", routed_scaling_factor=16.0)
SWITCH_BASE_8 = dict(model_type="switch_transformers", d_model=768, d_ff=3072, num_experts=8,
                     expert_capacity=64, router_bias=False, feed_forward_proj="relu",
                     encoder_sparse_step=2, num_layers=12)


def rel_error(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def write_config(directory, config):
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return path


class ConfigTest(unittest.TestCase):
    def test_layers_read_from_the_fields(self):
        cases = {
            "mixtral": (MIXTRAL_8X7B, "topk_router softmax %x, %gate {k = 2, renormalize}",
                        "tensor<8x14336x4096xf32>"),
            "qwen3": (QWEN3_30B_A3B, "{k = 8, renormalize}", "tensor<128x768x2048xf32>"),
            "olmoe": (OLMOE_1B_7B, "topk_router softmax %x, %gate {k = 8}", "tensor<64x1024x2048xf32>"),
            "v3": (DEEPSEEK_V3, "grouped_topk_router sigmoid %x, %gate bias %bias {k = 8, num_groups = 8, "
                   "topk_groups = 4, renormalize, scaling_factor = 2.5 : f32}", "tensor<1x2048x7168xf32>"),
            "v2-lite": (DEEPSEEK_V2_LITE, "topk_router softmax %x, %gate {k = 6}", "tensor<1x2816x2048xf32>"),
            "switch": (SWITCH_BASE_8, "topk_router softmax %x, %gate {k = 1}", "moe.ffn_experts relu"),
        }
        for name, (config, router, weight) in cases.items():
            with self.subTest(family=name):
                text = moec.from_config(config).to_mlir()
                self.assertIn(router, text)
                self.assertIn(weight, text)
                moec.parse(text)  # verifies

    def test_config_json_path_and_overrides(self):
        with tempfile.TemporaryDirectory() as d:
            path = write_config(d, MIXTRAL_8X7B)
            for source in (path, d):
                L = moec.from_config(source, hidden_size=16, intermediate_size=32)
                self.assertEqual([v.shape for v in L.arguments][:3], [(None, 16), (8, 16), (8, 32, 16)])
                self.assertEqual(L.moe_config.k, 2)

    def test_clear_errors(self):
        cases = [
            (dict(MIXTRAL_8X7B, model_type="mixtrall"), ValueError, "unknown model_type 'mixtrall' \\(did you mean 'mixtral'\\?\\)"),
            (dict(MIXTRAL_8X7B, model_type="llama"), ValueError, "unknown model_type 'llama'; the families are mixtral, "),
            ({k: v for k, v in MIXTRAL_8X7B.items() if k != "num_local_experts"}, ValueError, "has no 'num_local_experts'"),
            (dict(MIXTRAL_8X7B, num_experts_per_tok=9), ValueError, "num_experts_per_tok=9 exceeds num_local_experts=8"),
            (dict(MIXTRAL_8X7B, hidden_act="gelu_pytorch_tanh"), ValueError, "hidden_act='gelu_pytorch_tanh' is not supported"),
            (dict(MIXTRAL_8X7B, intermediate_size=-1), ValueError, "'intermediate_size' must be positive"),
            (dict(QWEN3_30B_A3B, norm_topk_prob="yes"), ValueError, "'norm_topk_prob' must be true or false"),
            (dict(DEEPSEEK_V3, n_group=7), ValueError, "n_group=7 does not divide n_routed_experts=256"),
            (dict(DEEPSEEK_V3, topk_group=9), ValueError, "topk_group=9 exceeds n_group=8"),
            (dict(DEEPSEEK_V3, topk_group=1, num_experts_per_tok=40), ValueError, "exceeds the 32 experts"),
            (dict(DEEPSEEK_V3, scoring_func="softmax"), ValueError, "scores with sigmoid"),
            (QWEN15_MOE_A27B, NotImplementedError, "gated shared expert is missing"),
            (DEEPSEEK_V2, NotImplementedError, "group_limited_greedy.*max group score"),
            (dict(SWITCH_BASE_8, router_bias=True), NotImplementedError, "no logit bias"),
        ]
        for config, error, message in cases:
            with self.subTest(message=message):
                with self.assertRaisesRegex(error, message):
                    moec.from_config(config)
        with self.assertRaisesRegex(TypeError, "config must be a dict or the path"):
            moec.from_config(42)


def block_for(config, **sizes):
    """The plain-torch block of a family, read from the configuration fields
    here (not from moec's reading of them), with `sizes` overriding fields."""
    c = dict(config, **sizes)
    family = c["model_type"]
    h, k = c.get("hidden_size", c.get("d_model")), c.get("num_experts_per_tok", 1)
    if family == "deepseek_v3":
        block = tb.DeepSeekV3(h, c["moe_intermediate_size"], c["n_routed_experts"], k, c["n_group"],
                              c["topk_group"], c["routed_scaling_factor"], c["n_shared_experts"])
    elif family == "deepseek_v2":
        block = tb.SoftmaxTopK(h, c["moe_intermediate_size"], c["n_routed_experts"], k,
                               c["norm_topk_prob"], c["routed_scaling_factor"],
                               shared=c["moe_intermediate_size"] * c["n_shared_experts"])
    elif family == "switch_transformers":
        block = tb.SoftmaxTopK(h, c["d_ff"], c["num_experts"], 1, renormalize=False, switch=True)
    elif family == "mixtral":
        block = tb.SoftmaxTopK(h, c["intermediate_size"], c["num_local_experts"], k, True,
                               names=("w1", "w3", "w2"))
    else:  # qwen3_moe, olmoe
        inter = c["moe_intermediate_size"] if family == "qwen3_moe" else c["intermediate_size"]
        block = tb.SoftmaxTopK(h, inter, c["num_experts"], k, c["norm_topk_prob"])
    tb.randomize(block)
    if family == "deepseek_v3":
        with torch.no_grad():
            block.gate.e_score_correction_bias.mul_(0.05)
    return block


# (config, layer, overrides: sizes shrunk for speed, expert counts as published)
FAMILY_CASES = {
    "mixtral": (MIXTRAL_8X7B, 1, dict(hidden_size=32, intermediate_size=48)),
    "qwen3_moe": (QWEN3_30B_A3B, 0, dict(hidden_size=32, moe_intermediate_size=16)),
    "olmoe": (OLMOE_1B_7B, 2, dict(hidden_size=32, intermediate_size=16)),
    "deepseek_v3": (DEEPSEEK_V3, 3, dict(hidden_size=32, moe_intermediate_size=8)),
    "deepseek_v2": (DEEPSEEK_V2_LITE, 1, dict(hidden_size=32, moe_intermediate_size=8,
                                              norm_topk_prob=True, routed_scaling_factor=16.0)),
    # DeepSeek-V2 scales only weights it does not renormalize (V2's factor is 16).
    "deepseek_v2_scaled": (DEEPSEEK_V2_LITE, 1, dict(hidden_size=32, moe_intermediate_size=8,
                                                     routed_scaling_factor=16.0)),
    "switch": (SWITCH_BASE_8, 1, dict(d_model=32, d_ff=64)),
}


def layer_prefix(config, layer):
    family = config["model_type"]
    return {"mixtral": f"model.layers.{layer}.block_sparse_moe.",
            "switch_transformers": f"encoder.block.{layer}.layer.1.mlp."}.get(
                family, f"model.layers.{layer}.mlp.")


@unittest.skipIf(torch is None, "python3-torch is not installed")
class FamilyBlocksTest(unittest.TestCase):
    def check(self, block, fn, hidden, what):
        x = torch.rand(24, hidden, generator=torch.Generator().manual_seed(3)) * 2 - 1
        with torch.no_grad():
            want = block(x)
        self.assertLess(rel_error(fn(x), want), 1e-4, what)

    def test_state_dicts(self):
        for name, (config, layer, sizes) in FAMILY_CASES.items():
            with self.subTest(family=name):
                block = block_for(config, **sizes)
                state = tb.prefixed(block.state_dict(), layer_prefix(config, layer))
                module = moec_torch.MoE.from_config(config, state, layer=layer, **sizes)
                self.check(block, module, module.hidden_size, name)

    def test_checkpoints(self):
        for name, (config, layer, sizes) in FAMILY_CASES.items():
            with self.subTest(family=name), tempfile.TemporaryDirectory() as d:
                block = block_for(config, **sizes)
                config = dict(config, **sizes)
                write_config(d, config)
                state = tb.prefixed(block.state_dict(), layer_prefix(config, layer))
                tensors = {k: v.numpy() for k, v in state.items()}
                keys = sorted(tensors)  # two shards, as large checkpoints come
                moec.save_safetensors(os.path.join(d, "model-00001-of-00002.safetensors"),
                                      {k: tensors[k] for k in keys[::2]})
                moec.save_safetensors(os.path.join(d, "model-00002-of-00002.safetensors"),
                                      {k: tensors[k] for k in keys[1::2]})
                prepared = moec.load_layer_weights(d, layer=layer)
                self.check(block, prepared, config.get("hidden_size", config.get("d_model")), name)

    def test_bf16_checkpoint_is_widened(self):
        config, layer, sizes = FAMILY_CASES["mixtral"]
        block = block_for(config, **sizes).to(torch.bfloat16).float()  # weights exact in bf16
        state = tb.prefixed(block.state_dict(), layer_prefix(config, layer))
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "model.safetensors")
            moec.save_safetensors(path, {k: moec.quantize(v.numpy(), "bf16") for k, v in state.items()})
            self.assertEqual(moec.load_safetensors(path)[next(iter(state))].dtype, np.uint16)
            prepared = moec.load_layer_weights(path, dict(config, **sizes), layer=layer)
            self.check(block, prepared, 32, "bf16")


class CheckpointErrorsTest(unittest.TestCase):
    def setUp(self):
        self.config = dict(MIXTRAL_8X7B, hidden_size=8, intermediate_size=4, num_local_experts=2)
        rng = np.random.default_rng(0)
        p = "model.layers.0.block_sparse_moe."
        self.tensors = {p + "gate.weight": rng.random((2, 8), np.float32)}
        for e in range(2):
            for w, shape in (("w1", (4, 8)), ("w3", (4, 8)), ("w2", (8, 4))):
                self.tensors[p + f"experts.{e}.{w}.weight"] = rng.random(shape, np.float32)

    def test_mapping(self):
        weights = moec.map_layer_weights(self.tensors, self.config)
        self.assertEqual(list(weights), ["gate", "w1", "w3", "w2"])
        np.testing.assert_array_equal(
            weights["w2"][1], self.tensors["model.layers.0.block_sparse_moe.experts.1.w2.weight"])

    def test_errors(self):
        with self.assertRaisesRegex(KeyError, "no tensor 'model.layers.1.block_sparse_moe.gate.weight'"):
            moec.map_layer_weights(self.tensors, self.config, layer=1)
        bad = dict(self.tensors)
        bad["model.layers.0.block_sparse_moe.experts.1.w1.weight"] = np.zeros((4, 9), np.float32)
        with self.assertRaisesRegex(ValueError, r"'w1' needs \[2, 4, 8\]"):
            moec.map_layer_weights(bad, self.config)
        with self.assertRaisesRegex(ValueError, "layer 2 of this deepseek_v3 model is dense"):
            moec.map_layer_weights({}, DEEPSEEK_V3, layer=2)
        with self.assertRaisesRegex(ValueError, "encoder block 0 of this Switch model is dense"):
            moec.map_layer_weights({}, SWITCH_BASE_8, layer=0)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaisesRegex(FileNotFoundError, "no .safetensors file"):
                moec.load_layer_weights(d, self.config)


if __name__ == "__main__":
    unittest.main()
