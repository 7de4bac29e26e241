"""In-memory git repositories for the GitLab emulator: blobs, commits (full tree snapshots), branches.

Every commit keeps the whole tree, so reading a file at any ref, listing a commit's changes and
reverting a commit are dictionary operations. Shas are 40-hex like git's.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.emulators.gitlab_http import ApiError, bad_request, not_found

_counter = itertools.count(1)


def now_iso() -> str:
    """GitLab's API timestamp format: ``2024-05-01T12:00:00.123Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Blob:
    data: bytes
    executable: bool = False

    @property
    def blob_id(self) -> str:
        # Same id git computes for a blob object.
        header = f"blob {len(self.data)}\0".encode()
        return hashlib.sha1(header + self.data, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Commit:
    id: str
    parent_ids: list[str]
    tree: dict[str, Blob]
    message: str
    author_name: str
    author_email: str
    created_at: str = field(default_factory=now_iso)
    # Paths touched, relative to the first parent: filled at creation.
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""

    @property
    def short_id(self) -> str:
        return self.id[:8]


@dataclass
class Action:
    """One entry of the Commits API ``actions`` array, already validated."""

    action: str
    file_path: str
    content: bytes = b""
    previous_path: str | None = None
    executable: bool | None = None
    last_commit_id: str | None = None


def _make_sha(*parts: str) -> str:
    seed = "\0".join([*parts, str(next(_counter)), now_iso()])
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


class Repository:
    """Branches pointing at commits; not thread safe on its own (the State lock guards it)."""

    def __init__(self, default_branch: str = "main") -> None:
        self.default_branch = default_branch
        self.commits: dict[str, Commit] = {}
        self.branches: dict[str, str] = {}

    @property
    def empty(self) -> bool:
        return not self.branches

    def resolve(self, ref: str | None) -> Commit | None:
        """A branch name, a full sha or a unique sha prefix (>= 7 chars); None when unknown."""
        ref = ref or self.default_branch
        if ref in self.branches:
            return self.commits[self.branches[ref]]
        if ref in self.commits:
            return self.commits[ref]
        if len(ref) >= 7:
            found = [sha for sha in self.commits if sha.startswith(ref)]
            if len(found) == 1:
                return self.commits[found[0]]
        return None

    def history(self, ref: str | None) -> Iterator[Commit]:
        """Commits reachable from ``ref`` along first parents, newest first."""
        commit = self.resolve(ref)
        while commit is not None:
            yield commit
            commit = self.commits.get(commit.parent_ids[0]) if commit.parent_ids else None

    def last_commit_for(self, path: str, ref: str | None) -> Commit | None:
        for commit in self.history(ref):
            if path in commit.added or path in commit.modified:
                return commit
        return None

    def create_branch(self, name: str, ref: str) -> Commit:
        if name in self.branches:
            raise bad_request("Branch already exists")
        commit = self.resolve(ref)
        if commit is None:
            raise bad_request("Invalid reference name: " + ref)
        self.branches[name] = commit.id
        return commit

    def commit(
        self,
        branch: str,
        actions: list[Action],
        message: str,
        author_name: str,
        author_email: str,
        start_branch: str | None = None,
    ) -> Commit:
        """Apply ``actions`` on ``branch`` (created from ``start_branch`` if new) and move it."""
        parent = self._parent_for(branch, start_branch)
        tree = dict(parent.tree) if parent else {}
        for action in actions:
            _apply(tree, action)
        return self._record(branch, parent, tree, message, author_name, author_email)

    def _parent_for(self, branch: str, start_branch: str | None) -> Commit | None:
        if branch in self.branches:
            return self.commits[self.branches[branch]]
        if start_branch:
            parent = self.resolve(start_branch)
            if parent is None:
                raise bad_request(f"Invalid reference name: {start_branch}")
            return parent
        if self.empty:
            return None  # the first commit of an empty repository creates its branch
        raise bad_request("You can only create or edit files when you are on a branch")

    def _record(
        self,
        branch: str,
        parent: Commit | None,
        tree: dict[str, Blob],
        message: str,
        author_name: str,
        author_email: str,
    ) -> Commit:
        before = parent.tree if parent else {}
        sha = _make_sha(branch, parent.id if parent else "", message)
        commit = Commit(
            id=sha,
            parent_ids=[parent.id] if parent else [],
            tree=tree,
            message=message,
            author_name=author_name,
            author_email=author_email,
            added=sorted(path for path in tree if path not in before),
            modified=sorted(path for path in tree if path in before and before[path] != tree[path]),
            removed=sorted(path for path in before if path not in tree),
        )
        self.commits[sha] = commit
        self.branches[branch] = sha
        return commit

    def revert(self, sha: str, branch: str, author_name: str, author_email: str) -> Commit:
        """Undo what ``sha`` changed, on top of ``branch`` (GitLab's revert endpoint)."""
        target = self.resolve(sha)
        if target is None:
            raise not_found("Commit")
        head = self.resolve(branch) if branch in self.branches else None
        if head is None:
            raise not_found("Branch")
        parent_tree = self.commits[target.parent_ids[0]].tree if target.parent_ids else {}
        tree = dict(head.tree)
        changed = [*target.added, *target.modified, *target.removed]
        for path in changed:
            if head.tree.get(path) != target.tree.get(path):
                raise ApiError(400, _revert_error("conflict"))
            if path in parent_tree:
                tree[path] = parent_tree[path]
            else:
                tree.pop(path, None)
        if tree == head.tree:
            raise ApiError(400, _revert_error("empty"))
        message = f'Revert "{target.title}"\n\nThis reverts commit {target.id}.'
        return self._record(branch, head, tree, message, author_name, author_email)


def _revert_error(code: str) -> dict[str, str]:
    return {
        "message": "Sorry, we cannot revert this commit automatically. This commit may already have been "
        "reverted, or a more recent commit may have updated some of its content.",
        "error_code": code,
    }


def _apply(tree: dict[str, Blob], action: Action) -> None:
    path = action.file_path
    current = tree.get(path)
    executable = action.executable if action.executable is not None else bool(current and current.executable)
    if action.action == "create":
        if current is not None:
            raise bad_request("A file with this name already exists")
        tree[path] = Blob(action.content, executable)
    elif action.action == "update":
        if current is None:
            raise bad_request("A file with this name doesn't exist")
        tree[path] = Blob(action.content, executable)
    elif action.action == "delete":
        if current is None:
            raise bad_request("A file with this name doesn't exist")
        del tree[path]
    elif action.action == "move":
        source = action.previous_path or ""
        if source not in tree:
            raise bad_request("A file with this name doesn't exist")
        if path in tree:
            raise bad_request("A file with this name already exists")
        moved = tree.pop(source)
        tree[path] = Blob(action.content or moved.data, executable or moved.executable)
    elif action.action == "chmod":
        if current is None:
            raise bad_request("A file with this name doesn't exist")
        tree[path] = Blob(current.data, bool(action.executable))
    else:
        raise ApiError(400, {"error": "actions[action] does not have a valid value"})
