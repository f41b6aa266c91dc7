"""The code fingerprint follows the content of zoo/ and nothing else; report() records it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zoo.analysis.notebook import read_results, report
from zoo.analysis.provenance import code_fingerprint, commit_fingerprint, head_commit, provenance


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "zoo" / "blocks").mkdir(parents=True)
    (tmp_path / "zoo" / "__init__.py").write_text("")
    (tmp_path / "zoo" / "blocks" / "attention.py").write_text("SCALE = 1.0\n")
    (tmp_path / "README.md").write_text("# zoo\n")
    (tmp_path / ".gitignore").write_text("__pycache__/\n*.pyc\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def test_a_clean_checkout_matches_its_commit(repo):
    assert code_fingerprint(repo) == commit_fingerprint("HEAD", repo)
    assert provenance(repo) == {"commit": head_commit(repo), "zoo_fingerprint": code_fingerprint(repo),
                                "zoo_dirty": False}
    assert len(head_commit(repo)) == 40


def test_the_fingerprint_changes_with_zoo_files_and_nothing_else(repo):
    clean = code_fingerprint(repo)
    attention = repo / "zoo" / "blocks" / "attention.py"
    (repo / "README.md").write_text("# zoo, edited\n")  # outside zoo/
    (repo / "zoo" / "blocks" / "__pycache__").mkdir()
    (repo / "zoo" / "blocks" / "__pycache__" / "attention.cpython-311.pyc").write_bytes(b"\0compiled")  # ignored
    attention.touch()  # a new mtime, the same bytes
    assert code_fingerprint(repo) == clean and not provenance(repo)["zoo_dirty"]

    attention.write_text("SCALE = 0.5\n")
    changed = code_fingerprint(repo)
    assert changed != clean and provenance(repo)["zoo_dirty"]
    attention.write_text("SCALE = 1.0\n")
    assert code_fingerprint(repo) == clean

    (repo / "zoo" / "blocks" / "norms.py").write_text("EPS = 1e-5\n")  # a new module, not yet added
    assert code_fingerprint(repo) not in (clean, changed)
    (repo / "zoo" / "blocks" / "norms.py").unlink()
    attention.unlink()  # a tracked file deleted
    assert code_fingerprint(repo) != clean


def test_committing_makes_head_match_again(repo):
    (repo / "zoo" / "blocks" / "attention.py").write_text("SCALE = 0.5\n")
    edited = code_fingerprint(repo)
    git(repo, "commit", "-q", "-am", "edit")
    assert commit_fingerprint("HEAD", repo) == edited and commit_fingerprint("HEAD~1", repo) != edited
    assert not provenance(repo)["zoo_dirty"]


def test_without_git_the_same_files_hash_the_same(repo, tmp_path_factory):
    copy = tmp_path_factory.mktemp("installed")
    for path in (repo / "zoo").rglob("*.py"):
        target = copy / path.relative_to(repo)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert code_fingerprint(copy) == code_fingerprint(repo)  # git's blob ids, computed without git
    assert commit_fingerprint("HEAD", copy) is None and provenance(copy)["commit"] is None


def test_report_records_provenance_claim_and_headline(capsys):
    report({"verdict": "held", "val_loss": {"GQA-2": 3.991, "MHA": 3.837}}, claim="GQA keeps MHA's quality",
           headline="GQA-2 {val_loss[GQA-2]:.2f} vs MHA {val_loss[MHA]:.2f} nats")
    results = read_results(capsys.readouterr().out)
    assert results["claim"] == "GQA keeps MHA's quality"
    assert results["headline"] == "GQA-2 3.99 vs MHA 3.84 nats"
    assert results["provenance"] == provenance()
    assert results["provenance"]["zoo_fingerprint"] == code_fingerprint()


def test_report_refuses_bad_headlines_and_reserved_keys():
    with pytest.raises(ValueError, match="names 'loss', which the results lack"):
        report({"verdict": "held"}, headline="{loss:.2f}")
    with pytest.raises(ValueError, match=r"may not use the key\(s\) \['provenance'\]"):
        report({"provenance": "mine"})
