"""Streaming (contextual block) models end to end: ESPnet's Speech2TextStreaming against our
ONNX graphs and block-wise search, fed the same chunks; the chunking and the streaming figures.

The encoder side is tested call by call in test_streaming_encoder.py, the search alone in
test_beam_search_online.py.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.data.espeak import builtin_eval_set, long_utterance
from bench.runtime.streaming import StreamCall, StreamLog, stream_chunks, stream_figures
from bench.zoo.cards import load_card

CARD = "asr-streaming-smoke"
# BENCH_STREAMING_CARDS=asr-streaming-paper runs the whole-stream agreement on other cards
CARDS = os.environ.get("BENCH_STREAMING_CARDS", CARD).split(",")


def test_chunks_are_cut_as_espnets_streaming_inference():
    # whole chunks as non-final calls, then the rest, possibly empty, as the final call
    assert stream_chunks(1500, 640) == [(0, 640, False), (640, 1280, False), (1280, 1500, True)]
    assert stream_chunks(1280, 640) == [(0, 640, False), (640, 1280, False), (1280, 1280, True)]
    # shorter than a chunk (ESPnet crashes there) or chunk 0: one final call
    assert stream_chunks(500, 640) == [(0, 500, True)]
    assert stream_chunks(5000, 0) == [(0, 5000, True)]


def _log(*calls):
    return StreamLog([StreamCall(*c) for c in calls])


def test_streaming_figures_follow_the_calls():
    # (audio_end_s, compute_s, blocks, partial_tokens, is_final)
    fast = _log((0.5, 0.01, 0, 0, False), (1.0, 0.10, 1, 0, False), (1.5, 0.2, 1, 2, False),
                (1.6, 0.05, 1, 3, True))
    slow = _log((0.5, 0.9, 1, 1, False), (1.0, 0.9, 1, 1, False), (1.2, 0.3, 0, 1, True))
    f = stream_figures([fast, slow])
    assert f["streams"] == 2 and f["calls"] == 7
    assert f["block_call_ms"]["p50"] == pytest.approx(200.0)  # of the five calls that ran a block
    assert f["final_ms"]["p50"] == pytest.approx(175.0)
    # fast: the first token shows after the call that ends at 1.5 + 0.2; slow: at 0.5 + 0.9
    assert f["first_token_audio_s"] == pytest.approx(1.0)  # median of 1.5 and 0.5
    assert f["first_token_s"] == pytest.approx((1.7 + 1.4) / 2)
    # slow's first call ends at 1.4, after the second chunk (1.0) arrived, its second at 2.3,
    # after the third (1.2); fast's third ends at 1.7, after its last chunk (1.6): 3 of 5 calls
    assert f["behind_real_time"] == pytest.approx(3 / 5)
    assert stream_figures([_log((1.0, 0.1, 0, 0, True))])["first_token_s"] is None


def test_recipe_streaming_cards_carry_the_decode_configs_chunking():
    from bench.recipes import discover
    from bench.paths import REPO_ROOT

    root = REPO_ROOT.parent / "shared" / "espnet-recipes"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    recs = {r.path.name: r for r in discover(root)}
    aishell = recs["aishell_asr1__train_asr_streaming_conformer.yaml"]
    assert aishell.refused is None and aishell.card["decode"]["sim_chunk_length"] == 512
    assert aishell.card["decode"]["disable_repetition_detection"] is True
    assert "segment_seconds" not in aishell.card["decode"]
    debug = recs["mini_an4_asr1__train_asr_streaming_debug.yaml"]
    assert debug.card["decode"]["sim_chunk_length"] == 640 and any(
        "sim_chunk_length" in n for n in debug.decode_notes)


def test_streaming_refusals_name_the_config_key():
    from bench.zoo.model_family import refusal

    cfg = dict(load_card(CARD).model["espnet"])
    assert refusal(cfg, "asr") is None
    bad = {**cfg, "encoder_conf": {**cfg["encoder_conf"], "init_average": False}}
    assert refusal(bad, "asr").startswith("encoder_conf.init_average false is not supported")
    assert refusal({**cfg, "decoder": "rnn"}, "asr").startswith("decoder 'rnn' with a streaming encoder")


def test_streaming_runtime_never_imports_torch():
    code = ("import sys, bench.runtime.onnx_streaming; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def waves():
    utts = sorted(builtin_eval_set(n=12), key=lambda u: u.wave.shape[0])
    out = [u.load(16000) for u in (utts[0], utts[6])] + [long_utterance(60).load(16000)]
    assert out[0].shape[0] <= 1.5 * 16000 and out[-1].shape[0] >= 60 * 16000
    return out


@pytest.fixture(scope="module")
def artifacts(in_shared_cache):
    from bench.artifacts import ensure_artifact

    return {name: ensure_artifact(load_card(name)) for name in dict.fromkeys(CARDS + [CARD])}


@pytest.mark.slow
@pytest.mark.parametrize("card_name", CARDS)
@pytest.mark.parametrize("variant", ["onnx", "onnx-fused"])
def test_onnx_stream_equals_espnets_streaming_inference(card_name, variant, artifacts, waves,
                                                        torch_one_thread):
    """Short, medium and 60 s inputs fed in the card's chunks: the final hypothesis, and after
    every call the number of tokens the user sees and the decoder blocks run, all equal."""
    from bench.runtime.load import load_recognizer

    card = load_card(card_name)
    ref = load_recognizer(artifacts[card_name], card.decode, "pytorch", "cpu", threads=1)
    var = load_recognizer(artifacts[card_name], card.decode, variant, "cpu", threads=1)
    for w in waves:
        want, got = ref(w), var(w)
        assert got.tokens == want.tokens
        assert [(c.blocks, c.partial_tokens) for c in var.log.calls] == \
            [(c.blocks, c.partial_tokens) for c in ref.log.calls]
    assert len(want.tokens) > 0  # the 60 s stream decodes to something: not vacuous
    assert sum(c.blocks for c in ref.log.calls) > 50


@pytest.mark.slow
def test_int8_stream_decodes_and_reports_its_figures(artifacts, waves):
    from bench.runtime.load import load_recognizer

    card = load_card(CARD)
    rec = load_recognizer(artifacts[CARD], card.decode, "onnx-int8", "cpu", threads=1)
    rec(waves[1])
    f = stream_figures([rec.log])
    assert f["calls"] == len(stream_chunks(waves[1].shape[0], card.decode["sim_chunk_length"]))
    assert f["block_call_ms"]["p50"] is not None
