"""Every layer of examples/*.mlir written with the moec builder.

With the default sizes each function builds exactly the IR of its example
(test_builder.py checks it); the tests pass smaller sizes to run fast.
"""

import moec


def mixtral(H=64, E=8, I=128, k=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "swiglu", experts=E)
    routing = L.topk_router(x, gate, k=k, renormalize=True)
    experts = L.ffn_experts("swiglu", **w)
    L.output(L.layer(x, routing, experts))
    return L


def deepseek(H=64, E=16, I=32, S=2, SI=64, k=4, groups=4, topk_groups=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    bias = L.weight("bias", (E,))
    w = L.ffn_weights(I, "swiglu", experts=E)
    s = L.ffn_weights(SI, "swiglu", experts=S, prefix="s")
    routing = L.grouped_topk_router(x, gate, k=k, num_groups=groups, topk_groups=topk_groups,
                                    scoring="sigmoid", bias=bias, renormalize=True,
                                    scaling_factor=2.5)
    routed = L.ffn_experts("swiglu", **w, name="routed")
    shared = L.ffn_experts("swiglu", **s, name="shared")
    L.output(L.layer(x, routing, routed, shared=[shared]))
    return L


def moepp(H=64, F=4, I=128, C=2, k=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (F + 2 + C, H))
    w = L.ffn_weights(I, "swiglu", experts=F)
    consts = L.weight("consts", (C, H))
    routing = L.topk_router(x, gate, k=k)
    ffn = L.ffn_experts("swiglu", **w, name="ffn")
    zero = L.zero_experts(1)
    copy = L.copy_experts(1)
    const = L.const_experts(consts)
    L.output(L.layer(x, routing, [ffn, zero, copy, const]))
    return L


def adamoe(H=64, E=6, N=4, I=96, threshold=0.6, max_k=4):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E + N, H))
    w = L.ffn_weights(I, "swiglu", experts=E)
    routing = L.topp_router(x, gate, threshold=threshold, max_k=max_k)
    ffn = L.ffn_experts("swiglu", **w, name="ffn")
    null = L.zero_experts(N, name="null")
    L.output(L.layer(x, routing, [ffn, null]))
    return L


def remoe(H=64, E_small=4, I_small=32, E_big=4, I_big=128):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E_small + E_big, H))
    s = L.ffn_weights(I_small, "swiglu", experts=E_small, prefix="s")
    b = L.ffn_weights(I_big, "swiglu", experts=E_big, prefix="b")
    routing = L.relu_router(x, gate)
    small = L.ffn_experts("swiglu", **s, name="small")
    big = L.ffn_experts("swiglu", **b, name="big")
    L.output(L.layer(x, routing, [small, big]))
    return L


def expert_choice(H=64, E=8, I=128, capacity=4):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "swiglu", experts=E)
    routing = L.expert_choice_router(x, gate, capacity=capacity)
    experts = L.ffn_experts("swiglu", **w)
    L.output(L.layer(x, routing, experts))
    return L


def hash_layer(H=64, E=8, I=128, token_dtype="i32"):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    tok = L.input("token_ids", (None,), token_dtype, random_range=(0, 32000))
    w = L.ffn_weights(I, "swiglu", experts=E)
    routing = L.hash_router(tok, num_experts=E)
    experts = L.ffn_experts("swiglu", **w)
    L.output(L.layer(x, routing, experts))
    return L


def switch_capacity(H=64, E=8, I=128, capacity_factor=1.0, k=1):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "gelu", experts=E)
    routing0 = L.topk_router(x, gate, k=k, name="ids0")
    routing = L.capacity_drop(routing0, num_experts=E, capacity_factor=capacity_factor)
    experts = L.ffn_experts("gelu", **w)
    L.output(L.layer(x, routing, experts))
    return L


