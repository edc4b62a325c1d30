"""A small keep-alive HTTP client for the benchmarks: cookies, CSRF tokens, JSON, timings.

Standard library only, so the load generator adds nothing to the app's dependencies.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class Response:
    def __init__(self, status: int, headers: dict, body: bytes, elapsed: float):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body or b"null")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Browser:
    """One buyer: one persistent connection to one base URL, with its own cookie jar."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        assert self.host in ("127.0.0.1", "localhost", "::1"), "benchmarks target this machine only"
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""
        self._connection = None

    def _connect(self):
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._connection

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, body=None, headers=None) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            connection = self._connect()
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                raw = connection.getresponse()
                payload = raw.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed: reconnect once.
                self.close()
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            if raw.getheader("Connection", "").lower() == "close":
                self.close()
            for value in raw.headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(value)
                for key, morsel in cookie.items():
                    self.cookies[key] = morsel.value
            return Response(raw.status, dict(raw.getheaders()), payload, elapsed)
        raise RuntimeError("unreachable")

    def events(self, path: str):
        """Server-sent events from `path` on a connection of their own (as a page's EventSource),
        as (event name, data) pairs; comments and `retry:` lines are skipped. Ends with the stream."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Accept": "text/event-stream"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request("GET", path, headers=headers)
            raw = connection.getresponse()
            if raw.status != 200:
                raise RuntimeError(f"stream {path} answered {raw.status}")
            name, data = "message", []
            while line := raw.readline():
                line = line.decode().rstrip("\r\n")
                if not line:
                    if data:
                        yield name, "\n".join(data)
                    name, data = "message", []
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        finally:
            connection.close()

    def get(self, path: str, headers=None) -> Response:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict) -> Response:
        fields = {"csrf_token": self.csrf_token, **fields}
        return self.request(
            "POST", path, body=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )

    def post_json(self, path: str, payload) -> Response:
        return self.request(
            "POST",
            path,
            body=json.dumps(payload),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf_token, "Accept": "application/json"},
        )

    def refresh_csrf(self, path: str = "/auth/login") -> str:
        page = self.get(path)
        match = CSRF_META.search(page.text)
        if not match:
            raise RuntimeError(f"no CSRF token on {path} ({page.status})")
        self.csrf_token = match.group(1)
        return self.csrf_token

    def log_in(self, email: str, password: str) -> None:
        self.refresh_csrf("/auth/login")
        response = self.post_form("/auth/login", {"email": email, "password": password})
        if response.status != 302:
            raise RuntimeError(f"login failed for {email}: {response.status}")
        self.refresh_csrf("/")


def percentile(values, fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def server_pids(port) -> list[str]:
    """The gunicorn processes (master and workers) serving this port on this machine."""
    return subprocess.run(["pgrep", "-f", f"gunicorn.*:{port}"], capture_output=True, text=True).stdout.split()


def cpu_seconds(pids) -> float:
    """User + system CPU time the processes have used so far (gone processes count nothing)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")
