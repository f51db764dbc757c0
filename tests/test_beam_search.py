"""The numpy beam search must give ESPnet's BatchBeamSearch n-best, token for token.

Small random-weight ESPnet ASR models are built here; ESPnet's own beam search
(built exactly as Speech2Text builds it, and once through Speech2Text itself) runs
on their encoder output, and bench.runtime.beam_search runs on the same encoder
output with the torch decoder wrapped as a numpy DecoderStep.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("espnet2")

from bench.runtime.beam_search import BeamSearchConfig, beam_search  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny ops: intra-op threads only add overhead, and on a loaded machine
    # OpenMP oversubscription makes them 100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------
# model and ESPnet side
# ---------------------------------------------------------------------------


def _train_args(n_vocab: int, encoder: str, output_size: int):
    from espnet2.tasks.asr import ASRTask

    args = ASRTask.get_parser().parse_args(["--output_dir", "/nonexistent"])
    tokens = ["<blank>", "<unk>"] + [f"t{i}" for i in range(n_vocab - 3)] + ["<sos/eos>"]
    enc_conf = dict(output_size=output_size, attention_heads=4, linear_units=128,
                    num_blocks=2, input_layer="conv2d")
    if encoder == "conformer":
        enc_conf.update(cnn_module_kernel=15, macaron_style=True,
                        pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn",
                        rel_pos_type="latest", use_cnn_module=True)
    vars(args).update(
        token_list=tokens, token_type="char", input_size=None,
        frontend="default",
        frontend_conf=dict(n_fft=512, hop_length=160, win_length=400, n_mels=80, fs=16000),
        specaug=None, normalize=None,
        encoder=encoder, encoder_conf=enc_conf,
        decoder="transformer",
        decoder_conf=dict(attention_heads=4, linear_units=128, num_blocks=2),
        model_conf=dict(ctc_weight=0.3),
    )
    return args


@functools.lru_cache(maxsize=None)
def _model(n_vocab: int, encoder: str = "transformer", blank_bias: float = 0.0):
    """Random model; blank_bias > 0 makes CTC prefer blank like a trained model
    does, so hypotheses end on their own (eos, end detection) well before T."""
    from espnet2.tasks.asr import ASRTask

    args = _train_args(n_vocab, encoder, 64 if encoder == "transformer" else 96)
    torch.manual_seed(0)
    model = ASRTask.build_model(args).eval()
    if blank_bias:
        with torch.no_grad():
            model.ctc.ctc_lo.bias[0] += blank_bias
    return model, args


@functools.lru_cache(maxsize=None)
def _encode(spec: tuple, seconds: float, seed: int = 0):
    model, _ = _model(*spec)
    rng = np.random.default_rng(seed)
    wav = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    with torch.no_grad():
        enc, _ = model.encode(torch.from_numpy(wav)[None], torch.tensor([wav.shape[0]]))
        enc = enc[0]
        ctc_logp = model.ctc.log_softmax(enc[None])[0].numpy()
    return wav, enc, ctc_logp


def _espnet_beam_search(model, beam: int, ctc_weight: float, penalty: float):
    """The BatchBeamSearch that Speech2Text builds (no LM, batch_size 1)."""
    from bench.espnet_layout import nets

    BatchBeamSearch = nets("batch_beam_search").BatchBeamSearch
    BeamSearch = nets("beam_search").BeamSearch
    CTCPrefixScorer = nets("scorers.ctc").CTCPrefixScorer
    LengthBonus = nets("scorers.length_bonus").LengthBonus

    n_vocab = len(model.token_list)
    scorers = dict(decoder=model.decoder, ctc=CTCPrefixScorer(model.ctc, model.eos),
                   length_bonus=LengthBonus(n_vocab))
    weights = dict(decoder=1.0 - ctc_weight, ctc=ctc_weight, lm=1.0, ngram=0.9,
                   length_bonus=penalty)
    bs = BeamSearch(scorers=scorers, weights=weights, beam_size=beam, vocab_size=n_vocab,
                    sos=model.sos, eos=model.eos, token_list=model.token_list,
                    pre_beam_score_key=None if ctc_weight == 1.0 else "full")
    bs.__class__ = BatchBeamSearch  # what Speech2Text does for batch_size == 1
    return bs.eval()


def _decoder_step(decoder):
    """DecoderStep over the torch decoder's forward_one_step, cache stacked."""
    from bench.espnet_layout import nets

    subsequent_mask = nets("pytorch_backend.transformer.mask").subsequent_mask

    def step(ys, cache, memory):
        n, length = ys.shape
        # ESPnet feeds x.expand(n, T, D); feed the same layout so the torch
        # decoder takes the same kernels and gives bit-identical log-probs.
        mem = torch.from_numpy(np.array(memory[0])).expand(n, *memory.shape[1:])
        layers = None if cache is None else [torch.from_numpy(c) for c in cache]
        with torch.no_grad():
            logp, new = decoder.forward_one_step(
                torch.from_numpy(ys), subsequent_mask(length).unsqueeze(0), mem,
                cache=layers)
        return logp.numpy(), np.stack([c.numpy() for c in new])

    return step


