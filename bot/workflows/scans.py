"""Trivy reports (JSON, SchemaVersion 2): read, summarised, checked against the project's policy,
compared with the previous scan of the same image or repository.

Pure domain code: the report arrives as bytes (a CI job artifact or a webhook body), or as the
file a large webhook body was spooled to (mapped, :func:`parse_report_file`); nothing else here
does I/O. Only what the bot shows is kept, so that a report of tens of megabytes costs a few
megabytes once read: per vulnerability its id, package, installed and fixed versions, severity,
status, title (cut), primary URL, target and class; failed misconfigurations (id, title, severity,
target, URL); secrets (rule, category, severity, title, target, line). A secret finding's
``Match`` and ``Code`` — the secret itself — are never read into a field, so they cannot reach a
post, a log line or the SQLite file.

Reading
    The report is not ``json.loads``-ed whole. The document is walked by hand down to the
    ``Results`` array and each result's ``Vulnerabilities``/``Misconfigurations``/``Secrets``
    arrays; each element of those is decoded alone by the C scanner
    (``json.JSONDecoder.raw_decode`` at its offset), reduced to the fields above and dropped
    (``Packages`` and the like are skipped the same way, element by element). The bytes are
    decoded as Latin-1, one character per byte: CPython then stores the text at one byte per
    character, where UTF-8 decoding stores it at two (four) bytes per character as soon as one
    non-ASCII (non-BMP) character appears anywhere — real advisories have typographic quotes, some
    have emoji. The JSON structure is ASCII and reads the same; each kept string is turned back
    into the text its UTF-8 bytes meant (a string mixing raw UTF-8 and ``\\u00XX`` escapes, which
    Trivy does not write, would stay garbled, never crash). Peak memory is then the report's size
    plus what is kept.

    Figures (``bench/bench_scan.py``: 20 000 vulnerabilities, 33.5 MB indented as Trivy writes
    it, 60 targets, 1 % of titles with typographic quotes; Python 3.11, 2 vCPUs; parse +
    summarise; peak = growth over the bytes already read, tracemalloc, in a fresh process —
    ``ru_maxrss``/``VmHWM`` deltas agree within 5 MB):

    ==========================================  =========  ==========  ======  ============
    approach                                    first run  best of 3   peak    + one emoji
    ==========================================  =========  ==========  ======  ============
    ``json.loads`` whole, then extract          0.34 s     0.31 s      134 MB  201 MB
    walk + ``raw_decode`` per element, UTF-8    0.30 s     0.28 s      101 MB  201 MB
    walk + ``raw_decode`` per element, Latin-1  0.26 s     0.22 s       46 MB   46 MB
    ==========================================  =========  ==========  ======  ============

    All are within the 2 s target; the last (this module) keeps a third of the memory of
    ``json.loads`` and does not depend on which characters the report holds. Of its 0.22 s,
    reading takes 0.2 s and summarising 0.035 s (sorting 20 000 findings: 0.02 s). No
    third-party parser is needed (none is installed, none was measured): ``orjson`` would build
    the whole tree as ``json.loads`` does, and a streaming one (``ijson``) hands Python one event
    per token where this walk makes one C call per finding.

Faults
    Anything unreadable raises :class:`ReportUnreadable` with a reason key, never another
    exception: empty, too large (:data:`MAX_REPORT_BYTES`), UTF-16/32, not JSON, truncated,
    another schema (``SchemaVersion`` not 2, or the bare list of Trivy < 0.20), not a Trivy
    report, and an artifact type Trivy does not write for what CI scans (``vm``,
    ``aws_account``). Accepted types, ``aquasecurity/trivy:pkg/fanal/artifact/artifact.go``:
    ``container_image``, ``filesystem``, ``repository``, and the SBOMs ``cyclonedx`` and
    ``spdx`` (``trivy sbom``). Trivy omits ``Results`` (``omitempty`` in
    ``pkg/types/report.go``) when it found nothing to report: with a valid header (schema,
    artifact name and type) that is a clean report, not an unreadable one.

Counting
    Every entry of ``Vulnerabilities`` counts, as in Trivy's own tables (the same CVE in two
    packages, or the same package in two targets, counts twice). Waivers are by vulnerability id
    (case-insensitive); ``ignore_unfixed`` hides what has no fixed version, as Trivy's
    ``--ignore-unfixed``. The policy (``max_critical``, ``max_high``) applies to the counts left.
    Findings are keyed ``VulnerabilityID|PkgName|PkgPath or Target`` for the diff between two
    scans: the same CVE in the same package of two targets (two jars, two lock files) is two
    findings, while the installed version stays out of the key, so an upgrade that still carries
    the CVE is no news. Keys of scans stored before the target was in the key
    (``VulnerabilityID|PkgName``) are compared on those two parts.

Licenses
    ``Licenses`` findings (``trivy … --scanners license``, ``pkg/types/license.go``) are read
    (license name, category, severity, package or file, target) and counted apart, like
    misconfigurations: they never count against ``max_critical``/``max_high`` (a policy is about
    vulnerabilities), and a ``forbidden`` or ``restricted`` license (Trivy's CRITICAL and HIGH)
    makes the verdict ``warn``.
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

SEVERITIES: tuple[str, ...] = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
ARTIFACT_KINDS = {
    "container_image": "image",
    "filesystem": "repository",
    "repository": "repository",
    "cyclonedx": "sbom",
    "spdx": "sbom",
}
MAX_REPORT_BYTES = 128 * 1024 * 1024
TOP = 10
TITLE_MAX = 200
FIELD_MAX = 300  # package names, versions, targets, ids: real ones are far shorter

REASONS = ("empty", "too_large", "encoding", "not_json", "truncated", "schema", "not_trivy", "artifact")

Verdict = Literal["ok", "warn", "fail"]


class ReportUnreadable(Exception):
    """The bytes are not a Trivy report the bot can read; ``reason`` is one of :data:`REASONS`.

    The message is the reason key only: never a piece of the report (it may hold secrets).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- what is kept ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One entry of a result's ``Vulnerabilities``."""

    id: str
    pkg: str
    installed: str
    fixed: str
    severity: str
    status: str
    title: str
    url: str
    target: str
    klass: str
    pkg_path: str = ""  # where a language package lives inside the target (a jar in an image)

    @property
    def key(self) -> str:
        return f"{self.id}|{self.pkg}|{self.pkg_path or self.target}"

    @property
    def fixable(self) -> bool:
        return bool(self.fixed) or self.status == "fixed"


