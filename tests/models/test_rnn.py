import pytest
import torch

from models.config import ConfigError, ModelConfig
from models.rnn import RecurrentModel

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def _definition(model: RecurrentModel, x: torch.Tensor) -> dict[tuple[int, str], torch.Tensor]:
    """Every layer's states and gates by the textbook step-by-step definition (torch's docs), in float64."""
    cfg = model.cfg
    inp = model.embed.weight.detach().double()[x]                       # [T, B, E]
    H, out = cfg.hidden_size, {}
    for layer in range(cfg.layers):
        w_ih, w_hh, b_ih, b_hh = (getattr(model.rnn, f"{n}_l{layer}").detach().double()
                                  for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        h = c = torch.zeros(x.shape[1], H, dtype=torch.float64, device=x.device)
        steps = {s: [] for s in cfg.states}
        for t in range(x.shape[0]):
            gi, gh = inp[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
            if cfg.cell == "lstm":
                i, f, g, o = (gi + gh).split(H, dim=1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c = f * c + i * g
                h = o * c.tanh()
                vals = {"h": h, "c": c, "i": i, "f": f, "g": g, "o": o}
            elif cfg.cell == "gru":
                r = (gi[:, :H] + gh[:, :H]).sigmoid()
                z = (gi[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
                n = (gi[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()
                h = (1 - z) * n + z * h
                vals = {"h": h, "z": z, "r": r, "n": n}
            else:
                h = (gi + gh).tanh()
                vals = {"h": h}
            for s in cfg.states:
                steps[s].append(vals[s])
        for s in cfg.states:
            out[(layer, s)] = torch.stack(steps[s])
        inp = out[(layer, "h")]
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["loop", "fused"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [2, 3])
def test_trace_equals_the_step_by_step_definition(cell, layers, method, device):
    """Every layer's h, c and gates at every step equal the definition, and h, c the fused module's state."""
    torch.manual_seed(0)
    model = RecurrentModel(ModelConfig("lm", cell, layers, 8, 5, 0.3, 40)).eval().to(device)
    x = torch.randint(0, 40, (17, 3), device=device)
    traced = model.trace_packed(x, method=method).as_dict()
    reference = _definition(model, x)
    assert set(traced) == set(reference)
    for key, ref in reference.items():
        assert (traced[key].double() - ref).abs().max() < 1e-5, key
    state, emb = model.init_state(3), model.embed(x)
    with torch.no_grad():
        for t in range(17):
            _, state = model.rnn(emb[t:t + 1], state)                  # fused multi-layer, one step
            h = state[0] if cell == "lstm" else state
            for layer in range(layers):
                assert (traced[(layer, "h")][t] - h[layer]).abs().max() < 1e-5
                if cell == "lstm":
                    assert (traced[(layer, "c")][t] - state[1][layer]).abs().max() < 1e-5
        full, _ = model.rnn(emb)                                       # fused, whole sequence
    assert (traced[(layers - 1, "h")] - full).abs().max() < 1e-5


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fused_and_loop_traces_agree_with_deltas_tables_and_subsets(cell, device):
    """The two trace methods give the same packed values for every option the analysis uses."""
    torch.manual_seed(6)
    m = RecurrentModel(ModelConfig("lm", cell, 2, 16, 12, 0.0, 50)).eval().to(device)
    x = torch.randint(0, 50, (23, 5), device=device)
    state = m.trace_packed(x[:4]).state
    keys = [k for k in m.state_keys() if k[1] != "h"]                  # gates not adjacent to h: copies
    for kw in ({}, {"deltas": True}, {"deltas": True, "input_table": True}, {"keys": keys, "deltas": True},
               {"keys": [(1, "h")]}):                                  # layer 0: the state only (a warm-up)
        a = m.trace_packed(x, state, method="loop", **kw)
        b = m.trace_packed(x, state, method="fused", **kw)
        assert (a.values - b.values).abs().max() < 1e-5, kw
        for sa, sb in zip(a.state if cell == "lstm" else (a.state,), b.state if cell == "lstm" else (b.state,)):
            assert (sa - sb).abs().max() < 1e-5, kw
    with pytest.raises(ValueError, match="method"):
        m.trace_packed(x, method="magic")


def test_gates_reproduce_the_states():
    torch.manual_seed(1)
    lstm = RecurrentModel(ModelConfig("lm", "lstm", 2, 6, 4, 0.0, 30)).eval()
    tr = lstm.trace(torch.randint(0, 30, (9, 2)))
    for layer in range(2):
        c_prev = torch.cat([torch.zeros_like(tr[(layer, "c")][:1]), tr[(layer, "c")][:-1]])
        assert torch.allclose(tr[(layer, "c")], tr[(layer, "f")] * c_prev + tr[(layer, "i")] * tr[(layer, "g")],
                              atol=1e-6)
        assert torch.allclose(tr[(layer, "h")], tr[(layer, "o")] * tr[(layer, "c")].tanh(), atol=1e-6)
    gru = RecurrentModel(ModelConfig("lm", "gru", 1, 6, 4, 0.0, 30)).eval()
    tr = gru.trace(torch.randint(0, 30, (9, 2)))
    h_prev = torch.cat([torch.zeros_like(tr[(0, "h")][:1]), tr[(0, "h")][:-1]])
    assert torch.allclose(tr[(0, "h")], (1 - tr[(0, "z")]) * tr[(0, "n")] + tr[(0, "z")] * h_prev, atol=1e-6)


def test_trace_shapes_names_and_chunked_continuation():
    torch.manual_seed(2)
    m = RecurrentModel(ModelConfig("lm", "lstm", 2, 7, 3, 0.0, 20)).eval()
    x = torch.randint(0, 20, (12, 4))
    whole = m.trace(x)
    assert set(whole) == {(i, s) for i in range(2) for s in ("h", "c", "i", "f", "g", "o")}
    assert all(v.shape == (12, 4, 7) for v in whole.values())
    first = m.trace(x[:5])
    second = m.trace(x[5:], RecurrentModel.final_state(first, "lstm", 2))
    assert torch.allclose(torch.cat([first[(1, "h")], second[(1, "h")]]), whole[(1, "h")], atol=1e-6)


def test_classifier_uses_last_real_token():
    torch.manual_seed(3)
    m = RecurrentModel(ModelConfig("sentiment", "gru", 1, 5, 4, 0.0, 20, 2)).eval()
    x = torch.randint(3, 20, (6, 2))
    x[4:, 1] = 0                                                       # second document has 4 tokens
    logits, _ = m(x, lengths=torch.tensor([6, 4]))
    alone, _ = m(x[:4, 1:2])
    assert torch.allclose(logits[1], alone[0], atol=1e-6)


@pytest.mark.parametrize("field,value", [("hidden_size", 0), ("layers", -1), ("embed_size", 0), ("cell", "tcn"),
                                         ("dropout", 1.5)])
def test_bad_model_config(field, value):
    cfg = ModelConfig()
    setattr(cfg, field, value)
    with pytest.raises(ConfigError, match=field if field != "cell" else "cell"):
        RecurrentModel(cfg)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_trace_packed_deltas_subsets_and_reused_workspace(cell):
    """trace_packed: Δ for h/c from the given state, any ordered subset of states, a reused workspace."""
    from models.buffers import Workspace

    torch.manual_seed(4)
    m = RecurrentModel(ModelConfig("lm", cell, 2, 8, 5, 0.0, 40)).eval()
    x = torch.randint(0, 40, (11, 3))
    raw = m.trace(x)
    ws = Workspace()
    first = m.trace_packed(x[:6], deltas=True, workspace=ws)
    assert first.values.shape == (6, 3, len(m.state_keys()) * 8)
    for k in first.keys:  # from zero state: Δ at step 0 is the state itself
        prev = torch.cat([torch.zeros_like(raw[k][:1]), raw[k][:5]])
        ref = raw[k][:6] - prev if k[1] in ("h", "c") else raw[k][:6]
        assert (first[k] - ref).abs().max() < 1e-6, k
    second = m.trace_packed(x[6:], first.state, deltas=True, workspace=ws)   # overwrites `first`
    for k in second.keys:
        ref = raw[k][6:] - raw[k][5:10] if k[1] in ("h", "c") else raw[k][6:]
        assert (second[k] - ref).abs().max() < 1e-6, k
    last = m.cfg.states[-1]
    subset = [(0, "h"), (1, last)] if last != "h" else [(1, "h")]
    part = m.trace_packed(x, keys=subset)
    assert part.values.shape == (11, 3, len(subset) * 8)
    for k in subset:
        assert torch.equal(part[k], raw[k]), k
    for bad in ([(1, "h"), (0, "h")], [(0, "h"), (0, "h")], [(0, "x")], []):
        with pytest.raises(ValueError, match="state_keys"):
            m.trace_packed(x, keys=bad)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_input_table_gives_the_same_trace_and_follows_the_weights(cell):
    torch.manual_seed(5)
    m = RecurrentModel(ModelConfig("lm", cell, 2, 8, 5, 0.0, 40)).eval()
    x = torch.randint(0, 40, (9, 4))
    ref = m.trace_packed(x, deltas=True)
    fast = m.trace_packed(x, deltas=True, input_table=True)
    assert (fast.values - ref.values).abs().max() < 1e-6
    with torch.no_grad():
        m.embed.weight.mul_(2)            # a training step: the cached table must follow
        m.rnn.weight_ih_l0.mul_(0.5)
    ref = m.trace_packed(x, deltas=True)
    assert (m.trace_packed(x, deltas=True, input_table=True).values - ref.values).abs().max() < 1e-6


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("threads", [2, 3])
def test_cpu_trace_cut_into_batch_parts_equals_one_thread(cell, threads):
    """At several torch threads the CPU trace runs the batch in parts, one Python thread each
    (models.runtime.run_split): the same values, state and definition as at one thread."""
    from models.rnn import MIN_SPLIT_BATCH

    torch.manual_seed(7)
    m = RecurrentModel(ModelConfig("lm", cell, 2, 8, 5, 0.0, 40)).eval()
    B = threads * MIN_SPLIT_BATCH + 1                                   # uneven parts
    x = torch.randint(0, 40, (13, B))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = m.trace_packed(x[:4]).state
        one = m.trace_packed(x[4:], start, deltas=True, input_table=True)
        one = (one.values.clone(), one.state)
        torch.set_num_threads(threads)
        cut = m.trace_packed(x[4:], start, deltas=True, input_table=True)
        assert torch.get_num_threads() == threads                       # restored after the parts
        full = m.trace_packed(x)
    finally:
        torch.set_num_threads(old)
    assert (cut.values - one[0]).abs().max() < 1e-6
    for a, b in zip(cut.state if cell == "lstm" else (cut.state,), one[1] if cell == "lstm" else (one[1],)):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-6
    reference = _definition(m, x)
    for key, ref in reference.items():
        assert (full[key].double() - ref).abs().max() < 1e-5, key


def test_run_split_runs_nested_splits_in_order_and_restores_threads():
    from models.runtime import run_split

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inner_threads = []

        def outer(i):
            inner_threads.append(torch.get_num_threads())               # each part: one intra-op thread
            return run_split(lambda j: (i, j), 2)                        # a split inside a split: in order, here

        assert run_split(outer, 2) == [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]
        assert inner_threads == [1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