def _run_both(spec: tuple, seconds: float, cfg: BeamSearchConfig):
    model, _ = _model(*spec)
    _, enc, ctc_logp = _encode(spec, seconds)
    bs = _espnet_beam_search(model, cfg.beam_size, cfg.ctc_weight, cfg.penalty)
    with torch.no_grad():
        ref = bs(x=enc, maxlenratio=cfg.maxlenratio, minlenratio=cfg.minlenratio)
    ours = beam_search(enc.numpy(), ctc_logp, _decoder_step(model.decoder),
                       sos=model.sos, eos=model.eos, cfg=cfg)
    return ref, ours


def _assert_same(ref, ours, sos_eos: int):
    # every ended ESPnet hypothesis is <sos> tokens <eos>
    assert all(h.yseq[0] == sos_eos and h.yseq[-1] == sos_eos for h in ref)
    assert [h.yseq[1:-1].tolist() for h in ref] == [h.tokens for h in ours]
    np.testing.assert_allclose([h.score for h in ours], [float(h.score) for h in ref],
                               rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------

V50 = (50, "transformer", 0.0)
V50_BLANK = (50, "transformer", 4.0)
V80_CONFORMER = (80, "conformer", 0.0)
V80_CONFORMER_BLANK = (80, "conformer", 6.0)
V12 = (12, "transformer", 0.0)

# name: (model spec, seconds, config). Unbiased random models hardly ever pick
# eos before the end, so their maxlenratio=0 cases decode ~T steps (deep in the
# regime where CTC prefix scores saturate at logzero): keep those utterances short.
CASES = {
    # pre-beam active: int(1.5 * beam) < vocab (beam 1 pre-beams one token)
    "beam1-mlr0": (V50, 1.5, dict(beam_size=1, maxlenratio=0.0)),
    "beam10-mlr0": (V50, 1.5, dict(beam_size=10, maxlenratio=0.0)),
    "beam1-mlr-20-8s": (V50, 8.0, dict(beam_size=1, maxlenratio=-20)),
    "beam10-mlr-20-8s": (V50, 8.0, dict(beam_size=10, maxlenratio=-20)),
    # hypotheses end on their own; maxlenratio=0 stops by end detection
    "blank-beam1-mlr0-5s": (V50_BLANK, 5.0, dict(beam_size=1)),
    "blank-beam10-mlr0-5s": (V50_BLANK, 5.0, dict(beam_size=10)),
    "conformer-blank-beam10-mlr0-3s": (V80_CONFORMER_BLANK, 3.0, dict(beam_size=10)),
    "conformer-beam10-mlr0": (V80_CONFORMER, 1.0, dict(beam_size=10)),
    "conformer-beam10-mlr0.3-5s": (V80_CONFORMER, 5.0,
                                   dict(beam_size=10, maxlenratio=0.3)),
    "penalty-ctc0.5": (V50, 2.0,
                       dict(beam_size=5, ctc_weight=0.5, penalty=1.0, maxlenratio=-15)),
    # no pre-beam: int(1.5 * 10) >= 12 tokens, CTC scores the whole vocabulary
    "nopre-v12-beam10-mlr0": (V12, 1.0, dict(beam_size=10)),
    "nopre-v12-beam10-mlr-20-4s": (V12, 4.0, dict(beam_size=10, maxlenratio=-20)),
    # CTC alone (a CTC-only model, decoder weight 0): no pre-beam, every token scored
    "ctc-only-beam1-blank-5s": (V50_BLANK, 5.0, dict(beam_size=1, ctc_weight=1.0)),
    "ctc-only-beam10-blank-3s": (V50_BLANK, 3.0, dict(beam_size=10, ctc_weight=1.0)),
    "ctc-only-beam10-mlr-20-4s": (V50, 4.0, dict(beam_size=10, ctc_weight=1.0, maxlenratio=-20)),
    # minlen > maxlen: nothing ends, ESPnet retries with minlenratio - 0.1 ...
    "minlen-retry": (V50, 1.0, dict(beam_size=4, maxlenratio=-5, minlenratio=0.5)),
    # ... or gives up (empty n-best) when minlenratio < 0.1
    "minlen-empty": (V50, 1.0, dict(beam_size=4, maxlenratio=-5, minlenratio=-30)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_espnet_batch_beam_search(case):
    spec, seconds, kw = CASES[case]
    ref, ours = _run_both(spec, seconds, BeamSearchConfig(**kw))
    if case == "minlen-empty":
        assert ref == [] and ours == []
    else:
        assert len(ours) >= 1
    _assert_same(ref, ours, _model(*spec)[0].eos)


def test_matches_speech2text(tmp_path):
    """End to end through Speech2Text (config.yaml + model.pth) for the 1-best."""
    import yaml
    from espnet2.bin.asr_inference import Speech2Text

    from bench.espnet_layout import exact_search_options

    model, args = _model(*V50)
    cfg_path, pth_path = tmp_path / "config.yaml", tmp_path / "model.pth"
    cfg_path.write_text(yaml.safe_dump(vars(args)))
    torch.save(model.state_dict(), pth_path)
    s2t = Speech2Text(asr_train_config=str(cfg_path), asr_model_file=str(pth_path),
                      beam_size=10, ctc_weight=0.3, lm_weight=0.0, penalty=0.0,
                      maxlenratio=-20, minlenratio=0.0, nbest=1, device="cpu",
                      **exact_search_options(Speech2Text))
    wav, enc, ctc_logp = _encode(V50, 4.0, seed=1)
    (_, _, _, hyp), = s2t(wav)
    ours = beam_search(enc.numpy(), ctc_logp, _decoder_step(s2t.asr_model.decoder),
                       sos=model.sos, eos=model.eos,
                       cfg=BeamSearchConfig(beam_size=10, maxlenratio=-20))
    assert ours[0].tokens == hyp.yseq[1:-1].tolist()
    assert abs(ours[0].score - float(hyp.score)) <= 1e-5 * abs(float(hyp.score))


def test_prefix_longer_than_input_does_not_crash():
    """With a fixed maxlen > T + 1, ESPnet 202511's CTCPrefixScoreTH indexes r[start - 1]
    past the last frame and raises IndexError; ours scores that prefix with logzero and
    finishes. ESPnet 202611 finishes too; its lower-ranked hypotheses then differ from ours
    (seen: the 12th of 30), a forced length no card's decoding asks for, so only finishing
    is asked of either."""
    model, _ = _model(*V50)
    _, enc, ctc_logp = _encode(V50, 0.5)
    assert enc.shape[0] + 1 < 30
    bs = _espnet_beam_search(model, 10, 0.3, 0.0)
    ours = beam_search(enc.numpy(), ctc_logp, _decoder_step(model.decoder),
                       sos=model.sos, eos=model.eos,
                       cfg=BeamSearchConfig(beam_size=10, maxlenratio=-30))
    assert ours and all(np.isfinite(h.score) for h in ours)
    try:
        with torch.no_grad():
            bs(x=enc, maxlenratio=-30, minlenratio=0.0)
    except IndexError:  # ESPnet 202511
        pass


def test_module_does_not_import_torch():
    code = ("import sys; import bench.runtime.beam_search; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# The numpy recursion stands in where no C compiler is at hand: it must agree with
# ESPnet too (the compiled one runs in every test above).
NUMPY_KERNEL_CASES = ["beam10-mlr-20-8s", "conformer-blank-beam10-mlr0-3s",
                      "nopre-v12-beam10-mlr-20-4s", "ctc-only-beam10-blank-3s"]


@pytest.mark.parametrize("case", NUMPY_KERNEL_CASES)
def test_numpy_ctc_recursion_matches_espnet(case, monkeypatch):
    import bench.runtime.beam_search as bsm

    monkeypatch.setattr(bsm, "ctc_prefix", lambda *args: None)
    spec, seconds, kw = CASES[case]
    ref, ours = _run_both(spec, seconds, BeamSearchConfig(**kw))
    _assert_same(ref, ours, _model(*spec)[0].eos)
