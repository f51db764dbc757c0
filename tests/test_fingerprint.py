"""Machine fingerprint and class: never fails, classes follow the ISA tier."""
import json

import pytest

from bench import fingerprint as F


def test_fingerprint_has_fields_and_is_json():
    fp = F.machine_fingerprint()
    for k in ("arch", "cpu", "isa", "cores", "physical_cores", "memory_gib", "gpu"):
        assert k in fp
    assert isinstance(fp["cores"], int) and fp["cores"] >= 1
    assert set(fp["isa"]) <= set(F.ISA_FLAGS.values())
    assert fp["gpu"] is None or ("name" in fp["gpu"] and "driver" in fp["gpu"])
    json.dumps(fp)
    cls = F.machine_class(fp)
    assert cls.startswith("gpu-") or cls.endswith(f"-{fp['cores']}c")


@pytest.mark.parametrize("isa, tier", [
    ([], "base"),
    (["avx2"], "avx2"),
    (["avx2", "avx512f"], "avx512"),
    (["avx2", "avx512f", "avx512_vnni", "avx_vnni"], "avx512vnni"),
    (["avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"], "amx"),
])
def test_machine_class_isa_tiers(isa, tier):
    fp = {"arch": "x86_64", "isa": isa, "cores": 2, "gpu": None}
    assert F.machine_class(fp) == f"cpu-x86_64-{tier}-2c"


def test_machine_class_gpu_slug():
    fp = {"arch": "x86_64", "isa": ["avx2"], "cores": 16,
          "gpu": {"name": "NVIDIA H100 80GB HBM3", "driver": "550.54"}}
    assert F.machine_class(fp) == "gpu-nvidia-h100-80gb-hbm3"
    assert F.machine_class(fp, use_gpu=False) == "cpu-x86_64-avx2-16c"


def test_cpuinfo_parsing(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nmodel name\t: Fake Xeon\n"
                    "flags\t\t: fpu sse avx2 avx512f avx512vnni amx_tile\n\n"
                    "processor\t: 1\nmodel name\t: Fake Xeon\nflags\t\t: fpu\n")
    real_open = open

    def fake_open(path, *a, **kw):
        return real_open(fake if path == "/proc/cpuinfo" else path, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)
    model, isa = F._cpuinfo()
    assert model == "Fake Xeon"
    assert isa == ["amx_tile", "avx2", "avx512_vnni", "avx512f"]


def test_gpu_probe_never_fails_without_nvml(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert F._gpu() is None


def test_library_versions():
    v = F.library_versions(["numpy", "definitely-not-installed-pkg-xyz"])
    assert isinstance(v["numpy"], str) and v["numpy"][0].isdigit()
    assert v["definitely-not-installed-pkg-xyz"] is None
