"""The fixed-point front-end in numpy (nas.arch.q15fft, nas.arch.fixedfe) and its integer int8 map.

- q15 FFT: the tables equal CMSIS-DSP's C tables; the transform equals the C library's SIMD-intrinsic
  version compiled on the host with nas_dsp_intrinsics.h (every length, random, saturating and tiny
  inputs) and is the DFT / n_fft up to a few LSB; the cmsisdsp wrapper runs the portable version,
  which rounds differently (recorded, not used).
- features: D / 16 dB on the float front-end's scale (tones, levels, silence), exact in float16, the
  headroom shift from whole pushes.
- the int8 map of `quantize_db16` is round-half-up of D/16 * gain + offset within one step.
(The generated C against these: tests/test_frontend_c.py.)
"""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import torch

import _cmsisdsp as cd
from nas.arch import fixedfe as X
from nas.arch import frontend as F
from nas.arch import q15fft as Q
from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import ArchSpec, FrontEnd
from nas.core import config
from nas.data import cache as fcache
from nas.export import frontend_c as fc
from nas.quant.inputq import InputQuant, fixed_map, quantize_db16

FIXED = FrontEnd(arithmetic="fixed")


def _need(fn, *args):
    try:
        return fn(*args)
    except cd.Unavailable as exc:
        pytest.skip(str(exc))


def _c_table(src: str, name: str) -> np.ndarray:
    m = re.search(r"const q15_t\s*(?:__ALIGNED\(4\))?\s*" + name + r"\[(\d+)\][^=]*=\s*\{(.*?)\};", src, re.S)
    vals = np.array([int(v, 16) for v in re.findall(r"0x([0-9A-Fa-f]+)", m.group(2))], dtype=np.int64)
    assert vals.size == int(m.group(1))
    return np.where(vals >= 32768, vals - 65536, vals)


def test_tables_are_cmsis_dsp_tables():
    src = (_need(cd.dsp_root) / "Source" / "CommonTables" / "arm_common_tables.c").read_text()
    for length in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        np.testing.assert_array_equal(Q.twiddle_q15(length).reshape(-1), _c_table(src, f"twiddleCoef_{length}_q15"))
    a, b = Q.real_coefs_q15()
    np.testing.assert_array_equal(a.reshape(-1), _c_table(src, "realCoefAQ15"))
    np.testing.assert_array_equal(b.reshape(-1), _c_table(src, "realCoefBQ15"))


def _frames(n: int, rng) -> np.ndarray:
    """Frames that reach every corner: uniform full scale, +-full scale signs, quiet noise, tones."""
    out = np.empty((8, n), np.int16)
    for f in range(8):
        kind = f % 4
        if kind == 0:
            out[f] = rng.integers(-32768, 32768, n)
        elif kind == 1:
            out[f] = np.where(rng.random(n) < 0.5, -32768, 32767)
        elif kind == 2:
            out[f] = (rng.standard_normal(n) * 30).astype(np.int16)
        else:
            out[f] = (np.sin(np.arange(n) * 0.3 * (f + 1)) * 32767).astype(np.int16)
    return out


