"""The size study: its table (one row per size, smallest first) and when the report shows it."""
import pytest

from bench.studies import STUDIES, size_table


def _case(card, variant, speedup, params, model_mb, status="ok", roofline=None, error=None, **metrics):
    settings = {"parameters": params, **({"roofline": roofline} if roofline else {})}
    return {"task": "asr", "card": card, "variant": variant, "device": "cpu", "status": status,
            "metrics": {"speedup": speedup, "speedup_ci95": [speedup * 0.9, speedup * 1.1] if speedup else None,
                        "model_mb": model_mb, "rtf": 0.1, "agreement_ter": 0.0, **metrics},
            "settings": settings, "gate": {"verdict": "new"}, "error": error}


def _doc():
    roof = {"in_graphs": {"gflop_fp32": 3.0, "gop_int8": 0.0}, "audio_seconds": 6.0}
    cases = []
    # listed largest first: the table orders by parameters
    for card, params, mb in (("asr-conformer-paper", 30_000_000, 120.0), ("asr-conformer-micro", 500_000, 2.5)):
        cases += [_case(card, "pytorch", None, params, mb, wer=10.0),
                  _case(card, "onnx", 2.0, params, mb, roofline=roof, wer=10.0),
                  _case(card, "onnx-fused", 3.0, params, mb, wer=10.0),
                  _case(card, "onnx-int8", None, params, None, status="error", error="RuntimeError: boom")]
    return {"run": {"id": "r1", "git_commit": "abc", "machine": {"class": "cpu-test"}}, "cases": cases}


def _rows(text, card):
    return [[x.strip() for x in r.split("|")[1:-1]] for r in text.splitlines() if r.startswith(f"| {card} |")]


def test_size_table_orders_sizes_and_counts_arithmetic_per_second_of_audio():
    text = size_table([_doc()])
    summary = [r for r in text.splitlines() if r.startswith("| asr-")][:2]
    assert summary[0].startswith("| asr-conformer-micro |") and summary[1].startswith("| asr-conformer-paper |")
    micro = _rows(text, "asr-conformer-micro")[0]
    assert micro[1] == "trained" and micro[2].startswith("64-d x 2, ff 128, 2 heads")  # from the card
    assert micro[3] == "0.50" and micro[4] == "0.50"  # 0.5 M parameters; 3 GFLOP / 6 s of audio
    assert micro[6] == "2.00 [1.80, 2.20]" and micro[7] == "3.00 [2.70, 3.30]" and micro[8] == "-"
    assert _rows(text, "asr-conformer-paper")[0][1] == "random"
    detail = {r[1]: r for r in _rows(text, "asr-conformer-micro")[1:]}
    assert detail["onnx-int8"][-1] == "error: RuntimeError: boom"
    assert detail["onnx-fused"][5] == "+0.00 pt" and "r1" in text


def test_a_card_study_shows_with_three_of_its_cards_a_variant_study_with_its_variant():
    size, int8 = STUDIES["size"], STUDIES["int8"]
    default = {"pytorch", "onnx", "onnx-fused", "onnx-int8"}
    # the main job runs two of the sizes (tiny, paper): no size section there
    assert not size.appears_in(default, {"asr-conformer-tiny", "asr-conformer-paper"})
    assert size.appears_in(default, set(size.cards[:3]))
    assert not int8.appears_in(default, set(int8.cards))
    assert int8.appears_in(default | {"onnx-int8-conv"}, {"asr-conformer-tiny"})


@pytest.mark.parametrize("name", STUDIES["size"].cards)
def test_the_sizes_are_one_recipe_growing(name):
    from bench.zoo.cards import load_card

    card = load_card(name)
    esp = card.model["espnet"]
    assert (esp["encoder"], esp["decoder"], esp["normalize"]) in (("conformer", "transformer", "global_mvn"),
                                                                  ("conformer_conv_lower", "transformer", "global_mvn"))
    assert not card.main_job or name in ("asr-conformer-tiny", "asr-conformer-paper")  # main job's time stays


@pytest.mark.parametrize("name", [n for n in STUDIES["size"].cards if "convlower" in n])
def test_a_conv_lower_size_is_its_conformer_with_attention_dropped_from_the_lowest_blocks(name):
    """asr-convlower-X is asr-conformer-X but for the encoder's name and conv_only_blocks."""
    from bench.zoo.cards import load_card

    ours, theirs = (load_card(n).model["espnet"] for n in (name, name.replace("convlower", "conformer")))
    conf = dict(ours["encoder_conf"])
    assert 0 < conf.pop("conv_only_blocks") < conf["num_blocks"]
    assert (ours["encoder"], conf) == ("conformer_conv_lower", theirs["encoder_conf"])
    assert {k: v for k, v in ours.items() if not k.startswith("encoder")} == \
        {k: v for k, v in theirs.items() if not k.startswith("encoder")}


def test_size_cards_grow_in_every_axis():
    from bench.zoo.cards import load_card

    confs = [load_card(n).model["espnet"]["encoder_conf"] for n in STUDIES["size"].cards]
    for key in ("output_size", "num_blocks", "linear_units"):
        values = [c[key] for c in confs]
        assert values == sorted(values) and len(set(values)) >= 3, (key, values)
