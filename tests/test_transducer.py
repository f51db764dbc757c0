"""The transducer family: bench.runtime.transducer_search gives ESPnet's BeamSearchTransducer
hypothesis (labels and score) on the same encoder output, greedy and the default search; and the
family's export (encoder, prediction and joint step graphs) decodes like Speech2Text.

The model is the transducer smoke card's (seeded random weights, its blank logit biased to
emit about as a trained model does), with that bias moved up or down in some cases, so the
searches run through frames that end at once and frames that expand labels.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("espnet2")

from bench.runtime.transducer_search import transducer_search  # noqa: E402
from bench.zoo.cards import load_card  # noqa: E402

CARD = "asr-transducer-smoke"


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory):
    from bench.zoo.build import build_exp_dir

    return build_exp_dir(load_card(CARD), tmp_path_factory.mktemp("transducer") / "exp")


@functools.lru_cache(maxsize=None)
def _model(exp_dir, blank_bias: float):
    from bench.zoo.build import load_model

    model = load_model(exp_dir)
    with torch.no_grad():
        model.joint_network.lin_out.bias[0] += blank_bias
    return model


def _espnet_search(model, beam: int, score_norm: bool):
    from espnet2.asr.transducer.beam_search_transducer import BeamSearchTransducer

    return BeamSearchTransducer(decoder=model.decoder, joint_network=model.joint_network,
                                beam_size=beam, search_type="default", score_norm=score_norm)


def _numpy_steps(model):
    """predict / joint over the torch modules, numpy in and out, as the ONNX graphs are fed."""
    def predict(yseq, state):
        h, c = (torch.from_numpy(s) for s in state)
        with torch.no_grad():
            out, (h2, c2) = model.decoder.rnn_forward(
                model.decoder.embed(torch.tensor([[yseq[-1]]])), (h, c))
        return out[0, 0].numpy(), (h2.numpy(), c2.numpy())

    def joint(enc_t, dec_out):
        with torch.no_grad():
            return torch.log_softmax(model.joint_network(torch.from_numpy(enc_t),
                                                         torch.from_numpy(dec_out)), dim=-1).numpy()
    return predict, joint


def _encode(model, seconds: float, seed: int = 0):
    wav = (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    with torch.no_grad():
        enc, _ = model.encode(torch.from_numpy(wav)[None], torch.tensor([wav.shape[0]]))
    return enc[0]


CASES = {  # name: (added to the card's blank logit bias of 1, seconds, beam, score_norm)
    "greedy-fewer-blanks-3s": (-0.5, 3.0, 1, True),
    "greedy-fewer-blanks": (-1.0, 2.0, 1, True),  # a label almost every frame
    "beam4-card": (0.0, 1.0, 4, True),
    "beam4-card-3s": (0.0, 3.0, 4, True),
    "beam10-more-blanks": (2.0, 3.0, 10, True),
    "beam4-no-norm": (0.0, 3.0, 4, False),
    # fewer blanks make the default search expand much further each frame (ESPnet's too:
    # about 4 minutes for 3 s at a bias of -3, 21 s for 1 s at -1), so a short input here
    "beam10-fewer-blanks": (-0.5, 1.0, 10, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_search_matches_espnet(case, exp_dir, torch_one_thread):
    bias, seconds, beam, norm = CASES[case]
    model = _model(exp_dir, bias)
    enc = _encode(model, seconds)
    with torch.no_grad():
        ref = _espnet_search(model, beam, norm)(enc)
    predict, joint = _numpy_steps(model)
    d = model.decoder
    zeros = np.zeros((d.dlayers, 1, d.dunits), np.float32)
    ours = transducer_search(enc.numpy(), predict, joint, (zeros, zeros), beam_size=beam,
                             vocab_size=d.odim, blank=d.blank_id, score_norm=norm)
    assert len(ref) == len(ours) == 1
    assert list(ref[0].yseq) == ours[0].yseq
    assert len(ours[0].yseq) > 1  # something was emitted
    np.testing.assert_allclose(ours[0].score, float(ref[0].score), rtol=1e-6, atol=1e-5)


def test_top_k_takes_torch_topk_order_with_ties(monkeypatch):
    """The top-k picks what a full stable sort picks: k largest, ties by lower index."""
    from bench.runtime import transducer_search
    from bench.runtime.transducer_search import _topk_desc

    monkeypatch.setattr(transducer_search, "COMPILED_TOPK_MIN", 0)  # the top-k path at any size
    rng = np.random.default_rng(0)
    for trial in range(2000):
        n = int(rng.integers(2, 40))
        x = (rng.integers(-3, 3, n) if trial % 2 else rng.standard_normal(n)).astype(np.float32)
        k = int(rng.integers(1, n + 1))
        assert _topk_desc(x, k).tolist() == np.argsort(-x, kind="stable")[:k].tolist(), (x, k)


def test_other_search_types_are_refused_by_name():
    with pytest.raises(ValueError, match="search_type 'maes' is not implemented"):
        transducer_search(np.zeros((2, 4), np.float32), None, None, None, beam_size=4,
                          vocab_size=10, search_type="maes")


def test_set_parameters_names_a_bad_element(tmp_path):
    """A card's `name[i]` must name an element of a vector the model has."""
    import dataclasses

    from bench.zoo.build import build_exp_dir
    from bench.zoo.cards import CardError

    card = load_card(CARD)
    for key, message in (("joint_network.lin_out.bias[999]", r"has shape \(31,\), not a vector with that element"),
                         ("joint_network.lin_out.weight[0]", r"has shape \(31, 80\)"),
                         ("joint_network.nothing[0]", r"names 'joint_network.nothing', which the model")):
        bad = dataclasses.replace(card, model={**card.model, "set_parameters": {key: 1.0}})
        with pytest.raises(CardError, match=message):
            build_exp_dir(bad, tmp_path / key)