RFFT_C = r"""
#include <stdio.h>
#include <string.h>
#include "arm_math.h"
/* argv: n; stdin: frames of n int16; stdout: bins 0..n/2-1 as (re, im) int16 per frame */
int main(int argc, char **argv) {
    uint32_t n = (uint32_t)atoi(argv[1]);
    static q15_t in[8192], out[16384];
    arm_rfft_instance_q15 s;
    if (argc != 2 || arm_rfft_init_q15(&s, n, 0, 1) != ARM_MATH_SUCCESS) return 2;
    while (fread(in, 2, n, stdin) == n) {
        arm_rfft_q15(&s, in, out);
        fwrite(out, 2, n, stdout);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def rfft_host(tmp_path_factory):
    cc = _need(cd.host_cc)
    lib = _need(cd.dsp_library, "host", FIXED)
    work = tmp_path_factory.mktemp("rfft_q15")
    (work / "rfft.c").write_text(RFFT_C.replace("#include <stdio.h>", "#include <stdio.h>\n#include <stdlib.h>"))
    _srcs, incs = fc.cmsis_dsp_sources(cd.dsp_root(), FIXED)
    init = [cd.dsp_root() / "Source" / "TransformFunctions" / f for f in ("arm_rfft_init_q15.c", "arm_cfft_init_q15.c")]
    exe = work / "rfft"
    cmd = [cc, *cd.STRICT, "-D__GNUC_PYTHON__", "-DARM_MATH_DSP", "-include", str(fc.INTRINSICS_PATH),
           *[f"-I{d}" for d in incs], str(work / "rfft.c"), *map(str, init), str(lib), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr[-2000:]
    return exe


@pytest.mark.parametrize("n", Q.FFT_LENGTHS[:-1])
def test_rfft_equals_cmsis_dsp_intrinsic_version(rfft_host, n, record_property):
    import cmsisdsp as dsp

    frames = _frames(n, np.random.default_rng(n))
    out = subprocess.run([str(rfft_host), str(n)], input=frames.tobytes(), capture_output=True, check=True).stdout
    c = np.frombuffer(out, np.int16).reshape(len(frames), n // 2, 2)
    re_, im = Q.rfft_q15(frames)
    np.testing.assert_array_equal(re_, c[..., 0])
    np.testing.assert_array_equal(im[:, 1:], c[:, 1:, 1])         # bin 0: DC only (the C packs Nyquist there)
    exact = np.fft.rfft(frames.astype(np.float64), axis=-1)[:, :n // 2] / n
    err = np.abs(re_ + 1j * im - exact)
    err[:, 0] = np.abs(re_[:, 0] - exact[:, 0].real)
    portable = np.stack([np.asarray(dsp.arm_rfft_q15(_wrapper(n), f.copy()))[:n].reshape(-1, 2) for f in frames])
    differs = int((portable[..., 0] != re_).sum())
    record_property("portable_version_differing_bins", differs)
    print(f"\nq15 rfft {n}: max |ours - DFT/n| = {err.max():.1f} LSB; the portable C version (cmsisdsp "
          f"wrapper) differs in {differs} of {re_.size} real parts")
    assert err[::4].max() < 8 + np.log2(n) * 2 and err[2::4].max() < 4 + np.log2(n)   # uniform / quiet frames


def _wrapper(n: int):
    import cmsisdsp as dsp

    inst = dsp.arm_rfft_instance_q15()
    assert dsp.arm_rfft_init_q15(inst, n, 0, 1) == 0
    return inst


def test_rfft_input_checks():
    with pytest.raises(ValueError):
        Q.rfft_q15(np.zeros(1000, np.int16))
    with pytest.raises(ValueError):
        Q.rfft_q15(np.zeros(1024, np.float32))
    re_, im = Q.rfft_q15(np.zeros((2, 3, 64), np.int16))
    assert re_.shape == im.shape == (2, 3, 32) and not re_.any()


# --------------------------------------------------------------------------- features

def test_tone_levels_and_silence():
    fe = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, arithmetic="fixed")
    float_fe = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40)
    with pytest.raises(ValueError, match="fixedfe"):
        F.logmel(torch.zeros(16000), fe)
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    band = int(np.argmax(F.mel_matrix(fe)[:, round(1000 * 512 / 16000)]))
    for level in (1.0, 1e-2, 1e-3):
        x = X.to_int16(tone * level)
        ours = X.features_db(x.astype(np.float64) / 32768, fe)
        ref = F.logmel(torch.from_numpy(x.astype(np.float32) / 32768), float_fe).numpy()
        assert abs(float(np.median(ours[:, band] - ref[:, band]))) < 0.1, level     # the tone's band
        assert np.abs(ours - ref)[ref > ref.max() - 40].mean() < 0.5, level       # within 40 dB of the peak
    assert (X.features_db(np.zeros(8000), fe) == F.LOG_FLOOR_DB).all()


def test_features_are_exact_in_float16_and_bounded():
    rng = np.random.default_rng(0)
    audio = np.concatenate([rng.standard_normal(22050) * 0.3, np.zeros(5000), rng.standard_normal(20000) * 1e-4])
    d = X.features_db16(X.to_int16(audio), FIXED)
    db = X.features_db(audio, FIXED)
    assert d.dtype == np.int16 and d.min() >= X.FLOOR_DB16 and d.max() <= X.CEIL_DB16
    np.testing.assert_array_equal(db.astype(np.float16).astype(np.float32) * 16, d.astype(np.float32))
    assert (d == X.FLOOR_DB16).any() and (d > 0).any()


def test_headroom_from_whole_pushes():
    fe = FrontEnd(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, arithmetic="fixed")   # k0 = 4, lag 128
    audio = np.zeros(160 * 12, np.int16)
    s = X.headroom(audio, fe, 5)
    assert (s == 15).all()
    audio[160 * 4 - 1] = 100               # in push 3 (frames 0-3 use it), msb 6 -> s = 8
    audio[160 * 8 - 1] = -32768            # push 7, beyond frame 4's samples but in its last push: s = 0
    s = X.headroom(audio, fe, 5)
    assert s.tolist() == [8, 8, 8, 8, 0]
    assert X.features_db16(audio, fe).shape == (F.n_frames(audio.size, fe), 40)


def test_fixed_spec_and_cache_keys_leave_float_unchanged():
    fe = FrontEnd()
    assert "arithmetic" not in config.to_dict(fe) and config.to_dict(FIXED)["arithmetic"] == "fixed"
    spec = ArchSpec.load("specs/thesis/stride-ds-24.yaml")
    assert "arithmetic" not in spec.to_json()
    assert ArchSpec.from_json(spec.replace(frontend=FIXED).to_json()).frontend.arithmetic == "fixed"
    assert "arithmetic" not in fcache.feature_params(fe)
    assert fcache.feature_params(FIXED)["arithmetic"] == "fixed"
    with pytest.raises(Exception, match="arithmetic"):
        config.load(FrontEnd, {"arithmetic": "double"}, "x.yaml")


@pytest.mark.parametrize("iq", [InputQuant(-20.0, 20.0, 1 / 24, -8), InputQuant(-5.0, 12.0, 1 / 64, 20),
                                InputQuant(3.0, 9.0, 0.05, 0)])
def test_int8_map(iq):
    d = np.arange(X.FLOOR_DB16, X.CEIL_DB16 + 1)
    q = quantize_db16(d, iq)
    np.testing.assert_array_equal(q, quantize_db16(d.astype(np.float32) / 16, iq))
    v = d / 16 * float(iq.gain) + float(iq.offset) + 0.5
    ideal = np.clip(np.floor(v), -128, 127)
    gain_q, offset_q = fixed_map(iq)
    slack = 2048 * abs(gain_q / 65536 - float(iq.gain) / 16) + 1 / 65536    # the map's rounding of gain, offset
    near = np.abs(v - np.round(v)) <= slack                                # within it of a rounding boundary
    assert np.abs(q - ideal).max() <= 1 and (q == ideal)[~near].all() and near.mean() < 0.05
    with pytest.raises(ValueError):
        fixed_map(InputQuant(0.0, 1e-4, 1e-4, 0))


def test_search_space_dimension(tmp_path):
    """`frontend.arithmetic: [float, fixed]` is a dimension; without it a space samples, suggests and
    references exactly as before (no parameter, same draws for a seed)."""
    import random

    import optuna
    import yaml

    base = yaml.safe_load(open("search_spaces/default.yaml"))
    base["frontend"].pop("arithmetic", None)
    plain, both = tmp_path / "plain.yaml", tmp_path / "both.yaml"
    plain.write_text(yaml.safe_dump(base))
    base["frontend"]["arithmetic"] = ["float", "fixed"]
    both.write_text(yaml.safe_dump(base))
    s0, s1 = SearchSpace.load(plain), SearchSpace.load(both)
    built = set()
    for seed in range(40):
        p0, p1 = s0.sample(random.Random(seed)), s1.sample(random.Random(seed))
        assert "arithmetic" not in p0 and {k: v for k, v in p1.items() if k != "arithmetic"} == p0
        try:
            spec = s1.build(p1)
        except InvalidArchitecture:
            continue
        assert spec.frontend.arithmetic == p1["arithmetic"]
        built.add(p1["arithmetic"])
    assert built == {"float", "fixed"}
    assert "arithmetic" not in s0.reference_params()["Stride-DS-24"]
    assert s1.reference_params()["Stride-DS-24"]["arithmetic"] == "float"
    study = optuna.create_study()
    t0, t1 = study.ask(), study.ask()
    assert "arithmetic" not in s0.suggest(t0) and s1.suggest(t1)["arithmetic"] in ("float", "fixed")


def test_cost_table_names_the_front_end():
    from nas.budget import Budget
    from nas.cost import analytic

    spec = ArchSpec.load("specs/thesis/stride-ds-24.yaml")
    budget = Budget.load("budgets/stm32l476.yaml")
    flt, fix = (analytic.estimate(spec.replace(frontend=fe), budget) for fe in (spec.frontend, FIXED))
    assert fix.chip.frontend_instructions_per_second < 0.8 * flt.chip.frontend_instructions_per_second
    assert fix.frontend_ram_bytes < flt.frontend_ram_bytes and fix.frontend_flash_bytes < flt.frontend_flash_bytes
    text = analytic.report(spec.replace(frontend=FIXED), budget, fix)
    assert "front-end (fixed point: q15 FFT, integer mel and log)" in text