@dataclass(frozen=True, slots=True)
class Misconfig:
    """A failed check of ``Misconfigurations`` (passed ones are not kept)."""

    id: str
    title: str
    severity: str
    status: str
    target: str
    url: str = ""


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """Where a secret was found — never the secret: ``Match`` and ``Code`` are not read."""

    rule_id: str
    category: str
    severity: str
    title: str
    target: str
    start_line: int


@dataclass(frozen=True, slots=True)
class LicenseFinding:
    """One entry of a result's ``Licenses``: a package's (or a file's) license, as Trivy classed it."""

    name: str
    category: str  # forbidden, restricted, reciprocal, notice, permissive, unencumbered, unknown
    severity: str
    where: str  # the package name, or the file path for a license found in a file
    target: str


@dataclass(frozen=True)
class ScanReport:
    artifact_name: str
    artifact_type: str
    created_at: str = ""
    os: str = ""  # "alpine 3.9.4" for an image whose OS was detected
    os_eosl: bool = False  # the OS release no longer gets security fixes
    findings: tuple[Finding, ...] = ()
    misconfigs: tuple[Misconfig, ...] = ()
    secrets: tuple[SecretFinding, ...] = ()
    licenses: tuple[LicenseFinding, ...] = ()

    @property
    def kind(self) -> str:
        """``image``, ``repository`` or ``sbom``."""
        return ARTIFACT_KINDS.get(self.artifact_type, "repository")


@dataclass(frozen=True)
class Policy:
    """A project's scan policy; ``None`` is no limit."""

    max_critical: int | None = None
    max_high: int | None = None
    ignore_unfixed: bool = False

    def __post_init__(self) -> None:
        for limit in (self.max_critical, self.max_high):
            if limit is not None and limit < 0:
                raise ValueError("a policy limit cannot be negative")


@dataclass(frozen=True)
class Breach:
    """One reason a scan breaks the policy: ``count`` findings of ``severity`` for at most ``limit``."""

    severity: str
    count: int
    limit: int


