"""Hostile model uploads: what checking each one costs the process that receives it (the web worker).

    .venv/bin/python bench/bench_upload.py [--gunicorn]

Builds, in a temporary folder, the forged files of the hostile test of hosted mode:

- ``forged-8192.pt``: a 2 KB RNNVis checkpoint whose config declares ``hidden_size 8192`` (2 layers; the
  weights are those of a 2x4 model);
- ``forged-8192x16.pt``: the same with 16 layers;
- ``bomb.pt``: a state dict whose one tensor (1 GiB of zeros) is stored zip-deflated (~1 MB);

then, for each, runs ``workers.uploads.save_model_upload`` (what the Jobs page calls) in a fresh process
and prints the answer, the wall time and that process's peak resident memory (``VmHWM``) above what it
had after its imports. Each process runs under a 12 GB address-space limit, so the worst case answers
"MemoryError" instead of taking the machine down.

``--gunicorn``: the same uploads through the Jobs page's "Import and analyse" callback of a hosted
gunicorn server (one worker, signed in as a member), with the web worker's peak memory before and after
each (the 16-layer file is skipped: it needs 32 GB).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
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


def through_gunicorn(files: dict, t: Path) -> None:
    """Each file through the page's import callback of a hosted gunicorn worker: answer, its peak memory."""
    sys.path.insert(0, str(ROOT / "bench"))
    import random

    import bench_hostile as bh
    import bench_load as bl

    from app.hosted.auth import UserStore

    port, password = bl._free_port(), secrets.token_hex(8)
    (t / "store").mkdir()
    UserStore(t / "users.json").add("member01", password, "member", created_by="bench")
    env = {**os.environ, "RNNVIS_STORE": str(t / "store"), "RNNVIS_AUTH": "on",
           "RNNVIS_SECRET_KEY": secrets.token_hex(32),
           "RNNVIS_COOKIE_SECURE": "off", "RNNVIS_USERS_FILE": str(t / "users.json"), "PYTHONPATH": str(ROOT)}
    env.pop("RNNVIS_BROKER_URL", None)
    server = bl.start_gunicorn(1, 2, port, env, "hosted, one worker")
    try:
        base = f"http://127.0.0.1:{port}"
        user = bl.User(base, [], {"m": None}, bl.Stats(), random.Random(0))
        assert bh._sign_in(user.http, base, "member01", password)
        user.deps = user.http.get(base + "/_dash-dependencies", timeout=30).json()
        user._get("jobs page", "/jobs")
        (pid,) = bh._workers(server.pid)
        for name, make in files.items():
            path = t / name
            make(path)
            url = "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode()
            before = bh._status_mb(pid, "VmHWM")
            t0 = time.perf_counter()
            data = user._callback("import", "jobs-byom-msg.children", {
                "jobs-byom-submit.n_clicks": 1, "jobs-byom-weights.contents": url, "jobs-byom-weights.filename": name,
                "jobs-corpus-source.value": "builtin", "jobs-corpus-builtin.value": "brown"})
            wall = time.perf_counter() - t0
            resp = (data or {}).get("response", {})
            answer = (resp.get("jobs-error-byom-weights", {}).get("children")
                      or json.dumps(resp.get("jobs-byom-msg"))[:200] if data
                      else f"no answer (web worker {'alive' if bh._workers(server.pid) else 'gone'})")
            print(json.dumps({"file": name, "bytes": path.stat().st_size, "answer": answer, "wall_s": round(wall, 2),
                              "worker_peak_mb_before": round(before), "worker_peak_mb_after":
                              round(bh._status_mb(pid, "VmHWM"))}), flush=True)
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gunicorn", action="store_true", help="through a hosted gunicorn server's Jobs page")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        files = {"forged-8192.pt": lambda p: forged_checkpoint(p, 8192, 2),
                 "forged-8192x16.pt": lambda p: forged_checkpoint(p, 8192, 16),
                 "bomb.pt": zip_bomb}
        if args.gunicorn:  # the bomb first: a worker's peak only grows
            return through_gunicorn({"bomb.pt": zip_bomb, "forged-8192.pt": files["forged-8192.pt"]}, t)
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
