"""nas.export.frontend_c: the generated streaming front-end (CMSIS-DSP f32 + int8 quantisation; and
fixed point: q15 FFT, integer mel, log and int8 map).

- Python only: the emitted files (constants, sizes, compile-time check), `frontend_reference`,
  `cmsis_dsp_sources`.
- Host gcc (strict flags): on demo clips the C windows equal `frontend_reference` within 1 LSB (share
  of exact values and max dB difference recorded), windows come at the pushes the API promises.
- Cortex-M4 under QEMU: the same int8 windows as the host build; instructions per frame; ELF symbol
  sizes equal the cost model's (`frontend_ram_bytes`, `frontend_table_bytes`); linked code size.

CMSIS-DSP sources: $CMSIS_DSP_PATH or the cmsisdsp sdist (tests/_cmsisdsp.py); skipped with the reason
when gcc, the ARM toolchain/QEMU or the sources are unavailable.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import _cmsisdsp as cd
from nas.arch import frontend as F
from nas.arch.spec import FrontEnd
from nas.cost.analytic import frontend_ram_bytes, frontend_table_bytes, mel_nonzeros
from nas.cost.frontend import frontend_model
from nas.data import urbansound as us
from nas.export import frontend_c as fc
from nas.quant.inputq import InputQuant, quantize_features
from nas.export.render import c_float

IQ = InputQuant(mean=-20.0, std=20.0, scale=1.0 / 24.0, zero_point=-8)        # ~1.2 steps/dB
IQ_FINE = InputQuant(mean=-5.0, std=12.0, scale=1.0 / 64.0, zero_point=20)    # ~5.3 steps/dB, saturates

CONFIGS = {
    "default": (FrontEnd(), IQ),
    "16k-512-hop160": (FrontEnd(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, frames=49,
                                overlap=0.5, fmin=20.0, fmax=7600.0), IQ),
    "8k-256-cheap": (FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=30, frames=32,
                              overlap=0.75), IQ_FINE),
    "44k-2048-128mel": (FrontEnd(sample_rate=44100, n_fft=2048, hop_length=1024, n_mels=128, frames=20,
                                 overlap=0.25, fmin=20.0, fmax=16000.0), IQ),
    "8k-64-hop64": (FrontEnd(sample_rate=8000, n_fft=64, hop_length=64, n_mels=8, frames=5, overlap=0.2),
                    IQ_FINE),
}
M4_CONFIGS = ("default", "16k-512-hop160", "8k-256-cheap", "8k-64-hop64")
# Fixed point: the same front-ends (+ an odd hop, fmin > 0, 4096 points) with arithmetic "fixed".
FIXED = {name: (dataclasses.replace(fe, arithmetic="fixed"), iq) for name, (fe, iq) in CONFIGS.items()}
FIXED["22k-4096-hop1001"] = (FrontEnd(sample_rate=22050, n_fft=4096, hop_length=1001, n_mels=64, frames=8,
                                      overlap=0.5, fmin=100.0, arithmetic="fixed"), IQ)
FIXED_M4 = ("default", "16k-512-hop160", "8k-64-hop64", "22k-4096-hop1001")


def _need(fn, *args):
    try:
        return fn(*args)
    except cd.Unavailable as exc:
        pytest.skip(str(exc))


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def _clips(demo_root, fe: FrontEnd, step: int) -> list[np.ndarray]:
    return [to_int16(us.load_clip(c.path, fe.sample_rate)) for c in us.read_metadata(demo_root).clips[::step]]


def _expected_ready_pushes(fe: FrontEnd, pushes: int) -> list[int]:
    """1-based pushes at which windows become ready: frame t is made on push t + warmup_pushes."""
    k0, n_frames = fc.warmup_pushes(fe), fc.frames_from_pushes(pushes, fe)
    out, w = [], 0
    while w * fe.window_hop_frames + fe.frames <= n_frames:
        out.append(w * fe.window_hop_frames + fe.frames - 1 + k0)
        w += 1
    return out


# --------------------------------------------------------------------------- Python only

def test_emitted_files(tmp_path):
    fe, iq = CONFIGS["16k-512-hop160"]
    paths = fc.write_frontend(fe, iq, tmp_path)
    assert [p.name for p in paths] == ["nas_frontend.h", "nas_frontend.c"]
    h, c = (p.read_text() for p in paths)
    for name, v in (("SAMPLE_RATE", 16000), ("HOP_LENGTH", 160), ("FRAMES", 49), ("N_MELS", 40),
                    ("N_FFT", 512), ("WINDOW_HOP_FRAMES", fe.window_hop_frames),
                    ("RAM_BYTES", frontend_ram_bytes(fe)),
                    ("TABLE_BYTES", frontend_table_bytes(fe, mel_nonzeros(fe)))):
        assert f"#define NAS_FRONTEND_{name} {v}\n" in h
    for api in ("void nas_frontend_init(void);", "int nas_frontend_push(const int16_t *hop_samples);",
                "const int8_t *nas_frontend_window(void);"):
        assert api in h
    assert "arm_rfft_fast_init_512_f32(" in c and "arm_rfft_fast_init_f32(" not in c
    assert "nas_fe_ram_size_check" in c and f"static const float32_t nas_fe_mel_coefs[{mel_nonzeros(fe)}]" in c
    # 160-sample hop, 512-point frames: 4 pushes to the first frame, frame = 480 history + 32 new samples
    assert fc.warmup_pushes(fe) == 4
    assert "arm_q15_to_float(nas_fe_ram.audio + 32, nas_fe_ram.fft_in, 480u);" in c
    assert "arm_q15_to_float(hop_samples, nas_fe_ram.fft_in + 480, 32u);" in c


def test_constants_round_trip():
    for v in (0.0, 1.0, 1e-6, -3.5, float(F.DB_PER_NEPER), 0.1234567, 2.0 ** -140):
        s = c_float(v)
        assert s.endswith("f") and np.float32(float(s[:-1])) == np.float32(v)


def test_reference_windows():
    fe, iq = FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=30, frames=10, overlap=0.3), IQ
    rng = np.random.default_rng(0)
    audio = rng.integers(-20000, 20000, 8000).astype(np.int16)
    db = fc.reference_db(audio, fe)
    q = quantize_features(db, iq)
    win = fc.frontend_reference(audio, fe, iq)
    hop = fe.window_hop_frames
    assert hop == 7 and db.shape == (F.n_frames(audio.size, fe), 30)
    assert win.dtype == np.int8 and win.shape == (1 + (db.shape[0] - 10) // hop, 10, 30)
    for w in range(win.shape[0]):
        np.testing.assert_array_equal(win[w], q[w * hop: w * hop + 10])
    assert fc.frontend_reference(audio[:300], fe, iq).shape == (0, 10, 30)
    with pytest.raises(ValueError):
        fc.reference_db(audio.astype(np.float32), fe)


def test_cmsis_dsp_sources_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a CMSIS-DSP tree"):
        fc.cmsis_dsp_sources(tmp_path)
    (tmp_path / "Include").mkdir()
    (tmp_path / "Include" / "arm_math.h").write_text("")
    with pytest.raises(FileNotFoundError, match="arm_rfft_fast_f32.c"):
        fc.cmsis_dsp_sources(tmp_path)
    assert fc.rfft_table_symbols(1024) == {"twiddleCoef_512": 4096, "armBitRevIndexTable512": 896,
                                           "twiddleCoef_rfft_1024": 4096}


# --------------------------------------------------------------------------- host gcc

@pytest.fixture(scope="module")
def host_lib():
    _need(cd.host_cc)
    return _need(cd.dsp_library, "host")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_host_parity(host_lib, demo_root, tmp_path, name, record_property):
    fe, iq = CONFIGS[name]
    exe = cd.build_host_frontend(fe, iq, tmp_path)
    n_equal = n_total = 0
    worst_db = worst_lsb = 0.0
    for audio in _clips(demo_root, fe, step=6):
        run = cd.run_host_frontend(exe, audio, fe)
        pushes = audio.size // fe.hop_length
        assert run.pushes == pushes
        assert run.ready_pushes == _expected_ready_pushes(fe, pushes)
        ref_db = fc.reference_db(audio, fe)
        assert run.db.shape == (fc.frames_from_pushes(pushes, fe), fe.n_mels)
        worst_db = max(worst_db, float(np.abs(run.db - ref_db[:run.db.shape[0]]).max()))
        # the C quantisation of the C dB values is quantize_features', bit for bit
        ref = fc.frontend_reference(audio, fe, iq)
        assert run.windows.shape[0] <= ref.shape[0]
        got = run.windows.astype(np.int16)
        np.testing.assert_array_equal(run.windows, fc._split_windows(quantize_features(run.db, iq), fe))
        diff = np.abs(got - ref[:got.shape[0]])
        worst_lsb = max(worst_lsb, float(diff.max(initial=0)))
        n_equal += int((diff == 0).sum())
        n_total += diff.size
    share = n_equal / max(n_total, 1)
    record_property("share_exact", share)
    record_property("max_abs_db", worst_db)
    print(f"\n{name}: {n_total} int8 values, {100 * share:.3f} % equal to frontend_reference, max "
          f"{worst_lsb:g} LSB; max |C dB - reference dB| = {worst_db:.2e} dB")
    assert n_total > 0
    assert worst_lsb <= 1 and worst_db < 0.05 and share > 0.99


def test_push_api_edges(host_lib, tmp_path):
    """Short inputs: no window before `frames` frames; exactly one when the first window completes."""
    fe, iq = CONFIGS["16k-512-hop160"]
    exe = cd.build_host_frontend(fe, iq, tmp_path, db_hook=False)
    rng = np.random.default_rng(3)
    need = (fe.frames - 1 + fc.warmup_pushes(fe)) * fe.hop_length       # samples to the first window
    for n, windows in ((0, 0), (need - 1, 0), (need, 1), (need + fe.window_hop_frames * fe.hop_length - 1, 1),
                       (need + fe.window_hop_frames * fe.hop_length, 2)):
        audio = rng.integers(-30000, 30000, n).astype(np.int16)
        run = cd.run_host_frontend(exe, audio, fe, with_db=False)
        assert run.windows.shape[0] == windows, n
        if windows:
            ref = fc.frontend_reference(audio, fe, iq)
            assert np.abs(run.windows.astype(int) - ref[:windows]).max() <= 1


# --------------------------------------------------------------------------- Cortex-M4 / QEMU

@pytest.fixture(scope="module")
def m4_lib(host_lib):
    _need(cd.m4_toolchain)
    return _need(cd.dsp_library, "m4")


@pytest.mark.parametrize("name", M4_CONFIGS)
def test_m4_matches_host_and_cost_model(m4_lib, demo_root, tmp_path, name, record_property):
    fe, iq = CONFIGS[name]
    elf = cd.build_m4_frontend(fe, iq, tmp_path / "m4")
    exe = cd.build_host_frontend(fe, iq, tmp_path / "host", db_hook=False)
    frames = insn = 0
    for audio in _clips(demo_root, fe, step=30):        # 2 clips
        m4 = cd.run_m4_frontend(elf, audio, fe)
        host = cd.run_host_frontend(exe, audio, fe, with_db=False)
        assert m4.windows.shape[0] > 0 and m4.ready_pushes == host.ready_pushes
        np.testing.assert_array_equal(m4.windows, host.windows)
        frames += m4.insn["frames"]
        insn += m4.insn["frame_total"]
    per_frame = insn / frames
    per_second = per_frame * fe.sample_rate / fe.hop_length

    # ELF symbol sizes against the cost model
    syms = cd.elf_symbols(elf)
    assert syms[fc.RAM_SYMBOL][1] == frontend_ram_bytes(fe)
    nnz = mel_nonzeros(fe)
    rfft = fc.rfft_table_symbols(fe.n_fft)
    for sym, size in rfft.items():
        assert syms[sym][1] == size, sym
    linked_fft_tables = {s for s in syms if s.startswith(("twiddleCoef", "armBitRevIndexTable"))}
    assert linked_fft_tables == set(rfft), "tables of other FFT lengths were linked"
    tables = sum(syms[s][1] for s in fc.TABLE_SYMBOLS) + sum(syms[s][1] for s in rfft)
    assert tables == frontend_table_bytes(fe, nnz)

    fp = cd.frontend_footprint(tmp_path / "m4" / "m4" / "fe.map")
    assert fp["dsp_rodata"] == sum(rfft.values()) + 16      # + arm_cfft_sR_f32_len<n/2> descriptor
    assert fp["fe_rodata"] == sum(syms[s][1] for s in fc.TABLE_SYMBOLS)
    code = fp["dsp_text"] + fp["fe_text"] + fp["libm_text"]
    for k, v in (("insn_per_frame", per_frame), ("insn_per_second", per_second), ("code_bytes", code),
                 ("dsp_code_bytes", fp["dsp_text"]), ("table_bytes", tables)):
        record_property(k, v)
    print(f"\n{name}: M4 {per_frame:,.0f} insn/frame ({per_second / 1e6:.2f} M insn per s of audio), "
          f"RAM {syms[fc.RAM_SYMBOL][1]} B, tables {tables} B "
          f"(+16 B cfft descriptor), code {code} B (CMSIS-DSP {fp['dsp_text']}, nas_frontend "
          f"{fp['fe_text']}, libm logf {fp['libm_text']}), stack {m4.stack} B")
    assert code <= 8192       # the budgets' 8 kB "frontend" FLASH reserve


# --------------------------------------------------------------------------- fixed point

@pytest.fixture(scope="module")
def fixed_host_lib():
    _need(cd.host_cc)
    return _need(cd.dsp_library, "host", FIXED["default"][0])


def test_fixed_emitted_files(tmp_path):
    fe, iq = FIXED["16k-512-hop160"]
    paths = fc.write_frontend(fe, iq, tmp_path)
    assert [p.name for p in paths] == ["nas_frontend.h", "nas_frontend.c", fc.DSP_UNIT_NAME, fc.INTRINSICS_HEADER]
    h, c, unit = (p.read_text() for p in paths[:3])
    assert f"#define NAS_FRONTEND_RAM_BYTES {frontend_ram_bytes(fe)}\n" in h
    assert f"#define NAS_FRONTEND_TABLE_BYTES {frontend_table_bytes(fe, mel_nonzeros(fe))}\n" in h
    assert "arm_rfft_q15(&nas_fe_rfft" in c and "arm_cfft_sR_q15_len256" in c and "float" not in c
    assert all(f'#include "{src}"' in unit for src in fc.FIXED_UNIT_SOURCES) and "#define ARM_MATH_DSP 1" in unit
    assert not set(fc.FIXED_UNIT_SOURCES) & set(fc.FIXED_DSP_SOURCES)       # the shared files are compiled apart
    assert fc.frontend_sources(fe) == (fc.SOURCE_NAME, fc.DSP_UNIT_NAME)
    assert frontend_ram_bytes(fe) == 2 * 512 + 4 * 512 + 49 * 40 + 2 * 4 * 160 + 2 * 4 + 6 + 2   # k0 4, lag 128


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_host_is_the_python_frontend(fixed_host_lib, demo_root, tmp_path, name):
    """Host C == nas.arch.fixedfe bit for bit: every frame's D and every int8 window, on demo clips
    and on loud, silent and quiet stretches."""
    fe, iq = FIXED[name]
    exe = cd.build_host_frontend(fe, iq, tmp_path)
    rng = np.random.default_rng(1)
    extra = np.concatenate([rng.integers(-32768, 32768, 4 * fe.n_fft), np.zeros(3 * fe.n_fft),
                            rng.integers(-3, 4, 3 * fe.n_fft)]).astype(np.int16)
    windows = 0
    for audio in [*_clips(demo_root, fe, step=12), extra]:
        run = cd.run_host_frontend(exe, audio, fe)
        pushes = audio.size // fe.hop_length
        assert run.ready_pushes == _expected_ready_pushes(fe, pushes)
        ref_db = fc.reference_db(audio[:pushes * fe.hop_length], fe)
        np.testing.assert_array_equal(run.db, ref_db[:run.db.shape[0]])
        ref = fc.frontend_reference(audio[:pushes * fe.hop_length], fe, iq)
        np.testing.assert_array_equal(run.windows, ref[:run.windows.shape[0]])
        windows += run.windows.shape[0]
    assert windows > 0


@pytest.fixture(scope="module")
def fixed_m4_lib(fixed_host_lib):
    _need(cd.m4_toolchain)
    return _need(cd.dsp_library, "m4", FIXED["default"][0])


@pytest.mark.parametrize("name", FIXED_M4)
def test_fixed_m4_bit_exact_and_sized(fixed_m4_lib, demo_root, tmp_path, name, record_property):
    fe, iq = FIXED[name]
    elf = cd.build_m4_frontend(fe, iq, tmp_path / "m4")
    frames = insn = n_windows = 0
    for audio in _clips(demo_root, fe, step=30):        # 2 clips
        m4 = cd.run_m4_frontend(elf, audio, fe)
        pushes = audio.size // fe.hop_length
        ref = fc.frontend_reference(audio[:pushes * fe.hop_length], fe, iq)
        assert m4.windows.shape[0] > 0 and m4.ready_pushes == _expected_ready_pushes(fe, pushes)
        np.testing.assert_array_equal(m4.windows, ref[:m4.windows.shape[0]])
        frames += m4.insn["frames"]
        insn += m4.insn["frame_total"]
        n_windows += m4.windows.shape[0]
    syms = cd.elf_symbols(elf)
    assert syms[fc.RAM_SYMBOL][1] == frontend_ram_bytes(fe)
    rfft = fc.rfft_table_symbols(fe.n_fft, "fixed")
    for sym, size in rfft.items():
        assert syms[sym][1] == size, sym
    linked = {s for s in syms if s.startswith(("twiddleCoef", "armBitRevIndexTable", "realCoef"))}
    assert linked == set(rfft), "tables of other FFT lengths or the 16 kB real tables were linked"
    tables = sum(syms[s][1] for s in (*fc.FIXED_TABLE_SYMBOLS, *rfft))
    assert tables == frontend_table_bytes(fe, mel_nonzeros(fe))
    fp = cd.frontend_footprint(tmp_path / "m4" / "m4" / "fe.map")
    code = fp["dsp_text"] + fp["fe_text"]
    per_frame = insn / frames
    predicted = frontend_model("cortex-m4", "O2", arithmetic="fixed").per_frame(fe, mel_nonzeros(fe))
    record_property("insn_per_frame", per_frame)
    record_property("code_bytes", code)
    print(f"\n{name} (fixed): {n_windows} windows bit-exact; M4 {per_frame:,.0f} insn/frame "
          f"({per_frame * fe.sample_rate / fe.hop_length / 1e6:.2f} M insn per s of audio; cost model "
          f"{predicted / per_frame - 1:+.2%}), RAM {frontend_ram_bytes(fe)} B, tables {tables} B, code {code} B, "
          f"stack {m4.stack} B")
    assert code <= 8192 and fp["libm_text"] == 0
    # within 2 %, + 150 instructions for the smallest front-ends (the 40-instruction SysTick step and
    # the int8 map's clamp, whose code depends on the input quantisation, are a few % of 3,000)
    assert abs(predicted - per_frame) < 0.02 * per_frame + 150


@pytest.mark.parametrize("isa", ["cortex-m3", "cortex-m0plus"])
def test_fixed_without_dsp_extension_is_the_same(fixed_m4_lib, demo_root, tmp_path, isa):
    """On cores without SIMD instructions the intrinsics are C (nas_dsp_intrinsics.h): same windows."""
    fe, iq = FIXED["16k-512-hop160"]
    elf = cd.build_m4_frontend(fe, iq, tmp_path / isa, isa=isa)
    audio = _clips(demo_root, fe, step=30)[0]
    pushes = audio.size // fe.hop_length
    run = cd.run_m4_frontend(elf, audio, fe)
    ref = fc.frontend_reference(audio[:pushes * fe.hop_length], fe, iq)
    assert run.windows.shape[0] > 0
    np.testing.assert_array_equal(run.windows, ref[:run.windows.shape[0]])