@dataclass(frozen=True)
class ScanSummary:
    artifact_name: str
    artifact_type: str
    kind: str
    os: str
    os_eosl: bool
    policy: Policy
    counts: Mapping[str, int]  # per severity, waived and (with ignore_unfixed) unfixed excluded
    total: int
    fixable: int
    waived: int
    unfixed_ignored: int
    top: tuple[Finding, ...]
    findings: tuple[Finding, ...]  # every counted finding, in the order of ``top``
    waived_findings: tuple[Finding, ...]
    unused_waivers: frozenset[str]  # waived ids this report does not contain (candidates for removal)
    verdict: Verdict
    breaches: tuple[Breach, ...]
    keys: frozenset[str]  # every ``VulnID|pkg`` of the report: what the next scan is compared with
    visible_keys: frozenset[str]  # the keys of counted findings
    misconfigs: tuple[Misconfig, ...]
    misconfig_counts: Mapping[str, int]
    secrets: tuple[SecretFinding, ...]
    secret_counts: Mapping[str, int]
    licenses: tuple[LicenseFinding, ...] = ()
    license_counts: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))

    @property
    def breached(self) -> bool:
        return bool(self.breaches)


@dataclass(frozen=True)
class ScanDiff:
    """What changed since the previous scan of the same subject; ``first`` when there was none."""

    new: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    first: bool = False

    @property
    def new_count(self) -> int:
        return len(self.new)

    @property
    def fixed_count(self) -> int:
        return len(self.fixed)


# -- reading --------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_scanstring: Any = vars(json.decoder)["scanstring"]  # the C version when available
_LITERALS = ("true", "false", "null")
_UTF8_BOM = b"\xef\xbb\xbf"


class _Syntax(ValueError):
    def __init__(self, pos: int) -> None:
        super().__init__("syntax")
        self.pos = pos


class _Walker:
    """Walks a JSON document by hand, decoding only the values asked for."""

    __slots__ = ("i", "s")

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        match = _WS.match(self.s, self.i)
        self.i = match.end() if match else self.i
        return self.s[self.i : self.i + 1]

    def value(self) -> Any:
        self.peek()
        obj, self.i = _DECODER.raw_decode(self.s, self.i)
        return obj

    def _open(self, char: str) -> bool:
        """Consume ``char``; True when the container is empty (its closing char consumed too)."""
        if self.peek() != char:
            raise _Syntax(self.i)
        self.i += 1
        closing = "}" if char == "{" else "]"
        if self.peek() == closing:
            self.i += 1
            return True
        return False

    def _next(self, closing: str) -> bool:
        """After a member or element: True if another follows, False at the end of the container."""
        char = self.peek()
        self.i += 1
        if char == ",":
            return True
        if char == closing:
            return False
        raise _Syntax(self.i - 1)

    def members(self) -> Iterator[str]:
        """The keys of an object; the caller consumes each value (``value()``, ``skip()``…)."""
        if self._open("{"):
            return
        while True:
            if self.peek() != '"':
                raise _Syntax(self.i)
            key, self.i = _scanstring(self.s, self.i + 1, True)
            if self.peek() != ":":
                raise _Syntax(self.i)
            self.i += 1
            yield key
            if not self._next("}"):
                return

    def elements(self) -> Iterator[None]:
        """The elements of an array; the caller consumes each one."""
        if self._open("["):
            return
        while True:
            yield
            if not self._next("]"):
                return

    def skip(self) -> None:
        """Consume a value, array element by array element (a large ``Packages`` is never whole)."""
        if self.peek() == "[":
            for _ in self.elements():
                self.skip()
        else:
            self.value()

    def end(self) -> None:
        if self.peek():
            raise _Syntax(self.i)


class _Pool(dict[str, str]):
    """One copy of each repeated short string (severities, targets, package names, versions)."""

    def __missing__(self, key: str) -> str:
        self[key] = key
        return key


