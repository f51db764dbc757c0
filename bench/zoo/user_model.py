"""A user's own ESPnet ASR model as an ad-hoc card: an exp dir, a .pth in one, or a packed zip.

What `--model PATH` accepts:
  - an ESPnet exp dir holding config.yaml and a checkpoint .pth (when there are several,
    model.pth, valid.acc.ave.pth, valid.acc.ave_*.pth, valid.acc.best.pth, valid.loss.ave*.pth,
    valid.loss.best.pth are tried in that order; checkpoint.pth is training state, never used);
  - a .pth file in such a dir (config.yaml beside it): picks one checkpoint among several;
  - a model zip as espnet_model_zoo packs it (meta.yaml naming the config and the model, or
    a single ASR config.yaml with a .pth beside it), or an unpacked one (a dir with meta.yaml).

The files the config names (token_list, bpemodel, normalize_conf.stats_file) are paths relative
to the recipe dir, e.g. exp/asr_stats/train/feats_stats.npz. In an exp dir they are looked up
from the exp dir, its parent and the recipe dir (its grandparent), then by path suffix under
the exp dir; in a zip, by the longest matching path suffix inside the pack.
token_list may also be the list itself, as ESPnet writes it into config.yaml.

Locating reads no torch; `build_user_exp` copies the model into the harness's exp layout
(config.yaml with tokens.txt / bpe.model / feats_stats.npz beside it, model.pth), so the
artifact cache, the exporter and every variant treat it like a built-in card.
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from bench.zoo.cards import Card, CardError
from bench.zoo.exp_dir import asr_task, default_args, namespace, resolved_config
from bench.zoo.model_family import is_ctc_only, refusal

TASK = "asr"  # the only task a user's model can be so far
TIER = "user"
WEIGHTS_PREFIX = "user:"
# ESPnet's inference defaults, except a smaller beam (as the built-in cards) for benchmark time;
# maxlenratio 0 caps hypotheses at the encoder length, which ESPnet's CTC scorer needs;
# recordings over 30 s are decoded in windows (bench/runtime/long_form.py), as the cards do
DEFAULT_DECODE = {"beam_size": 10, "ctc_weight": 0.3, "penalty": 0.0, "maxlenratio": 0.0,
                  "minlenratio": 0.0, "segment_seconds": 30}
CHECKPOINT_ORDER = ("model.pth", "valid.acc.ave.pth", "valid.acc.ave_*.pth", "valid.acc.best.pth",
                    "valid.loss.ave.pth", "valid.loss.ave_*.pth", "valid.loss.best.pth")
NOT_A_MODEL = ("checkpoint.pth",)  # ESPnet's resumable training state (optimizer and all)
# A CTC-only model (no decoder) decodes with CTC alone and beam 1, as ESPnet's CTC-only
# LibriSpeech-100 recipe does (decode_ctc_bs1.yaml): CTC then scores every token of the
# vocabulary at each step, for each hypothesis
CTC_ONLY_DECODE = {**DEFAULT_DECODE, "ctc_weight": 1.0, "beam_size": 1}
# A transducer decodes with ESPnet's default transducer search, as its LibriSpeech recipes do
# (decode_transducer.yaml: beam 10, search_type default, score_norm true)
TRANSDUCER_DECODE = {**DEFAULT_DECODE, "transducer_conf": {"search_type": "default", "score_norm": True}}


# a trained model's agreement with PyTorch on real speech is reported beside the eval set's
REAL_SPEECH = "real-speech/librispeech"


@dataclass(frozen=True)
class Ref:
    """One file of the user's model: a path on disk, or a member of a zip."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def read_bytes(self) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        with zipfile.ZipFile(self.path) as zf:
            return zf.read(self.member)

    def sha256(self) -> str:
        h = hashlib.sha256()
        if self.member is None:
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


