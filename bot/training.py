"""Train the Rasa model only when its inputs changed."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Iterable, List

from bot.settings import PROJECT_ROOT

MODEL_NAME = "rapport"
TRAINING_INPUTS = ("config.yml", "domain.yml", "data/nlu", "data/faq", "data/rules", "data/stories")


def _files(root: Path, inputs: Iterable[str]) -> List[Path]:
    found: List[Path] = []
    for name in inputs:
        path = root / name
        found.extend(sorted(path.rglob("*.yml")) if path.is_dir() else [path])
    return found


def training_fingerprint(root: Path = PROJECT_ROOT) -> str:
    import rasa

    digest = hashlib.sha256(f"rasa {rasa.__version__}\n".encode())
    for path in _files(root, TRAINING_INPUTS):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def model_path(root: Path = PROJECT_ROOT) -> Path:
    return root / "models" / f"{MODEL_NAME}.tar.gz"


def _stamp(root: Path) -> Path:
    return root / "models" / f"{MODEL_NAME}.fingerprint"


def is_current(root: Path = PROJECT_ROOT) -> bool:
    stamp = _stamp(root)
    return model_path(root).exists() and stamp.exists() and stamp.read_text().strip() == training_fingerprint(root)


def train_if_changed(root: Path = PROJECT_ROOT, force: bool = False) -> bool:
    """Train models/rapport.tar.gz when the data changed; True when a training ran."""
    if not force and is_current(root):
        print(f"[train] model is current: {model_path(root).relative_to(root)}", flush=True)
        return False
    fingerprint = training_fingerprint(root)
    print("[train] training data changed; training the model (Rasa prints its progress)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--fixed-model-name", MODEL_NAME, "--out", "models"],
        cwd=root,
        check=True,
    )
    _stamp(root).write_text(fingerprint + "\n")
    print(f"[train] model saved: {model_path(root).relative_to(root)}", flush=True)
    return True
