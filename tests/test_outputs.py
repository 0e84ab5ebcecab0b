"""Output-path checks: one-line errors before anything is written or replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from trpo_tf.errors import OutputPathError
from trpo_tf.outputs import check_export_dir, check_output_dir, check_output_file


def test_output_dir_may_be_new_or_existing_but_not_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper", "--video") == tmp_path / "new" / "deeper"
    assert check_output_dir(tmp_path, "--video") == tmp_path
    with pytest.raises(OutputPathError, match="--video .*afile is an existing file"):
        check_output_dir(afile, "--video")
    with pytest.raises(OutputPathError, match="afile is a file, not a directory"):
        check_output_dir(afile / "sub" / "dir", "--video")


def test_output_file_checks_directory_parent_and_extension(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert check_output_file(afile, "--out") == afile  # an existing file is replaced
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output_file(tmp_path, "--out", (".png",))
    with pytest.raises(OutputPathError, match="afile is a file, not a directory"):
        check_output_file(afile / "x.png", "--out", (".png",))
    with pytest.raises(OutputPathError, match=r"extension '\.txt'; use one of \.png, \.pdf"):
        check_output_file(tmp_path / "x.txt", "--out", (".png", ".pdf"))
    assert check_output_file(tmp_path / "X.PNG", "--out", (".png",)).name == "X.PNG"


def test_export_dir_rules(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "policy").mkdir(parents=True)
    (run / "config.yaml").write_text("name: x\n")
    other = tmp_path / "other_export"
    other.mkdir()
    (other / "saved_model.pb").write_bytes(b"")
    own = run / "export"
    assert check_export_dir(own, own, force=False) == own  # new
    own.mkdir()
    (own / "saved_model.pb").write_bytes(b"")
    assert check_export_dir(own, own, force=False) == own  # re-export
    assert check_export_dir(tmp_path / "empty", own, force=False) == tmp_path / "empty"
    with pytest.raises(OutputPathError, match="already holds an export.*--force"):
        check_export_dir(other, own, force=False)
    assert check_export_dir(other, own, force=True) == other
    for protected in (run, run / "policy"):
        with pytest.raises(OutputPathError, match="run directory"):
            check_export_dir(protected, own, force=True)
