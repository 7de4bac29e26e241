"""The address decoder and the branch-name validator, as properties (bot/netpolicy.py, rules.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bot.netpolicy import AddressPolicy, BadHost, is_public, normalise_host, parse_ipv4
from bot.workflows.rules import valid_branch

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
# Addresses a mirror job must never reach, from the issue and IANA's registry.
NOT_PUBLIC_V4 = ("127.0.0.1", "10.1.2.3", "100.100.100.200", "100.64.0.1", "169.254.169.254", "0.0.0.0", "192.0.0.8")


def _spell(number: int, parts: int, bases: list[str], dots: int) -> str:
    """``number`` written as ``inet_aton`` reads it: ``parts`` parts, each in its base."""
    values = [(number >> (8 * (3 - i))) & 0xFF for i in range(parts - 1)]
    values.append(number & ((1 << (8 * (5 - parts))) - 1))
    written = []
    for value, base in zip(values, bases, strict=False):
        written.append(hex(value) if base == "x" else (f"0{value:o}" if base == "o" else str(value)))
    return ".".join(written) + "." * dots


@given(
    number=st.integers(0, 2**32 - 1),
    parts=st.integers(1, 4),
    bases=st.lists(st.sampled_from("dox"), min_size=4, max_size=4),
    dots=st.integers(0, 2),
)
@example(number=0x7F000001, parts=2, bases=["d", "d", "d", "d"], dots=0)  # 127.1
@example(number=0x7F000001, parts=1, bases=["x", "d", "d", "d"], dots=0)  # 0x7f000001
@example(number=0x7F000001, parts=1, bases=["d", "d", "d", "d"], dots=0)  # 2130706433
@example(number=0x7F000001, parts=4, bases=["d", "d", "d", "d"], dots=1)  # 127.0.0.1.
def test_every_ipv4_spelling_decodes_to_its_address(number: int, parts: int, bases: list[str], dots: int) -> None:
    spelled = _spell(number, parts, bases, dots)
    assert parse_ipv4(spelled) == V4(number)
    assert normalise_host(spelled) == V4(number)


@example("0X")  # found by this test: a bare 0x, which inet_aton refuses
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=20))
def test_the_decoder_agrees_with_inet_aton(text: str) -> None:
    assume(not text.endswith("."))
    try:
        expected = V4(socket.inet_aton(text))
    except OSError:
        expected = None
    try:
        decoded = parse_ipv4(text)
    except BadHost:
        decoded = None  # refused outright: stricter than inet_aton is fine, never looser
    if decoded is not None:
        assert decoded == expected


def _embeddings(v4: V4) -> list[V6]:
    n = int(v4)
    return [
        V6(0xFFFF << 32 | n),  # IPv4-mapped
        V6(n),  # IPv4-compatible
        V6(0xFFFF << 48 | n),  # SIIT
        V6(0x0064FF9B << 96 | n),  # NAT64
        V6(0x2002 << 112 | n << 80),  # 6to4
        V6(0x20010000 << 96 | n << 64),  # Teredo, as its server
        V6(0x20010000 << 96 | 0x08080808 << 64 | (~n & 0xFFFFFFFF)),  # Teredo, as its (obfuscated) client
    ]


@given(st.sampled_from(NOT_PUBLIC_V4) | st.ip_addresses(v=4).filter(lambda a: not a.is_global))
def test_an_internal_ipv4_is_refused_inside_every_ipv6_embedding(address: V4) -> None:
    assert not is_public(V4(address))
    for wrapped in _embeddings(V4(address)):
        assert not is_public(wrapped), wrapped


@given(st.ip_addresses())
def test_nothing_python_calls_non_global_is_public(address: V4 | V6) -> None:
    if is_public(address) and not (isinstance(address, V6) and int(address) >> 112 in (0x0064, 0x2002)):
        assert address.is_global


def test_public_addresses_pass_directly_and_through_nat64() -> None:
    assert is_public(V4("140.82.121.3")) and is_public(V6("2606:50c0:8000::153"))
    assert is_public(V6("64:ff9b::8c52:7903"))
    assert not is_public(V6("2001:db8::1")) and not is_public(V6("fe80::1")) and not is_public(V6("ff02::1"))


@pytest.mark.parametrize(
    "host", ["１２７.０.０.１", "127.0.0.1%2f", "exa mple.org", "1.2.3.4.5", "example.0x7f", "08.0.0.1", "256.1.1.1"]
)
def test_hosts_that_read_more_than_one_way_are_refused_or_decoded(host: str) -> None:
    try:
        decoded = normalise_host(host)
    except BadHost:
        return
    assert decoded == V4("127.0.0.1")  # the full-width digits go through IDNA, to the address


def _policy(table: dict[str, list[str]], **kw: object) -> AddressPolicy:
    async def resolve(host: str) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return table[host]

    return AddressPolicy(resolver=resolve, **kw)  # type: ignore[arg-type]


def test_every_address_of_a_name_is_judged() -> None:
    policy = _policy({"ok.example": ["140.82.121.3"], "mixed.example": ["140.82.121.3", "100.100.100.200"]})
    assert asyncio.run(policy.check_host("ok.example")).ok
    assert asyncio.run(policy.check_host("mixed.example")).reason == "internal"
    assert asyncio.run(policy.check_host("nowhere.example")).reason == "unresolved"


# -- branch names ------------------------------------------------------------------------------

GIT = shutil.which("git")
BRANCH_TEXT = st.text(alphabet="ab/.-_+@{}~^:?*[\\ $();`'\"|&<>\n\té", min_size=1, max_size=12)


def _git_accepts(name: str) -> bool:
    assert GIT is not None
    done = subprocess.run([GIT, "check-ref-format", "--branch", name], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@settings(max_examples=150, deadline=None)
@given(BRANCH_TEXT)
@example("$(id)")
@example("main;rm")
def test_a_branch_accepted_is_one_git_accepts_with_no_shell_metacharacter(name: str) -> None:
    if valid_branch(name):
        assert _git_accepts(name), name
        assert not set(name) & set(" $();`'\"|&<>\\\n\t*?[~^:{}")


@pytest.mark.skipif(GIT is None, reason="git is not installed")
@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="ab1/.-_+", min_size=1, max_size=12))
@example("HEAD")
@example("a.lock/b")
@example("release/2.1")
def test_within_the_safe_characters_git_decides(name: str) -> None:
    assert valid_branch(name) == _git_accepts(name), name


# -- mirror.sh, the teams' own trigger ----------------------------------------------------------


@pytest.mark.parametrize("branch", ["@/etc/hostname", "</etc/hostname", "$(id)", "a;id"])
def test_mirror_sh_hands_every_value_to_curl_literally(tmp_path: Path, branch: str) -> None:
    from bot.workflows.mirror_files import MIRROR_SH

    (tmp_path / "curl").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    (tmp_path / "curl").chmod(0o755)
    (tmp_path / "mirror.sh").write_text(MIRROR_SH)
    options = ["-a", "https://gitlab.example", "-i", "7", "-g", "tok", "-r", "api", "-b", branch]
    done = subprocess.run(
        ["sh", str(tmp_path / "mirror.sh"), *options],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    args = done.stdout.splitlines()
    given = args.index(f"variables[GIT_BRANCH_DEPLOY]={branch}")
    assert args[given - 1] == "--form-string"  # curl's -F would read a file for @… and <…
    assert "-F" not in args