@dataclass
class Located:
    """The user's model, found: its config and the files it needs, not yet read."""

    source: Path
    config_ref: Ref
    checkpoint: Ref
    config: dict
    tokens: list[str]
    files: dict[str, Ref] = field(default_factory=dict)  # 'bpemodel', 'stats_file'

    def ctc_only(self) -> bool:
        return is_ctc_only(self.config)

    def sample_rate(self) -> int:
        from bench.data.sets import SAMPLE_RATE, parse_rate

        fs = (self.config.get("frontend_conf") or {}).get("fs", SAMPLE_RATE)
        try:
            return parse_rate(fs)
        except ValueError:
            raise CardError(f"{self.config_ref}: frontend_conf.fs is {fs!r}, not a sample rate") from None

    def digest(self) -> str:
        """Hash of what makes the model: config and file contents, never where they lie.

        Path fields are replaced by their contents' hashes, so the same model as an exp dir,
        a zip or a moved copy hashes the same.
        """
        cfg = dict(self.config, token_list=self.tokens)
        if "bpemodel" in self.files:
            cfg["bpemodel"] = self.files["bpemodel"].sha256()
        if "stats_file" in self.files:
            cfg["normalize_conf"] = dict(cfg["normalize_conf"], stats_file=self.files["stats_file"].sha256())
        blob = json.dumps({"config": cfg, "checkpoint": self.checkpoint.sha256()},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


class UserCard(Card):
    """A card whose cache key comes from the model's content, not from its path."""

    def content_hash(self) -> str:
        model = {k: v for k, v in self.model.items() if k != "weights"}
        blob = json.dumps({"task": self.task, "model": model, "decode": self.decode}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def user_card(path: str | os.PathLike, decode: dict | None = None) -> UserCard:
    """The ad-hoc card of a user's model. A model that cannot be used still gives a card:
    its cases then report the precise error (as `error`), and the other cases run."""
    p = Path(path).expanduser().resolve()
    model = {"weights": WEIGHTS_PREFIX + str(p), "sha256": None, "fs": None}
    default = DEFAULT_DECODE
    try:
        loc = locate(p)
        model.update(sha256=loc.digest(), fs=loc.sample_rate())
        default = CTC_ONLY_DECODE if loc.ctc_only() else \
            TRANSDUCER_DECODE if loc.config.get("decoder") == "transducer" else DEFAULT_DECODE
    except (ValueError, OSError, zipfile.BadZipFile):  # CardError is a ValueError
        pass  # raised again, with its message, when the case builds the artifact
    name = p.parent.name if p.suffix == ".pth" else p.stem if p.suffix == ".zip" else p.name
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return UserCard(name=f"user-{slug}", task=TASK, tier=TIER, model=model,
                    decode=dict(decode or default), data={"real_speech": REAL_SPEECH}, source=str(p),
                    description=f"your model at {p}", path=str(p))


# -- locating the config, the checkpoint and the files the config names ------------------------

def locate(path: Path) -> Located:
    p = Path(path)
    if not p.exists():
        raise CardError(f"{p}: model not found (expected an ESPnet exp dir, a .pth in one, "
                        "or a packed model zip)")
    if p.is_file() and p.suffix == ".pth":
        cfg = p.parent / "config.yaml"
        if not cfg.is_file():
            raise CardError(f"{p}: no config.yaml beside this checkpoint (in {p.parent})")
        return _finish(p, Ref(cfg), Ref(p), _dir_finder(p.parent))
    if p.is_dir():
        return _locate_dir(p)
    if zipfile.is_zipfile(p):
        return _locate_zip(p)
    raise CardError(f"{p}: not an exp dir, a .pth file or a zip file")


def _locate_dir(d: Path) -> Located:
    if (d / "config.yaml").is_file():
        pths = sorted(f.name for f in d.glob("*.pth") if f.is_file())
        ckpt = _choose_checkpoint(d, pths)
        return _finish(d, Ref(d / "config.yaml"), Ref(d / ckpt), _dir_finder(d))
    if (d / "meta.yaml").is_file():  # an unpacked model pack
        cfg, ckpt = _from_meta(Ref(d / "meta.yaml"), _walk(d))
        return _finish(d, Ref(d / cfg), Ref(d / ckpt), _dir_finder(d / cfg.rpartition("/")[0], d))
    raise CardError(f"{d}: no config.yaml in this directory (an ESPnet exp dir holds "
                    "config.yaml and the model .pth)")


def _locate_zip(z: Path) -> Located:
    with zipfile.ZipFile(z) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    metas = [n for n in names if PurePosixPath(n).name == "meta.yaml"]
    if metas:
        cfg, ckpt = _from_meta(Ref(z, min(metas, key=len)), names)
    else:
        configs = [n for n in names if PurePosixPath(n).name == "config.yaml"]
        if not configs:
            raise CardError(f"{z}: no config.yaml in the pack (an ESPnet model pack holds the "
                            "training config.yaml and the model .pth)")
        pairs = []
        for c in configs:
            folder = c.rpartition("/")[0]
            pths = [n.rpartition("/")[2] for n in names
                    if n.endswith(".pth") and n.rpartition("/")[0] == folder]
            cfg_doc = _load_yaml(Ref(z, c))
            if pths and "encoder" in cfg_doc:  # an ASR model, not an LM packed beside it
                pairs.append((c, folder, pths))
        if len(pairs) != 1:
            what = "no" if not pairs else f"{len(pairs)}"
            raise CardError(f"{z}: {what} ASR config.yaml with a .pth beside it in the pack "
                            f"(config.yaml files: {configs[:5]})")
        cfg, folder, pths = pairs[0]
        ckpt = (folder + "/" if folder else "") + _choose_checkpoint(Ref(z, folder or "."), pths)
    return _finish(z, Ref(z, cfg), Ref(z, ckpt), _zip_finder(z, names))


def _from_meta(meta: Ref, names: list[str]) -> tuple[str, str]:
    """(config, model) as espnet_model_zoo's meta.yaml names them, relative to meta.yaml."""
    doc = _load_yaml(meta)
    base = (meta.member or "").rpartition("/")[0]  # a pack zipped again under a folder
    found = []
    for group, key in (("yaml_files", "asr_train_config"), ("files", "asr_model_file")):
        rel = (doc.get(group) or {}).get(key)
        if not rel:
            raise CardError(f"{meta}: {group}.{key} is not set (not an ASR model pack?)")
        name = f"{base}/{rel}" if base else rel
        if name not in names:
            raise CardError(f"{meta}: {group}.{key} is {rel!r}, which is not in {meta.path}")
        found.append(name)
    return found[0], found[1]


def _choose_checkpoint(where, pths: list[str]) -> str:
    cands = [n for n in pths if n not in NOT_A_MODEL]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise CardError(f"{where}: no model .pth beside config.yaml"
                        + (f" (only {pths}, which is training state)" if pths else ""))
    for pattern in CHECKPOINT_ORDER:
        hits = sorted(fnmatch.filter(cands, pattern))
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise CardError(f"{where}: several checkpoints match {pattern!r} ({hits}); "
                            "point --model at the .pth you mean")
    raise CardError(f"{where}: several .pth files ({sorted(cands)[:6]}) and none of "
                    f"{list(CHECKPOINT_ORDER)}; point --model at the .pth you mean")


def _load_yaml(ref: Ref) -> dict:
    try:
        doc = yaml.safe_load(ref.read_bytes())
    except yaml.YAMLError as e:
        raise CardError(f"{ref}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise CardError(f"{ref}: expected a mapping, got {type(doc).__name__}")
    return doc


def _walk(root: Path) -> list[str]:
    out = []
    for folder, _, files in os.walk(root):
        rel = Path(folder).relative_to(root).as_posix()
        out += [f if rel == "." else f"{rel}/{f}" for f in files]
    return out


def _suffix_matches(rel: str, names: list[str]) -> list[str]:
    """The names sharing the longest run of trailing path parts with `rel` (at least the file name)."""
    want = [part for part in PurePosixPath(rel.replace("\\", "/")).parts if part not in ("/", ".")]
    best, hits = 0, []
    for n in names:
        parts = PurePosixPath(n).parts
        k = 0
        while k < min(len(want), len(parts)) and want[-1 - k] == parts[-1 - k]:
            k += 1
        if k and k > best:
            best, hits = k, [n]
        elif k and k == best:
            hits.append(n)
    return hits


def _dir_finder(exp_dir: Path, root: Path | None = None):
    """Config paths in an exp dir: relative to the exp dir, its parent or the recipe dir, then by
    suffix. Not the working directory: `bench run` runs pytest in the repository."""
    exp_dir = Path(exp_dir)
    root = Path(root or exp_dir)
    bases = [exp_dir, exp_dir.parent, exp_dir.parent.parent] if root == exp_dir else [root]

    def find(rel: str, what: str, cfg_ref: Ref) -> Ref:
        if os.path.isabs(rel) and Path(rel).is_file():
            return Ref(Path(rel))
        for base in bases:
            if (base / rel).is_file():
                return Ref(base / rel)
        hits = _suffix_matches(rel, _walk(root))
        if len(hits) == 1:
            return Ref(root / hits[0])
        if hits:
            raise CardError(f"{cfg_ref}: {what} {rel!r} matches several files under {root}: {hits[:5]}")
        raise CardError(f"{cfg_ref}: {what} {rel!r} not found (looked relative to "
                        f"{', '.join(str(b) for b in dict.fromkeys(bases))} and under {root})")
    return find


def _zip_finder(z: Path, names: list[str]):
    def find(rel: str, what: str, cfg_ref: Ref) -> Ref:
        hits = _suffix_matches(rel, names)
        if len(hits) == 1:
            return Ref(z, hits[0])
        if hits:
            raise CardError(f"{cfg_ref}: {what} {rel!r} matches several files in the pack: {hits[:5]}")
        raise CardError(f"{cfg_ref}: {what} {rel!r} is not in the pack {z}")
    return find


def _finish(source: Path, cfg_ref: Ref, ckpt: Ref, find) -> Located:
    cfg = _load_yaml(cfg_ref)
    _check_exportable(cfg, cfg_ref)
    files: dict[str, Ref] = {}
    tokens = cfg.get("token_list")
    if isinstance(tokens, str):
        tok_ref = find(tokens, "token_list", cfg_ref)
        try:
            tokens = [t.rstrip() for t in tok_ref.read_bytes().decode("utf-8").splitlines() if t.strip()]
        except UnicodeDecodeError as e:
            raise CardError(f"{tok_ref}: token list is not valid UTF-8 ({e.reason})") from None
    if not isinstance(tokens, list) or not tokens:
        raise CardError(f"{cfg_ref}: token_list must be a file or a non-empty list of tokens")
    if cfg.get("token_type") == "bpe":
        if not cfg.get("bpemodel"):
            raise CardError(f"{cfg_ref}: token_type is bpe but bpemodel is not set")
        files["bpemodel"] = find(cfg["bpemodel"], "bpemodel", cfg_ref)
    if cfg.get("normalize") == "global_mvn":
        stats = (cfg.get("normalize_conf") or {}).get("stats_file")
        if not stats:
            raise CardError(f"{cfg_ref}: normalize is global_mvn but normalize_conf.stats_file is not set")
        files["stats_file"] = find(stats, "normalize_conf.stats_file", cfg_ref)
    return Located(source, cfg_ref, ckpt, cfg, [str(t) for t in tokens], files)


def _check_exportable(cfg: dict, cfg_ref: Ref) -> None:
    """Refuse, by name, what the exporter does not reproduce, rather than export it wrongly."""
    reason = refusal(cfg, TASK)
    if reason:
        raise CardError(f"{cfg_ref}: {reason}")


# -- copying the model into the harness's exp layout --------------------------------------------

def build_user_exp(card: Card, exp_dir: Path) -> Path:
    """Write the user's model as an exp dir like a built-in card's (the build.py hook)."""
    import torch

    loc = locate(Path(card.model["weights"][len(WEIGHTS_PREFIX):]))
    if loc.digest() != card.model.get("sha256"):
        raise CardError(f"{loc.source}: the model changed since this run read it; run again")
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "tokens.txt").write_text("\n".join(loc.tokens) + "\n", encoding="utf-8")
    args = default_args()  # fields a config from another ESPnet version may lack
    args.update(loc.config)
    args.update(token_list="tokens.txt", bpemodel=None, output_dir=None)
    if "bpemodel" in loc.files:
        (exp_dir / "bpe.model").write_bytes(loc.files["bpemodel"].read_bytes())
        args["bpemodel"] = "bpe.model"
    if "stats_file" in loc.files:
        (exp_dir / "feats_stats.npz").write_bytes(loc.files["stats_file"].read_bytes())
        args["normalize_conf"] = {**(args.get("normalize_conf") or {}), "stats_file": "feats_stats.npz"}
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(args, sort_keys=False))

    try:
        state = torch.load(io.BytesIO(loc.checkpoint.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt file
        raise CardError(f"{loc.checkpoint}: checkpoint is unreadable or corrupt "
                        f"({type(e).__name__}: {e})") from e
    for wrapper in ("module", "model"):  # DeepSpeed / trainer-state wrappings of the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CardError(f"{loc.checkpoint}: not a state dict ({type(state).__name__})")
    with resolved_config(exp_dir) as cfg:
        model = asr_task().build_model(namespace(cfg))
    try:
        # ESPnet's own loader is non-strict too; missing weights, though, would benchmark
        # a partly random model, so those are an error
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CardError(f"{loc.checkpoint}: does not fit {loc.config_ref}: {e}") from e
    if missing:
        raise CardError(f"{loc.checkpoint}: does not fit {loc.config_ref}: {len(missing)} weights "
                        f"missing, e.g. {missing[:5]}")
    torch.save(model.state_dict(), exp_dir / "model.pth")
    (exp_dir / "user_model.json").write_text(json.dumps({
        "source": str(loc.source), "config": str(loc.config_ref), "checkpoint": str(loc.checkpoint),
        "files": {k: str(v) for k, v in loc.files.items()}, "sha256": card.model["sha256"],
        "ignored_checkpoint_keys": list(unexpected)}, indent=2))
    return exp_dir
