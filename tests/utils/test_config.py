import os

import pytest
import torch
from omegaconf import OmegaConf

from musicbench.utils.config import (
    CONFIG_DIR,
    _signature,
    launch_rank,
    register_resolvers,
    set_threads,
    to_container,
)


def test_signature_is_a_short_stable_hash_or_base():
    assert _signature("") == "base"
    sig = _signature("model.optimizer.lr=0.1")
    assert sig == _signature("model.optimizer.lr=0.1") != _signature("model.optimizer.lr=0.2")
    assert len(sig) == 10 and int(sig, 16) >= 0


def test_resolvers_are_registered_once_and_resolve(tmp_path):
    register_resolvers()
    register_resolvers()  # idempotent
    cfg = OmegaConf.create({"p": f"${{mb_abspath:{tmp_path}/a/../b}}", "s": "${mb_sig:'x=1'}"})
    assert cfg.p == str(tmp_path / "b") and cfg.s == _signature("x=1")


def test_the_config_dir_holds_the_primary_configs():
    assert (CONFIG_DIR / "train.yaml").is_file() and (CONFIG_DIR / "eval.yaml").is_file()


def test_set_threads_sets_torch_and_rejects_bad_values(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # restored after the test
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        # Read by Lightning's DDP launcher, which otherwise divides the cores between its processes.
        assert os.environ["OMP_NUM_THREADS"] == "1"
        set_threads(None)  # leaves it
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in (0, -2, 1.5, "2"):
        with pytest.raises(ValueError, match="threads="):
            set_threads(bad)


def test_to_container_resolves_interpolations():
    cfg = OmegaConf.create({"a": 2, "b": "${a}", "c": {"d": "${b}"}})
    assert to_container(cfg) == {"a": 2, "b": 2, "c": {"d": 2}}


def test_stored_config_keeps_data_roots_as_paths_references_and_paths_absolute(tmp_path, monkeypatch):
    from musicbench.utils.config import stored_config

    monkeypatch.chdir(tmp_path)
    cfg = OmegaConf.create(
        {
            "paths": {"chorales_root": "data/chorales", "output_dir": str(tmp_path / "run")},
            "data": {
                "root": "${paths.chorales_root}",
                "source": {"root": "${paths.chorales_root}"},
                "rate": 8000,
            },
            "seed": 3,
        }
    )
    stored = stored_config(cfg)
    assert stored["paths"]["chorales_root"] == str(tmp_path / "data" / "chorales")
    assert stored["data"] == {
        "root": "${paths.chorales_root}",
        "source": {"root": "${paths.chorales_root}"},
        "rate": 8000,
    }
    assert OmegaConf.create(stored).data.root == str(tmp_path / "data" / "chorales")  # self-contained


def test_link_data_paths_upgrades_configs_stored_with_literal_roots():
    from musicbench.utils.config import link_data_paths

    old = {
        "paths": {"chorales_root": "data/chorales", "output_dir": "/runs/x"},
        "data": {"root": "data/chorales", "cache_dir": "/runs/x", "sources": ["a"]},
    }
    linked = link_data_paths(old)
    assert linked["data"] == {"root": "${paths.chorales_root}", "cache_dir": "/runs/x", "sources": ["a"]}
    assert link_data_paths(linked) == linked


@pytest.mark.parametrize(
    ("env", "rank"),
    [({}, 0), ({"SLURM_PROCID": "1"}, 1), ({"LOCAL_RANK": "1"}, 1), ({"RANK": "0", "LOCAL_RANK": "1"}, 0)],
)
def test_launch_rank_and_rank_zero_resolver(monkeypatch, env, rank):
    """The launcher's rank before any process group: global ranks (RANK, SLURM_PROCID) first."""
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    register_resolvers()
    assert launch_rank() == rank
    subdir = OmegaConf.create({"d": "${mb_rank_zero:.hydra}"}).d
    assert subdir == (".hydra" if rank == 0 else None)