def _utf8(value: str) -> str:
    """A string of the Latin-1-decoded document back to the text its UTF-8 bytes meant."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):  # a \u escape, or bytes that were not UTF-8
        return value


def _text(value: Any, pool: _Pool, limit: int = FIELD_MAX) -> str:
    if not isinstance(value, str):
        return "" if value is None or isinstance(value, (dict, list)) else str(value)[:limit]
    if not value.isascii():
        value = _utf8(value[: limit * 4])
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return pool[value] if len(value) <= 80 else value


def _severity(value: Any) -> str:
    name = value.upper() if isinstance(value, str) else ""
    return name if name in SEVERITY_RANK else "UNKNOWN"


def _title(item: dict[str, Any], pool: _Pool) -> str:
    title = item.get("Title")
    if not isinstance(title, str) or not title.strip():
        # Some advisories have no title (the alpine fixture's musl one): the description's start.
        title = item.get("Description")
        if not isinstance(title, str):
            return ""
    title = " ".join(_utf8(title[: TITLE_MAX * 4]).split())
    return _text(title, pool, TITLE_MAX)


def _url(value: Any) -> str:
    return _utf8(value) if isinstance(value, str) and len(value) <= 500 else ""


class _Reader:
    def __init__(self, text: str) -> None:
        self.walk = _Walker(text)
        self.pool = _Pool()
        self.findings: list[Finding] = []
        self.misconfigs: list[Misconfig] = []
        self.secrets: list[SecretFinding] = []
        self.licenses: list[LicenseFinding] = []
        self.schema: Any = None

    def report(self) -> ScanReport:
        walk = self.walk
        head = walk.peek()
        if head == "[":
            raise ReportUnreadable("schema")  # Trivy < 0.20 wrote a bare list of results
        if head != "{":
            walk.value()  # not JSON at all raises here (→ not_json / truncated)
            walk.end()
            raise ReportUnreadable("not_trivy")
        top: dict[str, Any] = {}
        for key in walk.members():
            if key == "Results":
                if "SchemaVersion" in top and not _is_v2(top["SchemaVersion"]):
                    raise ReportUnreadable("schema")  # before reading megabytes of another format
                self.results()
            elif key in ("SchemaVersion", "ArtifactName", "ArtifactType", "CreatedAt", "Metadata"):
                top[key] = walk.value()
            else:
                walk.skip()
        walk.end()
        if not _is_v2(top.get("SchemaVersion")):
            raise ReportUnreadable("schema")
        name, kind = top.get("ArtifactName"), top.get("ArtifactType")
        if not isinstance(name, str) or not isinstance(kind, str) or not name:
            raise ReportUnreadable("not_trivy")
        if kind not in ARTIFACT_KINDS:
            raise ReportUnreadable("artifact")
        os_name, eosl = _os(top.get("Metadata"))
        created = top.get("CreatedAt")
        if kind == "container_image":
            name = image_reference(name, top.get("Metadata"))
        return ScanReport(
            artifact_name=_utf8(name[: FIELD_MAX * 4])[:FIELD_MAX],
            artifact_type=kind,
            created_at=created[:40] if isinstance(created, str) else "",
            os=os_name,
            os_eosl=eosl,
            findings=tuple(self.findings),
            misconfigs=tuple(self.misconfigs),
            secrets=tuple(self.secrets),
            licenses=tuple(self.licenses),
        )

    def results(self) -> None:
        """Read ``Results``; ``null`` is as good as absent (nothing found)."""
        walk = self.walk
        head = walk.peek()
        if head == "n":
            walk.value()
            return
        if head != "[":
            walk.value()
            raise ReportUnreadable("not_trivy")
        for _ in walk.elements():
            if walk.peek() != "{":
                walk.value()
                raise ReportUnreadable("not_trivy")
            self.result()

    def result(self) -> None:
        walk, pool = self.walk, self.pool
        target = klass = ""
        vulns: list[tuple[str, str, str, str, str, str, str, str, str]] = []
        licenses: list[tuple[str, str, str, str]] = []
        misconfigs: list[tuple[str, str, str, str, str]] = []
        secrets: list[tuple[str, str, str, str, int]] = []
        for key in walk.members():
            if key == "Vulnerabilities":
                for item in self.items():
                    vid = item.get("VulnerabilityID")
                    if not isinstance(vid, str) or not vid:
                        raise ReportUnreadable("not_trivy")
                    vulns.append(
                        (
                            _text(vid, pool),
                            _text(item.get("PkgName"), pool),
                            _text(item.get("InstalledVersion"), pool),
                            _text(item.get("FixedVersion"), pool),
                            _severity(item.get("Severity")),
                            _text(item.get("Status"), pool),
                            _title(item, pool),
                            _url(item.get("PrimaryURL")),
                            _text(item.get("PkgPath"), pool),
                        )
                    )
            elif key == "Licenses":
                for item in self.items():
                    licenses.append(
                        (
                            _text(item.get("Name"), pool),
                            _text(item.get("Category"), pool),
                            _severity(item.get("Severity")),
                            _text(item.get("PkgName") or item.get("FilePath"), pool),
                        )
                    )
            elif key == "Misconfigurations":
                for item in self.items():
                    if item.get("Status") != "FAIL":
                        continue
                    misconfigs.append(
                        (
                            _text(item.get("ID") or item.get("AVDID"), pool),
                            _title(item, pool),
                            _severity(item.get("Severity")),
                            "FAIL",
                            _url(item.get("PrimaryURL")),
                        )
                    )
            elif key == "Secrets":
                for item in self.items():
                    line = item.get("StartLine")
                    secrets.append(
                        (
                            _text(item.get("RuleID"), pool),
                            _text(item.get("Category"), pool),
                            _severity(item.get("Severity")),
                            _text(item.get("Title"), pool, TITLE_MAX),
                            line if isinstance(line, int) and not isinstance(line, bool) else 0,
                        )
                    )
            elif key == "Target":
                target = _text(walk.value(), pool)
            elif key == "Class":
                klass = _text(walk.value(), pool)
            else:
                walk.skip()  # Packages, MisconfSummary, CustomResources…
        self.findings.extend(Finding(*v[:8], target=target, klass=klass, pkg_path=v[8]) for v in vulns)
        self.licenses.extend(LicenseFinding(*item, target=target) for item in licenses)
        self.misconfigs.extend(
            Misconfig(id=m[0], title=m[1], severity=m[2], status=m[3], target=target, url=m[4]) for m in misconfigs
        )
        self.secrets.extend(
            SecretFinding(rule_id=s[0], category=s[1], severity=s[2], title=s[3], target=target, start_line=s[4])
            for s in secrets
        )

    def items(self) -> Iterator[dict[str, Any]]:
        """The objects of an array decoded one at a time; ``null`` is an empty array."""
        walk = self.walk
        head = walk.peek()
        if head == "n":
            walk.value()
            return
        if head != "[":
            walk.value()
            raise ReportUnreadable("not_trivy")
        for _ in walk.elements():
            item = walk.value()
            if not isinstance(item, dict):
                raise ReportUnreadable("not_trivy")
            yield item


def _is_v2(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 2


def _os(metadata: Any) -> tuple[str, bool]:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("OS"), dict):
        return "", False
    os_info = metadata["OS"]
    family, name = os_info.get("Family"), os_info.get("Name")
    words = [_utf8(w) for w in (family, name) if isinstance(w, str) and w]
    return " ".join(words)[:80], os_info.get("EOSL") is True


def _truncated(text: str, pos: int, message: str) -> bool:
    """Whether a syntax error at ``pos`` is the document ending early rather than bad JSON."""
    if message.startswith("Unterminated string"):
        return True
    rest = text[pos:].rstrip()
    return not rest or any(word.startswith(rest) for word in _LITERALS)


_NON_BLANK = re.compile(rb"[^ \t\n\r]")


def parse_report(raw: bytes | memoryview) -> ScanReport:
    """The parts of a Trivy JSON report the bot uses; :class:`ReportUnreadable` for anything else."""
    return _parse_text(_text_of(raw))


def _text_of(raw: bytes | memoryview) -> str:
    if len(raw) > MAX_REPORT_BYTES:
        raise ReportUnreadable("too_large")
    if _NON_BLANK.search(raw) is None:
        raise ReportUnreadable("empty")
    if bytes(raw[:3]) == _UTF8_BOM:
        raw = raw[len(_UTF8_BOM) :]
    if b"\x00" in bytes(raw[:4]):
        raise ReportUnreadable("encoding")  # UTF-16 or UTF-32 (a PowerShell redirection, say)
    # Latin-1 maps each byte to one character: the text takes one byte per character whatever
    # it holds (UTF-8 would make it two or four as soon as one such character appears), and the
    # JSON structure, all ASCII, reads the same. Kept strings are turned back into UTF-8 text.
    text: str = codecs.latin_1_decode(raw)[0]
    return text


def _parse_text(text: str) -> ScanReport:
    try:
        return _Reader(text).report()
    except _Syntax as exc:
        raise ReportUnreadable("truncated" if _truncated(text, exc.pos, "") else "not_json") from None
    except json.JSONDecodeError as exc:
        raise ReportUnreadable("truncated" if _truncated(text, exc.pos, exc.msg) else "not_json") from None
    except (ValueError, RecursionError):  # an integer of 5 000 digits, nesting 100 000 deep
        raise ReportUnreadable("not_json") from None


def parse_report_file(path: Path) -> ScanReport:
    """:func:`parse_report` of a file, mapped rather than read: the bytes are decoded straight from
    the mapping (no copy of them in memory), which is closed before the walk, so that the walk
    holds only the text (one byte per byte) and what it keeps."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size == 0:
            raise ReportUnreadable("empty")
        if size > MAX_REPORT_BYTES:
            raise ReportUnreadable("too_large")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            mapped.madvise(mmap.MADV_SEQUENTIAL)
            view = memoryview(mapped)
            try:
                text = _text_of(view)
            finally:
                view.release()
    return _parse_text(text)