def capacity_reroute(H=64, E=8, I=128, capacity_factor=1.0, k=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "swiglu", experts=E)
    routing0 = L.topk_router(x, gate, k=k, renormalize=True, name="ids0")
    scores = L.router_scores(x, gate)
    routing = L.capacity_reroute(routing0, scores, capacity_factor=capacity_factor)
    experts = L.ffn_experts("swiglu", **w)
    L.output(L.layer(x, routing, experts))
    return L


def compressed_experts(H=64, E=8, I=128, IC=16, keep=1, k=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "swiglu", experts=E)
    c = L.ffn_weights(IC, "swiglu", experts=E, prefix="c")
    routing0 = L.topk_router(x, gate, k=k, renormalize=True, name="ids0")
    routing = L.compress_slots(routing0, keep=keep, compressed=list(range(E)))
    full = L.ffn_experts("swiglu", **w, name="full")
    small = L.ffn_experts("swiglu", **c, name="small")
    L.output(L.layer(x, routing, [full, small]))
    return L


def mixlora(H=64, E=4, I=128, r=8, alpha=16.0, k=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    gate = L.weight("gate", (E, H))
    w = L.lora_weights(I, r, E, "swiglu")
    routing = L.topk_router(x, gate, k=k, renormalize=True)
    lora = L.lora_experts("swiglu", **w, alpha=alpha)
    L.output(L.layer(x, routing, lora))
    return L


def mod(H=64, E=4, I=128, fraction=0.5):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    router = L.weight("router", (H,))
    gate = L.weight("gate", (E, H))
    w = L.ffn_weights(I, "swiglu", experts=E)

    def block(r, xs):
        routing = r.topk_router(xs, gate, k=2, renormalize=True)
        e = r.ffn_experts("swiglu", **w, name="e")
        return r.layer(xs, routing, e, name="f")

    L.output(L.skip_block(x, router, block, capacity_fraction=fraction, scale_by_score=True))
    return L


def threshold_skip(H=64, I=128, threshold=0.25):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    router = L.weight("router", (H,))
    w = L.ffn_weights(I, "swiglu")
    L.output(L.skip_block(x, router, lambda r, xs: r.ffn(xs, "swiglu", **w),
                          threshold=threshold))
    return L


def duo(H=64, I_small=32, I_big=128, layers=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    params = []
    for n in range(layers):
        r = L.weight(f"r{n}", (3, H))
        s = L.ffn_weights(I_small, "swiglu", prefix=f"s{n}_")
        b = L.ffn_weights(I_big, "swiglu", prefix=f"b{n}_")
        params.append((r, s, b))
    h = x
    for r, s, b in params:
        paths = L.path_router(h, r, name="p")
        h = L.path_select(h, paths, [lambda rb, xs, s=s: rb.ffn(xs, "swiglu", **s),
                                     lambda rb, xs, b=b: rb.ffn(xs, "swiglu", **b)])
    L.output(h)
    return L


def oracle(H=64, E=8, I=128, K=2):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    ids = L.input("ids", (None, K), "i32", random_range=(-1, E))
    w = L.input("w", (None, K), "f32")
    ww = L.ffn_weights(I, "swiglu", experts=E)
    experts = L.ffn_experts("swiglu", **ww)
    L.output(L.layer(x, (ids, w), experts))
    return L


def stack(H=32, I=64):
    """Four layers in one function (examples/stack.mlir)."""
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    g1 = L.weight("g1", (4, H))
    a = L.ffn_weights(I, "swiglu", experts=4, prefix="a_")
    g2, bias = L.weight("g2", (8, H)), L.weight("bias", (8,))
    b = L.ffn_weights(I, "swiglu", experts=8, prefix="b_")
    s = L.ffn_weights(I, "swiglu", experts=1, prefix="s_")
    g3 = L.weight("g3", (5, H))
    c1, _c3, c2 = L.weight("c1", (3, I, H)), L.weight("c3", (3, I, H)), L.weight("c2", (3, H, I))
    r, g4 = L.weight("r", (H,)), L.weight("g4", (4, H))
    d = L.ffn_weights(I, "relu", experts=4, prefix="d_")

    # 1. Mixtral-like, added to the residual: a skip block that selects every token.
    r1 = L.topk_router(x, g1, k=2, renormalize=True, name="i1")
    e1 = L.ffn_experts("swiglu", **a, name="e1")
    h1 = L.skip_block(x, r, lambda rb, xs: rb.layer(xs, r1, e1, name="l"), threshold=-1e30,
                      name="h1")
    # 2. DeepSeek-like with a shared expert.
    r2 = L.grouped_topk_router(h1, g2, k=2, num_groups=4, topk_groups=2, scoring="sigmoid",
                               bias=bias, renormalize=True, name="i2")
    e2 = L.ffn_experts("swiglu", **b, name="e2")
    sh = L.ffn_experts("swiglu", **s, name="sh")
    y2 = L.layer(h1, r2, e2, shared=[sh], name="y2")
    # 3. top-p over FFN + null + copy experts.
    r3 = L.topp_router(y2, g3, threshold=0.5, max_k=3, name="i3")
    e3 = L.ffn_experts("gelu", w1=c1, w2=c2, name="e3")
    y3 = L.layer(y2, r3, [e3, L.zero_experts(1, name="null"), L.copy_experts(1)], name="y3")

    # 4. Mixture-of-Depths around a ReLU-routed layer.
    def block(rb, xs):
        return rb.layer(xs, rb.relu_router(xs, g4, name="i4"),
                        rb.ffn_experts("relu", **d, name="e4"), name="f")
    L.output(L.skip_block(y3, r, block, capacity_fraction=0.5, scale_by_score=True, name="y4"))
    return L


def skipdecode(H=64, E=4, I=64, layers=4, max_exit=4, min_exit=1, decay_positions=64):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    pos = L.input("positions", (None,), "i32", random_range=(0, 128))
    params = [(L.weight(f"g{n}", (E, H)), L.ffn_weights(I, "swiglu", experts=E, prefix=f"l{n}_"))
              for n in range(layers)]
    exits = L.exit_layers(pos, max_exit=max_exit, min_exit=min_exit,
                          decay_positions=decay_positions, name="exits")
    h = x
    for n, (gate, w) in enumerate(params):
        def block(rb, xs, gate=gate, w=w):
            routing = rb.topk_router(xs, gate, k=2, renormalize=True, name="r")
            return rb.layer(xs, routing, rb.ffn_experts("swiglu", **w, name="e"), name="f")
        h = L.path_select(h, L.exit_paths(exits, n, name="p"), [block], name="h")
    L.output(h)
    return L


def act(H=64, E=4, I=64, layers=4, epsilon=0.01):
    L = moec.Layer(hidden=H)
    x = L.hidden("x")
    hw = L.weight("halt_w", (layers, H))
    hb = L.weight("halt_b", (layers,))
    params = [(L.weight(f"g{n}", (E, H)), L.ffn_weights(I, "swiglu", experts=E, prefix=f"l{n}_"))
              for n in range(layers)]

    def block(rb, xs, gate, w):
        routing = rb.topk_router(xs, gate, k=2, renormalize=True, name="r")
        return rb.layer(xs, routing, rb.ffn_experts("swiglu", **w, name="e"), name="f")
    y, steps = L.halting_stack(x, hw, hb, [lambda rb, xs, p=p: block(rb, xs, *p) for p in params],
                               epsilon=epsilon)
    L.output(y, steps)
    return L


#: example file stem -> builder function
EXAMPLES = {
    "mixtral": mixtral, "deepseek": deepseek, "moepp": moepp, "adamoe": adamoe,
    "remoe": remoe, "expert_choice": expert_choice, "hash": hash_layer,
    "switch_capacity": switch_capacity, "capacity_reroute": capacity_reroute,
    "compressed_experts": compressed_experts,
    "mixlora": mixlora, "mod": mod,
    "threshold_skip": threshold_skip, "duo": duo, "oracle": oracle, "stack": stack,
    "skipdecode": skipdecode, "act": act,
}
