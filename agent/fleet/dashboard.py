"""``edge-agent fleet serve``: the dashboard and ``/metrics`` over a fleet store.

The standard library's ThreadingHTTPServer serves it (a few read-only pages for an operator and a
Prometheus scraper need no framework; one thread per request, the store serialises its own calls).
Routes: ``/`` the fleet page; ``/device/<id>`` a device's page, ``/device/<id>/confusion.png``,
``/device/<id>/command`` (POST, only with a command key); ``/api/fleet`` and ``/api/device/<id>``
the same data as JSON; ``/metrics``; ``/static/...`` the page's scripts and uPlot.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

from agent.accuracy.plots import confusion_png
from agent.fleet import metrics, pages, views
from agent.mqtt.fleet import send
from agent.mqtt.keys import Signer
from agent.mqtt.link import Settings
from agent.util.errors import MissingDependency

STATIC = Path(__file__).resolve().parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Commander(NamedTuple):
    """What the signed command form needs: the broker, the operator's key, how long to wait."""

    settings: Settings
    key: Union[bytes, Signer]
    wait_s: float = 60.0


class Dashboard:
    """The data behind each route, read from ``store`` at each request."""

    def __init__(self, store: Any, commander: Optional[Commander] = None, points: int = 2000) -> None:
        self.store = store
        self.commander = commander
        self.points = points
        self._plot_lock = threading.Lock()  # pyplot is not thread-safe
        self._pictures: Dict[str, Tuple[float, bytes]] = {}  # device -> (report time, its latest picture)

    def rows(self) -> List[Dict[str, Any]]:
        return [views.fleet_row(device) for device in self.store.devices()]

    def row(self, device: str) -> Optional[Dict[str, Any]]:
        return next((row for row in self.rows() if row["device"] == device), None)

    def device(self, device: str) -> Dict[str, Any]:
        """The device page's data: telemetry and recall series, drift marks, build history."""
        series = {
            kind: self.store.series(device, kind, limit=self.points)
            for kind in ("telemetry", "accuracy", "event", "build")
        }
        return pages.device_data(
            views.telemetry_series(series["telemetry"]),
            views.recall_series(series["accuracy"]),
            views.drift_marks(series["event"], series["accuracy"]),
            views.build_history(series["build"]),
        )

    def latest_confusion(self, device: str) -> Optional[Tuple[float, List[List[int]], List[str]]]:
        """(report time, matrix, labels) of the latest accuracy report, None when it has no matrix."""
        latest = self.store.series(device, "accuracy", limit=1)
        found = views.confusion(latest[-1][1]) if latest else None
        return (latest[-1][0], found[0], found[1]) if found else None

    def confusion(self, device: str) -> Optional[bytes]:
        """The latest confusion matrix as a PNG (agent.accuracy.plots), None without one."""
        found = self.latest_confusion(device)
        if found is None:
            return None
        with self._plot_lock:
            held = self._pictures.get(device)
            if held is None or held[0] != found[0]:
                with tempfile.TemporaryDirectory(prefix="edge-agent-confusion-") as tmp:
                    path = confusion_png(found[1], found[2], str(Path(tmp) / "m.png"), title=device)
                    held = self._pictures[device] = (found[0], Path(path).read_bytes())
            return held[1]

    def command(self, device: str, name: str, args_text: str) -> str:
        """Send one signed command and return every answer line; refusals explain themselves."""
        if self.commander is None:
            raise PermissionError("read-only dashboard: no command key is configured (fleet.command_key)")
        if name not in pages.COMMANDS:
            raise ValueError(f"command: {name!r} is not one of {', '.join(pages.COMMANDS)}")
        try:
            args = json.loads(args_text) if args_text.strip() else {}
        except ValueError as exc:
            raise ValueError(f"command arguments: not JSON ({exc})") from None
        if not isinstance(args, dict):
            raise ValueError('command arguments: a JSON object is needed, e.g. {"precision": "int8"}')
        out = io.StringIO()
        try:
            code = send(self.commander.settings, device, name, args, self.commander.key, out, self.commander.wait_s)
        except ConnectionError as exc:
            return f"not sent: {exc}"
        return out.getvalue() + f"exit code {code}"


class Handler(BaseHTTPRequestHandler):
    server: "DashboardServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, text: str, status: int = HTTPStatus.OK) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

    def _json(self, data: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(data, allow_nan=False).encode("utf-8"), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        dash = self.server.dashboard
        try:
            if not parts:
                page = pages.fleet_page(
                    dash.rows(), query.get("sort", "device"), bool(query.get("desc")), query.get("q", "")
                )
                self._html(page)
            elif parts == ["favicon.ico"]:  # asked for by browsers on every page, /metrics included
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif parts == ["metrics"]:
                body, content_type = metrics.exposition(dash.store)
                self._send(HTTPStatus.OK, body, content_type)
            elif parts == ["api", "fleet"]:
                self._json(dash.rows())
            elif len(parts) == 3 and parts[:2] == ["api", "device"]:
                self._json(dash.device(parts[2]))
            elif parts[0] == "static":
                self._static(parts[1:])
            elif len(parts) == 2 and parts[0] == "device":
                self._device(parts[1])
            elif len(parts) == 3 and parts[0] == "device" and parts[2] == "confusion.png":
                picture = dash.confusion(parts[1])
                if picture is None:
                    self._error(HTTPStatus.NOT_FOUND, f"{parts[1]} has reported no confusion matrix")
                else:
                    self._send(HTTPStatus.OK, picture, "image/png")
            else:
                self._html(pages.not_found(url.path), HTTPStatus.NOT_FOUND)
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except MissingDependency as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))

    def _device(self, device: str, answer: Optional[str] = None) -> None:
        dash = self.server.dashboard
        row = dash.row(device)
        if row is None:
            self._html(pages.not_found(f"no device {device!r} in the store"), HTTPStatus.NOT_FOUND)
            return
        has_confusion = dash.latest_confusion(device) is not None
        page = pages.device_page(device, row, dash.device(device), has_confusion, dash.commander is not None, answer)
        self._html(page)

    def _static(self, parts: List[str]) -> None:
        path = STATIC.joinpath(*parts).resolve() if parts else STATIC
        if STATIC not in path.parents or not path.is_file():
            self._error(HTTPStatus.NOT_FOUND, "no such file")
            return
        self._send(HTTPStatus.OK, path.read_bytes(), _TYPES.get(path.suffix, "application/octet-stream"))

    def do_POST(self) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        if len(parts) != 3 or parts[0] != "device" or parts[2] != "command":
            self._error(HTTPStatus.NOT_FOUND, "POST goes to /device/<id>/command only")
            return
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            self._error(HTTPStatus.FORBIDDEN, f"a command from another site ({origin}) is refused")
            return
        try:
            answer = self.server.dashboard.command(parts[1], form.get("command", ""), form.get("args", ""))
        except PermissionError as exc:
            self._error(HTTPStatus.FORBIDDEN, str(exc))
            return
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        self._device(parts[1], answer)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Tuple[str, int], dashboard: Dashboard, verbose: bool = False) -> None:
        super().__init__(address, Handler)
        self.dashboard = dashboard
        self.verbose = verbose


def parse_listen(text: str) -> Tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6; port 0 picks a free one) -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "0.0.0.0", int(port)