# -- summarising ----------------------------------------------------------------------------------


def _order(finding: Finding) -> tuple[int, bool, str, str, str]:
    """CRITICAL first, then HIGH…; within a severity what can be fixed now first."""
    return (SEVERITY_RANK[finding.severity], not finding.fixable, finding.id, finding.pkg, finding.target)


def active_waivers(waivers: Mapping[str, date], today: date) -> set[str]:
    """The ids whose waiver still runs ``today`` (a waiver is valid up to its date included)."""
    return {vid.upper() for vid, until in waivers.items() if until >= today}


def summarize(report: ScanReport, waived: Set[str], policy: Policy | None = None) -> ScanSummary:
    """Counts, top findings and the policy verdict of one report; ``waived`` holds active waiver ids."""
    policy = policy or Policy()
    waived_ids = {vid.upper() for vid in waived}
    counts = dict.fromkeys(SEVERITIES, 0)
    counted: list[Finding] = []
    waived_findings: list[Finding] = []
    matched: set[str] = set()
    keys: set[str] = set()
    visible: set[str] = set()
    fixable = unfixed_ignored = 0
    ignore_unfixed = policy.ignore_unfixed
    for finding in report.findings:
        key = finding.key
        keys.add(key)
        if waived_ids:
            upper = finding.id.upper()
            if upper in waived_ids:
                matched.add(upper)
                waived_findings.append(finding)
                continue
        can_fix = finding.fixable
        if ignore_unfixed and not can_fix:
            unfixed_ignored += 1
            continue
        counts[finding.severity] += 1
        fixable += can_fix
        counted.append(finding)
        visible.add(key)
    counted.sort(key=_order)
    breaches = []
    for severity, limit in (("CRITICAL", policy.max_critical), ("HIGH", policy.max_high)):
        if limit is not None and counts[severity] > limit:
            breaches.append(Breach(severity, counts[severity], limit))
    misconfig_counts = _counts(m.severity for m in report.misconfigs)
    secret_counts = _counts(s.severity for s in report.secrets)
    license_counts = _counts(item.severity for item in report.licenses)
    verdict: Verdict = "ok"
    if breaches:
        verdict = "fail"
    elif (
        counts["CRITICAL"]
        or counts["HIGH"]
        or report.secrets
        or misconfig_counts["CRITICAL"]
        or misconfig_counts["HIGH"]
        or license_counts["CRITICAL"]
        or license_counts["HIGH"]
    ):
        verdict = "warn"
    return ScanSummary(
        artifact_name=report.artifact_name,
        artifact_type=report.artifact_type,
        kind=report.kind,
        os=report.os,
        os_eosl=report.os_eosl,
        policy=policy,
        counts=counts,
        total=len(counted),
        fixable=fixable,
        waived=len(waived_findings),
        unfixed_ignored=unfixed_ignored,
        top=tuple(counted[:TOP]),
        findings=tuple(counted),
        waived_findings=tuple(waived_findings),
        unused_waivers=frozenset(waived_ids - matched),
        verdict=verdict,
        breaches=tuple(breaches),
        keys=frozenset(keys),
        visible_keys=frozenset(visible),
        misconfigs=tuple(sorted(report.misconfigs, key=_misconfig_order)),
        misconfig_counts=misconfig_counts,
        secrets=tuple(sorted(report.secrets, key=lambda s: (SEVERITY_RANK[s.severity], s.target, s.start_line))),
        secret_counts=secret_counts,
        licenses=tuple(sorted(report.licenses, key=lambda x: (SEVERITY_RANK[x.severity], x.name, x.where, x.target))),
        license_counts=license_counts,
    )


