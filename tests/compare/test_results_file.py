"""results.jsonl survives a process killed mid-write: the torn line is reported once and dropped,
and the next record starts on a line of its own."""

from __future__ import annotations

import json

from zoo.compare.runner import append_record, read_results


def record(key: str, **values) -> dict:
    return {"key": key, "fingerprint": "f", **values}


def test_a_torn_last_line_is_reported_dropped_and_never_glued_to_the_next_record(tmp_path):
    path = tmp_path / "results.jsonl"
    whole = json.dumps(record("a|copy|0"))
    path.write_text(whole + "\n" + json.dumps(record("b|copy|0"))[:25])  # killed mid-write
    said = []
    assert list(read_results(path, said.append)) == ["a|copy|0"]
    assert len(said) == 1 and said[0].startswith("warning:") and "line 2" in said[0]
    assert path.read_text() == whole + "\n"  # cut from the file

    append_record(path, record("b|copy|0"))
    assert list(read_results(path, said.append)) == ["a|copy|0", "b|copy|0"] and len(said) == 1


def test_appending_to_a_file_without_a_final_newline_starts_a_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record("a|copy|0"))[:-3])  # torn, and never read back in between
    append_record(path, record("b|copy|0"))
    said = []
    assert list(read_results(path, said.append)) == ["b|copy|0"] and len(said) == 1 and "line 1" in said[0]


def test_a_whole_last_record_without_its_newline_is_kept_silently(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record("a|copy|0", value=1)) + "\n" + json.dumps(record("a|copy|0", value=2)))
    said = []
    assert read_results(path, said.append)["a|copy|0"]["value"] == 2  # a later line replaces an earlier one
    assert said == [] and path.read_bytes().endswith(b"}\n")


def test_no_file_no_records(tmp_path):
    assert read_results(tmp_path / "missing.jsonl", lambda line: None) == {}
