"""A fake Hugging Face Hub on 127.0.0.1: the ``resolve`` endpoint that ``hf_hub_download``
uses, over real HTTP, for tests of the download path (``HF_ENDPOINT=hub.url``).

It answers ``HEAD`` and ``GET /{repo}/resolve/{revision}/{filename}`` with the headers
huggingface_hub reads (``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``,
``Content-Length``), serves ``Range: bytes=N-`` requests with 206, answers what it does
not have with the Hub's 404 and ``X-Error-Code``, and can drop a connection midway
through a body once. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass(frozen=True)
class Request:
    method: str
    repo: str
    revision: str
    filename: str
    range: str | None


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]


@dataclass
class FakeHub:
    """``with FakeHub() as hub: hub.add("org/name", {"w.bin": b"..."})``."""

    repos: dict[str, list[_Commit]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_after: dict[str, int] = field(default_factory=dict)  # filename -> bytes, once

    def add(self, repo: str, files: dict[str, bytes]) -> str:
        """A new commit of ``repo`` holding ``files``; ``main`` moves to it. Returns its sha."""
        commits = self.repos.setdefault(repo, [])
        seed = f"{repo}\0{len(commits)}\0" + "\0".join(
            f"{name}:{hashlib.sha256(data).hexdigest()}" for name, data in sorted(files.items()))
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commits.append(_Commit(sha, dict(files)))
        return sha

    def gets(self, filename: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.method == "GET"
                and (filename is None or r.filename == filename)]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def find(self, repo: str, revision: str) -> _Commit | None:
        commits = self.repos.get(repo, [])
        if revision == "main":
            return commits[-1] if commits else None
        return next((c for c in commits if c.sha == revision), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub: every answer has a length
    fake: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._resolve(body=False)

    def do_GET(self) -> None:
        self._resolve(body=True)

    def _fail(self, code: str, commit: str | None = None) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        if commit is not None:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _resolve(self, body: bool) -> None:
        parts = self.path.split("?")[0].split("/")
        # /org/name/resolve/revision/filename...
        if len(parts) < 6 or parts[3] != "resolve":
            self._fail("RepoNotFound")
            return
        repo, revision = f"{parts[1]}/{parts[2]}", unquote(parts[4])
        filename = unquote("/".join(parts[5:]))
        self.fake.requests.append(Request(self.command, repo, revision, filename,
                                          self.headers.get("Range")))
        if repo not in self.fake.repos:
            self._fail("RepoNotFound")
            return
        commit = self.fake.find(repo, revision)
        if commit is None:
            self._fail("RevisionNotFound")
            return
        if filename not in commit.files:
            self._fail("EntryNotFound", commit.sha)
            return
        self._send(commit, commit.files[filename], filename, body)

    def _send(self, commit: _Commit, data: bytes, filename: str, body: bool) -> None:
        start = 0
        wanted = self.headers.get("Range")
        if body and wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes="):-1])
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", commit.sha)
        self.send_header("ETag", etag)
        self.send_header("X-Linked-Etag", etag)
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        cut = self.fake.drop_after.pop(filename, None)
        if cut is not None:  # half a body, then the connection goes away
            self.wfile.write(data[start:start + cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])
