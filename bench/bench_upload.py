"""Hostile model uploads: what checking each one costs the process that receives it (the web worker).

    .venv/bin/python bench/bench_upload.py

Builds, in a temporary folder, the forged files of the hostile test of hosted mode:

- ``forged-8192.pt``: a 2 KB RNNVis checkpoint whose config declares ``hidden_size 8192`` (2 layers; the
  weights are those of a 2x4 model);
- ``forged-8192x16.pt``: the same with 16 layers;
- ``bomb.pt``: a state dict whose one tensor (1 GiB of zeros) is stored zip-deflated (~1 MB);

then, for each, runs ``workers.uploads.save_model_upload`` (what the Jobs page calls) in a fresh process
and prints the answer, the wall time and that process's peak resident memory (``VmHWM``) above what it
had after its imports. Each process runs under a 12 GB address-space limit, so the worst case answers
"MemoryError" instead of taking the machine down.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))
import torch
from workers.uploads import save_model_upload
from workers.errors import JobValidationError
def hwm():
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith('VmHWM')) / 1024
base = hwm()
path = sys.argv[1]
t0 = time.perf_counter()
try:
    info = save_model_upload(sys.argv[2], (path.rsplit('/', 1)[-1], open(path, 'rb').read()))
    answer = 'accepted: ' + info.summary
except JobValidationError as e:
    answer = 'refused: ' + '; '.join(e.errors.values())
except (MemoryError, RuntimeError) as e:
    answer = type(e).__name__ + ': ' + str(e).splitlines()[0]
print(json.dumps({'answer': answer[:160], 'wall_s': round(time.perf_counter() - t0, 2),
                  'peak_growth_mb': round(hwm() - base)}))
"""


def forged_checkpoint(path: Path, hidden: int, layers: int) -> None:
    from models.checkpoint import save_checkpoint
    from models.config import ModelConfig
    from models.rnn import RecurrentModel

    small = ModelConfig(vocab_size=3, embed_size=4, hidden_size=4)
    declared = dict(small.__dict__, hidden_size=hidden, layers=layers)
    save_checkpoint(path, {"model_config": declared, "vocab": {"words": ["<pad>", "<unk>", "<eos>"], "freq": [0, 0, 0]},
                           "state_dict": RecurrentModel(small).state_dict()})


def zip_bomb(path: Path, gib: int = 1) -> None:
    """A state dict whose tensor records are deflated (torch.save never compresses; torch.load inflates them)."""
    import torch

    plain = path.with_suffix(".plain")
    torch.save({"weight": torch.zeros(4)}, plain)
    src = zipfile.ZipFile(plain)
    data_pkl = next(n for n in src.namelist() if n.endswith("data.pkl"))
    pk = src.read(data_pkl)
    numel = gib << 28                                    # float32 elements in `gib` GiB
    pk = pk.replace(b"K\x04t", b"J" + numel.to_bytes(4, "little") + b"t", 1)   # the storage's size
    pk = pk.replace(b"K\x04\x85", b"J" + numel.to_bytes(4, "little") + b"\x85", 1)  # the tensor's shape
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename.endswith("data/0"):
                with out.open(info.filename, "w", force_zip64=True) as f:
                    chunk = bytes(1 << 24)
                    for _ in range(numel * 4 // len(chunk)):
                        f.write(chunk)
            else:
                out.writestr(info.filename, pk if info.filename == data_pkl else src.read(info.filename))
    plain.unlink()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        files = {"forged-8192.pt": lambda p: forged_checkpoint(p, 8192, 2),
                 "forged-8192x16.pt": lambda p: forged_checkpoint(p, 8192, 16),
                 "bomb.pt": zip_bomb}
        for name, make in files.items():
            path = t / name
            make(path)
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(t / "store"), str(ROOT)],
                                 capture_output=True, text=True)
            res = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
                {"answer": f"process died (exit {out.returncode}): {out.stderr.strip()[-200:]}"}
            print(json.dumps({"file": name, "bytes": path.stat().st_size, **res}), flush=True)


if __name__ == "__main__":
    main()
