"""Reading a large Trivy report: parse + summarise time and peak memory growth.

Generates a realistic report of 20 000 vulnerabilities (about 30 MB, 2-space indented as Trivy
writes it) from the alpine fixture's vulnerability: 60 targets (OS packages, jars, node and python
packages), 2 000 packages, varied severities and statuses, long descriptions and reference lists,
a few non-ASCII characters (which make Python store the whole text two bytes per character, as
real reports do), plus misconfigurations and secrets. Then, each in a fresh subprocess so that the
resident-set figures are honest:

- ``stream`` (what ``bot.workflows.scans.parse_report`` does) and, for comparison, ``loads``
  (``json.loads`` of the whole document, then the same fields extracted);
- time of the first run and best of 3, without tracemalloc;
- peak growth over the bytes already read: ``ru_maxrss`` delta around the first run, and the
  tracemalloc peak in another process (tracemalloc slows Python down, so never timed).

    .venv/bin/python bench/bench_scan.py [--vulns 20000] [--keep PATH]

Targets: parse + summarise < 2 s, peak growth < 300 MB. Exit 0 when measured (a missed target is
printed, not fatal), 1 when the measure failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchError, heading, load_average, machine_line, table, verdict
from bot.i18n import Translator
from bot.render.scans import full_csv, full_list, scan_card
from bot.workflows.scans import (
    Finding,
    Misconfig,
    Policy,
    ScanReport,
    SecretFinding,
    diff,
    parse_report,
    summarize,
)
from services.emulators.fixtures import fixture

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = fixture("trivy_image_report.json")
TIME_TARGET_S = 2.0
MEMORY_TARGET_MB = 300.0
CHILD_TIMEOUT_S = 120.0
MAX_VULNS = 200_000
MB = 1_000_000

WORDS = (
    "buffer overflow heap stack use-after-free remote attacker crafted request denial service memory "
    "corruption integer signedness parsing certificate validation bypass authentication session cookie "
    "header injection path traversal deserialization untrusted input allows execute arbitrary code via "
    "specially function library component version before affected when processing malformed data could "
    "lead information disclosure privilege escalation local user kernel driver network packet timing "
    "side channel leak null pointer dereference out-of-bounds read write infinite loop resource consumption"
).split()
SEVERITY_WEIGHTS = (("CRITICAL", 5), ("HIGH", 20), ("MEDIUM", 45), ("LOW", 25), ("UNKNOWN", 5))
UNFIXED = ("affected", "will_not_fix", "fix_deferred", "end_of_life")


# -- the report -----------------------------------------------------------------------------------


def template() -> dict[str, Any]:
    """The fixture's first vulnerability, or a copy of its shape when the fixture is not there."""
    if FIXTURE.exists():
        vuln: dict[str, Any] = json.loads(FIXTURE.read_bytes())["Results"][0]["Vulnerabilities"][0]
        return vuln
    return {
        "VulnerabilityID": "CVE-2019-1549",
        "PkgName": "libcrypto1.1",
        "InstalledVersion": "1.1.1b-r1",
        "FixedVersion": "1.1.1d-r0",
        "Status": "fixed",
        "Severity": "MEDIUM",
        "Title": "openssl: information disclosure in fork()",
    }


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def generate(vulns: int, seed: int = 20_000, wide: bool = False) -> bytes:
    """A Trivy image report of ``vulns`` vulnerabilities (deterministic for a given seed).

    ``wide`` puts one character outside the Basic Multilingual Plane (an emoji) in one title:
    a Python str holding it takes four bytes per character.
    """
    rng = random.Random(seed)
    base = template()
    fixture_meta: dict[str, Any] = {}
    if FIXTURE.exists():
        fixture_meta = json.loads(FIXTURE.read_bytes())["Metadata"]
    targets: list[tuple[str, str, str]] = [("registry.example/app:1.4.2 (debian 12.5)", "os-pkgs", "debian")]
    for n in range(20):
        targets.append((f"app/lib/component-{n}-2.{n}.jar", "lang-pkgs", "jar"))
    for n in range(20):
        targets.append((f"srv/front/node_modules/pkg-{n}/package-lock.json", "lang-pkgs", "npm"))
    for n in range(19):
        targets.append((f"usr/lib/python3.11/site-packages/dist-{n}.dist-info/METADATA", "lang-pkgs", "python-pkg"))
    packages = [f"{rng.choice(('lib', 'py-', 'node-', ''))}{rng.choice(WORDS)}-{n}" for n in range(2_000)]
    weights = [w for _, w in SEVERITY_WEIGHTS]
    names = [s for s, _ in SEVERITY_WEIGHTS]
    per_target: list[list[dict[str, Any]]] = [[] for _ in targets]
    for n in range(vulns):
        pkg = packages[rng.randrange(len(packages))]
        year = rng.randint(2015, 2025)
        vid = f"CVE-{year}-{rng.randint(1000, 49999)}"
        installed = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}"
        fixed = rng.random() < 0.7
        vuln = dict(base)
        vuln.update(
            {
                "VulnerabilityID": vid,
                "PkgID": f"{pkg}@{installed}",
                "PkgName": pkg,
                "PkgIdentifier": {"PURL": f"pkg:generic/{pkg}@{installed}", "UID": f"{rng.getrandbits(64):016x}"},
                "InstalledVersion": installed,
                "FixedVersion": f"{installed}.{rng.randint(1, 9)}" if fixed else "",
                "Status": "fixed" if fixed else rng.choice(UNFIXED),
                "PrimaryURL": f"https://avd.aquasec.com/nvd/{vid.lower()}",
                "Fingerprint": f"sha256:{rng.getrandbits(256):064x}",
                "Title": f"{pkg}: {sentence(rng, rng.randint(4, 10))}"
                + (" — “quoted”" if n % 100 == 0 else "")  # real advisories have some non-ASCII
                + (" 🔥" if wide and n == vulns // 2 else ""),
                "Description": sentence(rng, rng.randint(6, 30)),
                "Severity": rng.choices(names, weights)[0],
                "References": [
                    f"https://security.example.org/advisories/{vid}/{k}-{rng.getrandbits(32):08x}"
                    for k in range(rng.randint(1, 3))
                ],
                "CVSS": {"nvd": base.get("CVSS", {}).get("nvd", {})},
            }
        )
        vuln.pop("VendorSeverity", None)  # Trivy drops it from JSON output (types.Result.MarshalJSON)
        if not fixed:
            vuln.pop("FixedVersion")
        where = rng.randrange(len(targets))
        if targets[where][1] != "os-pkgs":
            vuln.pop("Layer", None)  # only an image's OS packages come with their layer here
        per_target[where].append(vuln)
    results: list[dict[str, Any]] = []
    for (target, klass, kind), found in zip(targets, per_target, strict=True):
        results.append({"Target": target, "Class": klass, "Type": kind, "Vulnerabilities": found})
    results.append(
        {
            "Target": "Dockerfile",
            "Class": "config",
            "Type": "dockerfile",
            "MisconfSummary": {"Successes": 20, "Failures": 3},
            "Misconfigurations": [
                {
                    "Type": "Dockerfile Security Check",
                    "ID": f"DS00{k}",
                    "AVDID": f"AVD-DS-000{k}",
                    "Title": "Image user should not be 'root'",
                    "Description": sentence(rng, 20),
                    "Severity": ("HIGH", "MEDIUM", "LOW")[k % 3],
                    "Status": "FAIL",
                    "PrimaryURL": f"https://avd.aquasec.com/misconfig/ds00{k}",
                }
                for k in range(1, 4)
            ],
        }
    )
    results.append(
        {
            "Target": "app/config/settings.py",
            "Class": "secret",
            "Secrets": [
                {
                    "RuleID": "aws-access-key-id",
                    "Category": "AWS",
                    "Severity": "CRITICAL",
                    "Title": "AWS Access Key ID",
                    "StartLine": 12,
                    "EndLine": 12,
                    "Code": {"Lines": [{"Number": 12, "Content": "KEY = '********************'"}]},
                    "Match": "KEY = '********************'",
                }
            ],
        }
    )
    report = {
        "SchemaVersion": 2,
        "Trivy": {"Version": "0.58.0"},
        "CreatedAt": "2025-01-01T00:00:00Z",
        "ArtifactName": "registry.example/app:1.4.2",
        "ArtifactType": "container_image",
        "Metadata": fixture_meta,
        "Results": results,
    }
    return json.dumps(report, indent=2, ensure_ascii=False).encode()


# -- the two ways to read it ----------------------------------------------------------------------


def loads_report(raw: bytes) -> ScanReport:
    """The alternative measured: ``json.loads`` of the whole document, then the same fields."""
    tree = json.loads(raw)
    findings: list[Finding] = []
    misconfigs: list[Misconfig] = []
    secrets: list[SecretFinding] = []
    for result in tree["Results"]:
        target, klass = result.get("Target", ""), result.get("Class", "")
        for v in result.get("Vulnerabilities") or ():
            findings.append(
                Finding(
                    v["VulnerabilityID"],
                    v.get("PkgName", ""),
                    v.get("InstalledVersion", ""),
                    v.get("FixedVersion", ""),
                    v.get("Severity", "UNKNOWN"),
                    v.get("Status", ""),
                    (v.get("Title") or "")[:200],
                    v.get("PrimaryURL", ""),
                    target,
                    klass,
                )
            )
        for m in result.get("Misconfigurations") or ():
            if m.get("Status") == "FAIL":
                misconfigs.append(Misconfig(m["ID"], m.get("Title", ""), m["Severity"], "FAIL", target))
        for s in result.get("Secrets") or ():
            secrets.append(SecretFinding(s["RuleID"], s["Category"], s["Severity"], s["Title"], target, s["StartLine"]))
    return ScanReport(
        tree["ArtifactName"],
        tree["ArtifactType"],
        findings=tuple(findings),
        misconfigs=tuple(misconfigs),
        secrets=tuple(secrets),
    )


PARSERS: dict[str, Callable[[bytes], ScanReport]] = {"stream": parse_report, "loads": loads_report}
POLICY = Policy(max_critical=0, max_high=50, ignore_unfixed=False)
WAIVED = {"CVE-2020-1234", "CVE-2021-2345"}


def work(parser: Callable[[bytes], ScanReport], raw: bytes) -> int:
    summary = summarize(parser(raw), WAIVED, POLICY)
    return summary.total


# -- child processes ------------------------------------------------------------------------------


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


def hwm_mb() -> float:
    """Peak RSS of this process's own address space (``VmHWM``); NaN without ``/proc``.

    ``ru_maxrss`` of a process started by fork + exec begins at its parent's RSS at fork time
    (Linux folds the forked address space's peak in at exec), which can hide a growth; ``VmHWM``
    is reset by exec. Both are printed; the parent is kept small (the report is generated in a
    child too) so that they agree.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return math.nan


def child(mode: str, parser_name: str, path: Path) -> dict[str, Any]:
    parser = PARSERS[parser_name]
    raw = path.read_bytes()
    gc.collect()
    if mode == "memory":
        tracemalloc.start()
        work(parser, raw)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"tracemalloc_mb": peak / MB}
    before, hwm_before = maxrss_mb(), hwm_mb()
    started = time.perf_counter()
    total = work(parser, raw)
    first = time.perf_counter() - started
    rss_delta, hwm_delta = maxrss_mb() - before, hwm_mb() - hwm_before
    runs = []
    for _ in range(3):
        gc.collect()
        started = time.perf_counter()
        work(parser, raw)
        runs.append(time.perf_counter() - started)
    summary = summarize(parse_report(raw), WAIVED, POLICY)
    started = time.perf_counter()
    tr = Translator()
    scan_card(summary, diff(set(), summary), "registry.example/app:1.4.2", tr)
    full_list(summary, tr)
    csv_text = full_csv(summary)
    render = time.perf_counter() - started
    return {
        "first_s": first,
        "best_s": min(runs),
        "rss_delta_mb": rss_delta,
        "hwm_delta_mb": hwm_delta,
        "counted": total,
        "render_s": render,
        "csv_mb": len(csv_text.encode()) / MB,
    }


def run_child(mode: str, parser_name: str, path: Path) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", mode, parser_name, str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise BenchError(f"{parser_name}/{mode} failed: {done.stderr.strip()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- main -----------------------------------------------------------------------------------------


def measure(path: Path, size_mb: float) -> int:
    rows: list[list[object]] = []
    figures: dict[str, dict[str, Any]] = {}
    for name in ("stream", "loads"):
        timing = run_child("time", name, path)
        memory = run_child("memory", name, path)
        figures[name] = {**timing, **memory}
        rows.append(
            [
                name + (" (bot)" if name == "stream" else ""),
                f"{timing['first_s']:.3f}",
                f"{timing['best_s']:.3f}",
                f"{memory['tracemalloc_mb']:.0f}",
                f"{timing['rss_delta_mb']:.0f}",
                f"{timing['hwm_delta_mb']:.0f}",
                timing["counted"],
            ]
        )
    table(["parser", "first s", "best of 3 s", "tracemalloc MB", "ru_maxrss Δ MB", "VmHWM Δ MB", "counted"], rows)
    chosen = figures["stream"]
    peak = max(chosen["tracemalloc_mb"], chosen["rss_delta_mb"], chosen["hwm_delta_mb"])
    slowest = max(chosen["first_s"], chosen["best_s"])
    print()
    render = f"rendering card + full list + CSV ({chosen['csv_mb']:.1f} MB): {chosen['render_s']:.3f} s"
    print(f"report: {size_mb:.1f} MB; {render}")
    print(f"time   {slowest:.3f} s   target < {TIME_TARGET_S} s     {verdict(slowest < TIME_TARGET_S)}")
    print(f"memory {peak:.0f} MB   target < {MEMORY_TARGET_MB:.0f} MB   {verdict(peak < MEMORY_TARGET_MB)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vulns", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="also write the generated report there")
    parser.add_argument("--wide", action="store_true", help="one emoji in the report (4 bytes per char in a str)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PARSER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, name, path = args.child
        if mode == "generate":
            Path(path).write_bytes(generate(int(name.rstrip("w")), wide=name.endswith("w")))
            return 0
        print(json.dumps(child(mode, name, Path(path))))
        return 0
    if not 1 <= args.vulns <= MAX_VULNS:
        print(f"--vulns must be between 1 and {MAX_VULNS}", file=sys.stderr)
        return 1
    heading(f"Trivy report of {args.vulns} vulnerabilities: parse + summarise")
    print(f"machine: {machine_line()}")
    print(f"before:  {load_average()}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
            path = Path(tmp) / "trivy.json"
            started = time.perf_counter()
            # In a child too: this process stays small, so its children's ru_maxrss starts low.
            argv = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                "generate",
                f"{args.vulns}{'w' * args.wide}",
                str(path),
            ]
            subprocess.run(argv, timeout=CHILD_TIMEOUT_S, cwd=ROOT, check=True)
            size_mb = path.stat().st_size / MB
            print(f"generated {size_mb:.1f} MB in {time.perf_counter() - started:.1f} s")
            if args.keep:
                shutil.copyfile(path, args.keep)
            return measure(path, size_mb)
    except (BenchError, subprocess.SubprocessError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
