"""The spool's files: what a crash leaves is removed at start-up; a mapped report reads as its bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.spool import Spool
from bot.workflows import scans
from services.emulators.fixtures import fixtures_dir


def test_start_up_removes_uploads_in_flight_and_reports_no_pending_event_names(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", threshold=1024, slots=2, wait_seconds=0)
    spool.prepare(set())
    (spool.tmp / "crashed.body").write_bytes(b"half a report")
    (spool.reports / "pending.json").write_bytes(b"{}")
    (spool.reports / "processed.json").write_bytes(b"{}")
    assert spool.prepare({"pending.json"}) == 2
    assert list(spool.tmp.iterdir()) == []
    assert [p.name for p in spool.reports.iterdir()] == ["pending.json"]
    assert (spool.directory / "tmp").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("name", ["trivy_image_report.json", "trivy_fs_report.json"])
def test_a_report_read_from_its_mapped_file_is_the_report_its_bytes_are(tmp_path: Path, name: str) -> None:
    raw = (fixtures_dir() / name).read_bytes()
    path = tmp_path / "report.json"
    path.write_bytes(b"\xef\xbb\xbf" + raw)  # a BOM, as PowerShell writes it
    assert scans.parse_report_file(path) == scans.parse_report(raw)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"  \n\t", "empty"),
        (b'{"SchemaVersion": 2, "Results": [', "truncated"),
        (b"\xff\xfe{\x00", "encoding"),
    ],
)
def test_a_mapped_file_that_is_no_report_says_why(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(content)
    with pytest.raises(scans.ReportUnreadable) as caught:
        scans.parse_report_file(path)
    assert caught.value.reason == reason
