"""The README's main job, as a user runs it on a fresh machine: offline, on the embedded default."""

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def test_readme_main_job(tmp_path):
    readme = (REPO / "README.md").read_text()
    cmd = "zoo reconstruct wavtokenizer-tiny-24k samples/speech_16k.wav --out out/ --metrics"
    assert cmd in readme
    args = cmd.split()[1:]
    args[args.index("out/")] = str(tmp_path / "out")
    out = subprocess.run([sys.executable, "-m", "zoo.cli", *args, "-q"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["tokens"] == 1000  # 10 s at 100 tokens/s
    info = sf.info(str(tmp_path / "out" / "speech_16k.wav"))
    assert info.samplerate == 24000 and abs(info.duration - 10.0) < 1e-3
    # the embedded model gives 1.91; the same architecture untrained gives 4.43
    assert row["mel_distance"] < 3.0 and "si_sdr_db" in row
