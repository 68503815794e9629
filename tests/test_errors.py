"""User errors: which exceptions are reported as one line, and what the line says."""

import errno

import pytest
from hydra.errors import InstantiationException
from torch.utils.data import DataLoader, Dataset

from musicbench.data.tracks import DatasetError
from musicbench.errors import (
    CheckOutputWritable,
    CheckpointNotFoundError,
    ConfigError,
    ReportedError,
    UserError,
    reported_errors,
    user_message,
)


def test_user_errors_keep_their_builtin_types():
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointNotFoundError, FileNotFoundError)
    assert issubclass(DatasetError, UserError) and issubclass(DatasetError, ValueError)


def test_user_message_looks_through_wrappers():
    cause = DatasetError("dataset root /x does not exist")
    try:
        raise InstantiationException("Error in call to target 'X':\nDatasetError(...)") from cause
    except InstantiationException as wrapped:
        assert user_message(wrapped) == "dataset root /x does not exist"
    assert user_message(PermissionError(errno.EACCES, "Permission denied", "/out/ckpt")) == (
        "Permission denied: /out/ckpt"
    )
    assert user_message(KeyError("a bug")) is None
    assert user_message(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None  # may be a bug


def test_reported_errors_wraps_user_errors_only():
    with pytest.raises(ReportedError, match=r"^error: data.batch_size must be positive") as info:
        with reported_errors():
            raise ConfigError("data.batch_size must be positive, got 0")
    assert isinstance(info.value.__cause__, ConfigError)  # chained: HYDRA_FULL_ERROR=1 shows both
    with pytest.raises(ZeroDivisionError):
        with reported_errors():
            1 / 0  # noqa: B018


class _BadItem(Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, i):
        raise DatasetError("track 'a' (train): cannot read a.wav")


def test_worker_error_without_the_worker_traceback():
    loader = DataLoader(_BadItem(), num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(DatasetError) as info:
        next(iter(loader))
    assert "Original Traceback" in str(info.value)
    assert user_message(info.value) == "track 'a' (train): cannot read a.wav (in DataLoader worker 0)"


def test_output_check_stops_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    CheckOutputWritable._check(str(tmp_path / "run"))
    assert (tmp_path / "run").is_dir() and not list((tmp_path / "run").iterdir())
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as info:
        CheckOutputWritable._check(str(blocker / "run"))
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"error: cannot write the run folder {blocker / 'run'}") and "HYDRA_FULL_ERROR" in err
    )


def test_unwritable_output_names_the_file(tmp_path):
    from musicbench.errors import OutputError
    from musicbench.utils.files import write_text_atomic

    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "run" / "config.yaml"
    with pytest.raises(OutputError) as info:
        write_text_atomic(target, "x")
    assert user_message(info.value) == f"cannot write {target}: Not a directory"
    assert isinstance(info.value, OSError)