def _misconfig_order(item: Misconfig) -> tuple[int, str, str]:
    return (SEVERITY_RANK[item.severity], item.id, item.target)


def _counts(severities: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity in severities:
        counts[severity] += 1
    return counts


def diff(previous_keys: Set[str] | None, summary: ScanSummary) -> ScanDiff:
    """New findings (counted ones only: a waived or hidden one is no news) and fixed ones.

    ``previous_keys`` is the previous scan's :attr:`ScanSummary.keys`; ``None`` when this subject was
    never scanned before.
    """
    if previous_keys is None:
        return ScanDiff(first=True)
    visible, keys, previous = set(summary.visible_keys), set(summary.keys), set(previous_keys)
    if any(key.count("|") < 2 for key in previous):
        # Stored before the target was in the key: compare on the parts both have.
        visible, keys, previous = _legacy(visible), _legacy(keys), _legacy(previous)
    return ScanDiff(new=tuple(sorted(visible - previous)), fixed=tuple(sorted(previous - keys)))


def _legacy(keys: Iterable[str]) -> set[str]:
    return {"|".join(key.split("|", 2)[:2]) for key in keys}


# -- Harbor's own Trivy scans ----------------------------------------------------------------------

# The MIME types of a Harbor vulnerability report, keys of ``…/additions/vulnerabilities``'s answer
# (goharbor/harbor:src/pkg/scan/vuln/report.go and src/pkg/scan/rest/v1/models.go MimeType*).
HARBOR_REPORT_MIMES = (
    "application/vnd.security.vulnerability.report; version=1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
)


_ARCHIVE = (".tar", ".tar.gz", ".tgz", ".oci")


def image_reference(name: str, metadata: Any) -> str:
    """The image as people pull it, ``registry/project/repo:tag@sha256:0123456789ab``, from Trivy's
    ``Metadata.RepoTags`` and ``RepoDigests`` when the scanned artifact is an image archive (``trivy
    image --input app.tar`` names the file), with the digest's first 12 digits; the name otherwise."""
    meta = metadata if isinstance(metadata, dict) else {}
    tags = [t for t in meta.get("RepoTags") or () if isinstance(t, str) and t]
    digests = [d for d in meta.get("RepoDigests") or () if isinstance(d, str) and "@" in d]
    reference = tags[0] if tags and (name.endswith(_ARCHIVE) or name.startswith(("/", "./"))) else name
    if digests and "@" not in reference:
        reference += "@" + digests[0].split("@", 1)[1][: len("sha256:") + 12]
    return reference


def harbor_report(answer: Mapping[str, Any], artifact_name: str) -> ScanReport:
    """Harbor's report of an image (``Report.vulnerabilities``: ``VulnerabilityItem`` with id,
    package, version, fix_version, severity, description, links) as the :class:`ScanReport` a
    Trivy JSON report gives, so that the summary, policy, waivers and diff are the same.

    Harbor's severities are capitalised (``Critical``) and include ``None``/``Negligible``, both
    ranked UNKNOWN here as Trivy would. :class:`ReportUnreadable` if the answer holds no report.
    """
    report = next((answer[m] for m in HARBOR_REPORT_MIMES if isinstance(answer.get(m), dict)), None)
    if report is None or not isinstance(report.get("vulnerabilities"), list):
        raise ReportUnreadable("not_trivy")
    items: list[Any] = report["vulnerabilities"]
    pool = _Pool()
    findings: list[Finding] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        links = item.get("links")
        findings.append(
            Finding(
                id=_text(item["id"], pool),
                pkg=_text(item.get("package"), pool),
                installed=_text(item.get("version"), pool),
                fixed=_text(item.get("fix_version"), pool),
                severity=_severity(item.get("severity")),
                status="",
                title=_title({"Description": item.get("description")}, pool),
                url=_url(links[0]) if isinstance(links, list) and links else "",
                target=artifact_name,
                klass="os-pkgs",
            )
        )
    return ScanReport(artifact_name, "container_image", str(report.get("generated_at") or ""), findings=tuple(findings))
