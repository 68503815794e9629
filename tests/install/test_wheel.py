"""A non-editable install works outside the repo: configs ship inside the package.

Builds the wheel, installs it into a new venv with the locked versions (uv export of uv.lock, hashes
checked) and runs ``mb-train`` and ``mb-eval`` from a directory unrelated to the repo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


def _run(cmd, cwd, env, timeout=600) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    """A fresh venv holding the built wheel and exactly the locked dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    _run([UV, "build", "--wheel", "--out-dir", root / "dist", REPO], cwd=root, env=env)
    (wheel,) = (root / "dist").glob("musicbench-*.whl")
    requirements = root / "requirements.txt"
    _run(
        [UV, "export", "--frozen", "--no-emit-project", "--no-default-groups", "--group", "chorales",
         "--output-file", requirements],
        cwd=REPO, env=env,
    )  # fmt: skip
    venv = root / "venv"
    _run([UV, "venv", "--quiet", "--python", sys.executable, venv], cwd=root, env=env)
    py = venv / "bin" / "python"
    # pip sync: exactly the exported set, no re-resolution (tinysoundfont's pyaudio stays out, as in uv.lock).
    _run([UV, "pip", "sync", "--quiet", "--python", py, requirements], cwd=root, env=env)
    _run([UV, "pip", "install", "--quiet", "--python", py, "--no-deps", wheel], cwd=root, env=env)
    return venv


@pytest.mark.slow
def test_wheel_trains_and_evaluates_from_another_directory(installed_venv, tiny_chorales_root, tmp_path):
    bin_dir = installed_venv / "bin"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"

    where = _run([bin_dir / "python", "-c", "import musicbench; print(musicbench.__file__)"], elsewhere, env)
    assert str(installed_venv) in where and str(REPO) not in where
    conf = Path(where.strip()).parent / "conf"
    assert (conf / "train.yaml").is_file() and (conf / "experiment" / "chorales_unet.yaml").is_file()

    out_root = tmp_path / "outputs"
    common = [f"paths.chorales_root={tiny_chorales_root}", f"paths.output_root={out_root}"]
    _run([bin_dir / "mb-train", "debug=fdr", *common], elsewhere, env)

    # A user's own config dir joins the search path: its local/default.yaml names the run.
    user_conf = tmp_path / "myconf" / "local"
    user_conf.mkdir(parents=True)
    (user_conf / "default.yaml").write_text("# @package _global_\nname: from_user_conf\n")
    _run([bin_dir / "mb-train", "--config-dir", user_conf.parent, "debug=tiny", *common], elsewhere, env)
    (summary,) = (out_root / "train" / "from_user_conf").glob("*/summary.json")
    assert json.loads(summary.read_text())["name"] == "from_user_conf"

    _run(
        [bin_dir / "mb-eval", f"ckpt_path={summary.parent}", f"paths.output_root={out_root}"], elsewhere, env
    )
    evaluated = list((out_root / "eval").rglob("summary.json"))
    assert len(evaluated) == 1
    assert json.loads(evaluated[0].read_text())["checkpoint"].startswith(str(summary.parent))
    assert not (elsewhere / "outputs").exists() and not list(elsewhere.iterdir())
