"""Which model families the harness exports and decodes, read from an ESPnet training config.

The one place a family is named or refused by its config key, before anything is built: a
user's `--model` (bench/zoo/user_model.py) and `bench recipes` (bench/recipes.py) both ask here.
Adding a family is adding its name to the tuples below, once its exporter and runtime exist.
"""
from __future__ import annotations

# encoders whose full-utterance forward the encoder graph (bench/export/asr.py) reproduces
ENCODERS = ("conformer", "transformer", "e_branchformer", "branchformer")
# ours, registered with ESPnet's ASR task only (bench/zoo/conv_lower_conformer.py)
OUR_ASR_ENCODERS = ("conformer_conv_lower",)
# block-processing encoders that ESPnet decodes block by block (Speech2TextStreaming)
STREAMING_ENCODERS = ("contextual_block_transformer", "contextual_block_conformer")
ATTENTION_DECODERS = ("transformer",)  # what the one-step decoder graph handles
TRANSDUCER_RNNS = ("lstm",)
TTS_MODELS = ("fastspeech2", "vits", "jets", "joint_text2wav", "tacotron2",
              "transformer")  # bench/export/tts.py
GAN_TTS = ("vits", "jets", "joint_text2wav")  # built by ESPnet's GANTTSTask
AUTOREGRESSIVE_TTS = ("tacotron2", "transformer")  # stop token


def is_ctc_only(cfg: dict) -> bool:
    """ESPnet's ASR model drops an attention decoder when model_conf.ctc_weight is 1.0."""
    if cfg.get("decoder") == "transducer":
        return False
    try:
        return float((cfg.get("model_conf") or {}).get("ctc_weight", 0.5)) == 1.0
    except (TypeError, ValueError):
        return False


def describe(cfg: dict, task: str) -> str:
    """A short name of the family, e.g. 'conformer + transformer decoder', 'CTC-only e_branchformer'."""
    if task == "tts":
        return f"TTS {cfg.get('tts', '?')}"
    enc = cfg.get("encoder", "?")
    if enc in STREAMING_ENCODERS:
        enc += " (streaming)"
    if cfg.get("decoder") == "transducer":
        return f"{enc} transducer"
    if is_ctc_only(cfg) or cfg.get("decoder") in (None, "none"):
        return f"CTC-only {enc}"
    return f"{enc} + {cfg.get('decoder')} decoder"


def refusal(cfg: dict, task: str) -> str | None:
    """Why the harness cannot export and decode this model faithfully (naming the config key),
    or None when it can."""
    if task == "tts":
        return _tts_refusal(cfg)
    if "encoder" not in cfg:
        return "no 'encoder' field: not an ESPnet speech-to-text training config"
    if cfg.get("frontend", "default") != "default":
        return (f"frontend {cfg.get('frontend')!r} is not supported (the exporter handles ESPnet's "
                "default STFT + log-mel frontend)")
    for key in ("preencoder", "postencoder"):
        if cfg.get(key) not in (None, "none"):
            return f"{key} {cfg[key]!r} is not supported by the exporter"
    encoder = cfg.get("encoder")
    if encoder in STREAMING_ENCODERS:
        return _streaming_refusal(cfg, task)
    if encoder in OUR_ASR_ENCODERS and task != "asr":
        return f"encoder {encoder!r} (ours) is registered with ESPnet's ASR task only, not {task}"
    if encoder not in ENCODERS + OUR_ASR_ENCODERS:
        return f"encoder {encoder!r} is not supported: the exporter handles {', '.join(ENCODERS)}"
    decoder = cfg.get("decoder")
    if task == "asr" and is_ctc_only(cfg):
        return None
    if decoder in (None, "none"):
        weight = (cfg.get("model_conf") or {}).get("ctc_weight", "unset")
        return (f"no decoder, but model_conf.ctc_weight is {weight}: ESPnet builds a model without a "
                "decoder only when ctc_weight is 1.0 (CTC-only)")
    if decoder == "transducer":
        if task != "asr":
            return f"decoder 'transducer' is supported for ASR only, not {task}"
        rnn = (cfg.get("decoder_conf") or {}).get("rnn_type", "lstm")
        if rnn not in TRANSDUCER_RNNS:
            return (f"decoder_conf.rnn_type {rnn!r} is not supported: the transducer exporter "
                    "handles an LSTM prediction network")
        return None
    if decoder not in ATTENTION_DECODERS:
        return (f"decoder {decoder!r} is not supported: the exporter and the ONNX search handle "
                "CTC-only models, transducers (LSTM prediction network) and joint CTC/attention "
                f"models with a {' or '.join(ATTENTION_DECODERS)} decoder")
    return None