def _rnnt_nll(logits: np.ndarray, labels: list[int], blank: int = 0) -> float:
    """The RNN-T loss of one utterance by the forward recursion (Graves 2012), in float64."""
    lp = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    t_len, u_len = lp.shape[0], len(labels) + 1
    alpha = np.full((t_len, u_len), -np.inf)
    alpha[0, 0] = 0.0
    for t in range(t_len):
        for u in range(u_len):
            if t:
                alpha[t, u] = np.logaddexp(alpha[t, u], alpha[t - 1, u] + lp[t - 1, u, blank])
            if u:
                alpha[t, u] = np.logaddexp(alpha[t, u], alpha[t, u - 1] + lp[t, u - 1, labels[u - 1]])
    return -(alpha[-1, -1] + lp[-1, -1, blank])


def test_transducer_training_loss_is_the_rnnt_loss():
    """The warprnnt_pytorch stand-in trains the transducer cards: ESPnet hands it the joint
    network's logits; it must give the RNN-T loss of each utterance, averaged over the batch."""
    import torch

    from bench.espnet_layout import TorchaudioRNNTLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 4, 5)) * 2
    targets = [[3, 1, 4], [2, 2]]
    t_lens, u_lens = [6, 4], [3, 2]
    padded = torch.tensor([targets[0], targets[1] + [0]], dtype=torch.int64)
    loss = TorchaudioRNNTLoss(blank=0)(torch.tensor(logits, requires_grad=True), padded,
                                       torch.tensor(t_lens), torch.tensor(u_lens))
    expected = np.mean([_rnnt_nll(logits[b, :t_lens[b], :u_lens[b] + 1], targets[b]) for b in range(2)])
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    loss.backward()  # trainable: the gradient reaches the logits


def test_training_entry_gives_espnet_the_loss(tmp_path):
    """`bench zoo train` runs ESPnet's trainer through bench.zoo.espnet_entry: the module it runs
    imports warprnnt_pytorch's RNNTLoss and gets the stand-in, with its own arguments."""
    import importlib.util
    import os
    import subprocess
    import sys

    from bench.espnet_layout import TorchaudioRNNTLoss

    loaded = sys.modules.get("warprnnt_pytorch")  # this process may hold the stand-in already
    if getattr(loaded, "RNNTLoss", None) is not TorchaudioRNNTLoss and \
            importlib.util.find_spec("warprnnt_pytorch"):
        pytest.skip("the real warprnnt_pytorch is installed: ESPnet uses it, no stand-in")
    (tmp_path / "probe_trainer.py").write_text(
        "import sys\nfrom warprnnt_pytorch import RNNTLoss\nprint(RNNTLoss.__name__, sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    out = subprocess.run([sys.executable, "-m", "bench.zoo.espnet_entry", "probe_trainer", "--a", "b"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip().splitlines()[-1] == "TorchaudioRNNTLoss ['--a', 'b']"  # after ESPnet's import notes
