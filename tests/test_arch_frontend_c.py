"""Pure-C parity: the device's front-end call sequence compiled from the CMSIS-DSP sources.

The sources come from the cmsisdsp sdist (same version as the installed wrapper), fetched once with
`pip download` into ~/.cache/nas-tests/ (or given by NAS_CMSISDSP_SDIST); they are compiled in a temp
folder and never committed. Skipped when gcc or the sdist is unavailable.
"""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import _cmsisdsp
from nas.arch import frontend as F
from nas.arch.spec import FrontEnd
from nas.data import urbansound as us

C_MAIN = r"""
/* Host build of the device front-end: frames of audio -> log-mel dB, CMSIS-DSP f32. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include "arm_math.h"

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *f = fopen(argv[1], "rb");
    uint32_t h[5];                      /* n_fft, hop, n_mels, n_coefs, n_samples */
    if (!f || fread(h, 4, 5, f) != 5) return 3;
    uint32_t n_fft = h[0], hop = h[1], n_mels = h[2], n_coefs = h[3], n = h[4];
    float32_t eps, db_per_neper;
    float32_t *win = malloc(4 * n_fft), *coefs = malloc(4 * (n_coefs + 1)), *audio = malloc(4 * n);
    uint32_t *pos = malloc(4 * n_mels), *len = malloc(4 * n_mels);
    if (fread(&eps, 4, 1, f) != 1 || fread(&db_per_neper, 4, 1, f) != 1 || fread(win, 4, n_fft, f) != n_fft
        || fread(pos, 4, n_mels, f) != n_mels || fread(len, 4, n_mels, f) != n_mels
        || fread(coefs, 4, n_coefs, f) != n_coefs || fread(audio, 4, n, f) != n) return 4;
    fclose(f);
    arm_rfft_fast_instance_f32 rfft;
    if (arm_rfft_fast_init_f32(&rfft, (uint16_t)n_fft) != ARM_MATH_SUCCESS) return 5;
    float32_t *frame = malloc(4 * n_fft), *spec = malloc(4 * n_fft), *power = malloc(2 * n_fft);
    float32_t *mel = malloc(4 * n_mels);
    uint32_t n_frames = n < n_fft ? 0 : 1 + (n - n_fft) / hop;
    FILE *o = fopen(argv[2], "wb");
    for (uint32_t t = 0; t < n_frames; t++) {
        arm_mult_f32(audio + t * hop, win, frame, n_fft);          /* window */
        arm_rfft_fast_f32(&rfft, frame, spec, 0);                  /* packed: [DC, Nyquist, re1, im1, ...] */
        spec[1] = 0.0f;                                            /* Nyquist weight is 0 */
        arm_cmplx_mag_squared_f32(spec, power, n_fft / 2);         /* power, bins 0..n_fft/2-1 */
        const float32_t *c = coefs;
        for (uint32_t m = 0; m < n_mels; m++) {                    /* sparse mel filterbank */
            mel[m] = 0.0f;
            if (len[m]) arm_dot_prod_f32(power + pos[m], c, len[m], &mel[m]);
            c += len[m];
        }
        arm_offset_f32(mel, eps, mel, n_mels);                     /* + LOG_EPS */
        arm_vlog_f32(mel, mel, n_mels);                            /* ln */
        arm_scale_f32(mel, db_per_neper, mel, n_mels);             /* -> dB */
        fwrite(mel, 4, n_mels, o);
    }
    fclose(o);
    return 0;
}
"""

SOURCES = ["TransformFunctions/arm_rfft_fast_f32.c", "TransformFunctions/arm_rfft_fast_init_f32.c",
           "TransformFunctions/arm_cfft_f32.c", "TransformFunctions/arm_cfft_init_f32.c",
           "TransformFunctions/arm_cfft_radix8_f32.c", "TransformFunctions/arm_bitreversal2.c",
           "CommonTables/arm_common_tables.c", "CommonTables/arm_const_structs.c",
           "ComplexMathFunctions/arm_cmplx_mag_squared_f32.c", "BasicMathFunctions/arm_dot_prod_f32.c",
           "BasicMathFunctions/arm_mult_f32.c", "BasicMathFunctions/arm_offset_f32.c",
           "BasicMathFunctions/arm_scale_f32.c", "FastMathFunctions/arm_vlog_f32.c"]


def _sdist() -> Path:
    try:
        return _cmsisdsp.sdist()
    except _cmsisdsp.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def logmel_c(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found")
    sdist = _sdist()
    work = tmp_path_factory.mktemp("cmsisdsp_c")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = [m for m in tar.getmembers() if m.isfile() and (
            m.name.startswith(f"{top}/Include/") or m.name.startswith(f"{top}/PrivateInclude/")
            or any(m.name == f"{top}/Source/{s}" for s in SOURCES))]
        tar.extractall(work, members=wanted, filter="data")
    src = work / top
    (work / "main.c").write_text(C_MAIN)
    exe = work / "logmel"
    cmd = ["gcc", "-O2", "-std=c11", "-D__GNUC_PYTHON__", "-DARM_MATH_LOOPUNROLL", f"-I{src / 'Include'}",
           f"-I{src / 'PrivateInclude'}", str(work / "main.c"), *[str(src / "Source" / s) for s in SOURCES],
           "-lm", "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return exe


def _run_c(exe: Path, audio: np.ndarray, fe: FrontEnd, work: Path) -> np.ndarray:
    t = F.mel_filter_tables(fe)
    blob = b"".join([
        np.array([fe.n_fft, fe.hop_length, fe.n_mels, t.coefs.size, audio.size], np.uint32).tobytes(),
        np.array([F.LOG_EPS, F.DB_PER_NEPER], np.float32).tobytes(), F.window(fe).tobytes(),
        t.pos.astype(np.uint32).tobytes(), t.lengths.astype(np.uint32).tobytes(), t.coefs.tobytes(),
        audio.astype(np.float32).tobytes()])
    (work / "in.bin").write_bytes(blob)
    subprocess.run([str(exe), str(work / "in.bin"), str(work / "out.bin")], check=True, timeout=60)
    return np.fromfile(work / "out.bin", dtype=np.float32).reshape(-1, fe.n_mels)


@pytest.mark.parametrize("fe", [FrontEnd(), FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40),
                                FrontEnd(sample_rate=44100, n_fft=2048, hop_length=1024, n_mels=128, fmin=20.0,
                                         fmax=16000.0)],
                         ids=lambda fe: f"{fe.sample_rate}-{fe.n_fft}-{fe.n_mels}")
def test_c_parity(logmel_c, demo_root, tmp_path, fe, record_property):
    clips = us.read_metadata(demo_root).clips[::6]
    worst_torch = worst_py = 0.0
    for clip in clips:
        audio = us.load_clip(clip.path, fe.sample_rate)
        c_out = _run_c(logmel_c, audio, fe, tmp_path)
        ours = F.logmel(torch.from_numpy(audio), fe).numpy()
        assert c_out.shape == ours.shape
        worst_torch = max(worst_torch, float(np.abs(c_out - ours).max()))
        worst_py = max(worst_py, float(np.abs(c_out - F.device_logmel(audio, fe)).max()))
    record_property("max_abs_error_db_c_vs_torch", worst_torch)
    print(f"\nC parity {fe.sample_rate} Hz n_fft={fe.n_fft} n_mels={fe.n_mels}: max |C - torch| = "
          f"{worst_torch:.2e} dB, max |C - cmsisdsp wrapper| = {worst_py:.2e} dB")
    assert worst_torch < 0.02 and worst_py < 0.02