def _streaming_refusal(cfg: dict, task: str) -> str | None:
    """A contextual-block model: exported block by block (bench/export/streaming.py) and decoded
    as ESPnet's Speech2TextStreaming decodes it, with a transformer decoder."""
    conf = cfg.get("encoder_conf") or {}
    if conf.get("init_average", True) is False:
        return ("encoder_conf.init_average false is not supported: ESPnet's own streaming inference "
                "fails on it (the block's context vector is taken with max, which returns a tuple)")
    if cfg.get("decoder") not in ATTENTION_DECODERS:
        return (f"decoder {cfg.get('decoder')!r} with a streaming encoder is not supported: ESPnet's "
                "block-wise search runs a transformer decoder")
    return None


def _tts_refusal(cfg: dict) -> str | None:
    model = cfg.get("tts")
    if model is None:
        return "no 'tts' field: not an ESPnet TTS training config"
    if model == "tacotron2":
        # what the Tacotron 2 exporter (bench/export/tts.py) reproduces: one speaker, location
        # attention, no output activation, and a prenet without dropout (ESPnet applies it at
        # inference too, with random masks no graph can reproduce)
        conf = cfg.get("tts_conf") or {}
        if conf.get("atype", "location") != "location":
            return (f"tts_conf.atype {conf['atype']!r} is not supported: the Tacotron 2 exporter "
                    "handles location-sensitive attention")
        voices = _single_voice_refusal(conf, "Tacotron 2")
        if voices:
            return voices
        if conf.get("output_activation") is not None:
            return f"tts_conf.output_activation {conf['output_activation']!r} is not supported"
        return _prenet_dropout_refusal(conf, "dropout_rate", "prenet_layers", "Tacotron 2 prenet")
    if model == "transformer":
        return _transformer_tts_refusal(cfg.get("tts_conf") or {})
    if model in TTS_MODELS:
        return None
    kind = "an autoregressive model (stop token)" if model in AUTOREGRESSIVE_TTS else "a model"
    return (f"tts {model!r} is {kind} with no ONNX exporter yet: the exporter handles "
            f"{', '.join(TTS_MODELS)}")


def _single_voice_refusal(conf: dict, family: str) -> str | None:
    """The autoregressive exporters reproduce one speaker and language, without global style
    tokens: the key that asks for more, named."""
    for key in ("spks", "langs", "spk_embed_dim"):
        if conf.get(key) not in (None, 0, 1):
            return f"tts_conf.{key} {conf[key]!r}: multi-speaker / multi-language {family} is not exported"
    if conf.get("use_gst"):
        return f"tts_conf.use_gst: {family} with global style tokens is not exported"
    return None


def _transformer_tts_refusal(conf: dict) -> str | None:
    """What the Transformer-TTS exporter (bench/export/tts.py) reproduces: one speaker, no
    global style tokens, and a decoder prenet without dropout (it is Tacotron 2's Prenet,
    which applies dropout at inference too; the encoder prenet's and postnet's dropout are
    eval-mode modules, off at inference)."""
    voices = _single_voice_refusal(conf, "Transformer-TTS")
    if voices:
        return voices
    return _prenet_dropout_refusal(conf, "dprenet_dropout_rate", "dprenet_layers",
                                   "Transformer-TTS decoder prenet")


def _prenet_dropout_refusal(conf: dict, key: str, layers_key: str, prenet: str) -> str | None:
    """Tacotron 2's Prenet (also Transformer-TTS's decoder prenet) applies dropout at inference
    too: a rate other than 0 (ESPnet's default 0.5) is refused, naming ``key``."""
    rate = conf.get(key, 0.5)
    if conf.get(layers_key, 2) and float(rate) != 0.0:
        return (f"tts_conf.{key} {rate}: ESPnet's {prenet} applies dropout at inference too "
                "(fresh random masks every run, which no ONNX graph reproduces); a card sets it "
                "to 0.0 to compare ONNX with ESPnet")
    return None
