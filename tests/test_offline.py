"""What dpst sends over the network: nothing when offline, one quick probe before a download.

A socket guard refuses (and records) every name lookup and connection; loopback servers
started here stand in for the Hugging Face Hub (answering, refusing, or silent).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import socket
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from dpst.cli import main
from dpst.errors import WeightsNotFoundError
from dpst.network import QUIET_DEFAULTS, apply_defaults


@pytest.fixture
def guard(monkeypatch) -> list:
    """Socket guard: every name lookup and outgoing connection is recorded and refused."""
    attempts: list = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("test socket guard: no network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def hub(monkeypatch):
    """An online Hugging Face Hub at ``endpoint`` (the conftest's offline mode undone)."""
    constants = pytest.importorskip("huggingface_hub.constants")
    for name in ("DPST_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # As `import dpst` leaves it when it comes first (dpst.network): in this test process
    # another test may have imported gradio, and huggingface_hub with it, before dpst; its
    # telemetry then fetches an "agent" registry from huggingface.co on every request.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)

    def point_at(endpoint: str) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    return point_at


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_defaults_fill_only_what_the_user_left_unset():
    environ = {"NO_ALBUMENTATIONS_UPDATE": "0", "GRADIO_ANALYTICS_ENABLED": "True"}
    apply_defaults(environ)
    assert environ["NO_ALBUMENTATIONS_UPDATE"] == "0"  # the user's choice stands
    assert environ["GRADIO_ANALYTICS_ENABLED"] == "True"
    assert environ["ORT_DISABLE_TELEMETRY"] == "1" and environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert "HF_HUB_OFFLINE" not in environ

    offline = {"DPST_OFFLINE": "yes"}
    apply_defaults(offline)
    assert offline["HF_HUB_OFFLINE"] == "1"  # nothing built on huggingface_hub connects either
    assert {k: offline[k] for k in QUIET_DEFAULTS} == QUIET_DEFAULTS


def test_albumentations_does_not_ask_pypi_for_its_version(guard, monkeypatch):
    albumentations = pytest.importorskip("albumentations")
    # Its package code runs the check when imported; reloading runs that code again, under
    # the environment `import dpst` left (it was imported above, as every dpst module is).
    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "1"
    importlib.reload(albumentations)
    assert guard == []
    # The control: without the setting, the same code does reach for PyPI.
    monkeypatch.delenv("NO_ALBUMENTATIONS_UPDATE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # albumentations' own "failed to check" note
        importlib.reload(albumentations)
    assert any("pypi.org" in str(attempt) for attempt in guard)


def test_onnx_runtime_telemetry_is_turned_off(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"  # set on `import dpst`, before ORT starts
    calls = []
    monkeypatch.setattr(ort, "disable_telemetry_events", lambda: calls.append(1), raising=False)
    FastStylizer(BUNDLED_MODEL, providers=["CPUExecutionProvider"])
    assert calls


def test_offline_segment_opens_no_socket_and_says_so_in_one_line(
    hub, guard, photos, tmp_path, capsys, monkeypatch
):
    pytest.importorskip("transformers")
    monkeypatch.setenv("DPST_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    code = main(["segment", *photos, "--out-dir", str(tmp_path / "masks")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("dpst segment: error: SegFormer weights")
    assert "DPST_OFFLINE is set" in err and "hf download" in err
    assert guard == []


def test_offline_stylize_opens_no_socket(hub, guard, photos, tmp_path, capsys, monkeypatch):
    # Automatic masks (the default) and VGG-19 both missing: neither may reach out.
    monkeypatch.setenv("DPST_OFFLINE", "1")
    monkeypatch.delenv("DPST_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "out.png"
    argv = ["stylize", *photos, "-o", str(out), "--size", "32", "--iters", "1", "--quiet"]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "DPST_OFFLINE is set" in errors[0]
    assert guard == [] and not out.exists()


def test_unreachable_hub_is_one_attempt_and_one_line(hub, photos, tmp_path, capsys, monkeypatch):
    pytest.importorskip("transformers")
    port = _free_port()  # nothing listens there: every connection is refused at once
    hub(f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    connects = []
    real_connect = socket.socket.connect

    def counting(self, address):
        if isinstance(address, tuple) and address[1:2] == (port,):
            connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    start = time.monotonic()
    code = main(["segment", *photos, "--out-dir", str(tmp_path / "masks")])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err  # huggingface_hub's retries said nothing
    assert "cannot reach 127.0.0.1 (ConnectError" in err
    assert len(connects) == 1
    assert elapsed < 20  # the five retries alone (1+2+4+8+8 s) would take 23 s


def test_silent_hub_is_given_up_after_the_timeout(hub):
    pytest.importorskip("huggingface_hub")
    from dpst.models.segformer import probe_hub

    accepted = []
    with socket.socket() as listener:  # accepts connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(5)

        def accept() -> None:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        hub(f"http://127.0.0.1:{listener.getsockname()[1]}")
        start = time.monotonic()
        reason = probe_hub("dpst-test/tiny", timeout=0.3)
        elapsed = time.monotonic() - start
        thread.join()
    for conn in accepted:
        conn.close()
    assert reason == "127.0.0.1 did not answer in 0.3 s"
    assert 0.25 < elapsed < 3 and len(accepted) == 1


class _Hub(BaseHTTPRequestHandler):
    """A Hub serving one model repository's files; records every request."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[tuple[str, str]]] = []
    commit = "a" * 40

    def _answer(self, body: bool) -> None:
        self.requests.append((self.command, self.path))
        data = self.files.get(self.path)
        self.send_response(404 if data is None else 200)
        self.send_header("X-Repo-Commit", self.commit)
        if data is not None:
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(0 if data is None else len(data)))
        self.end_headers()
        if body and data is not None:
            self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def log_message(self, *args) -> None:
        pass


def test_reachable_hub_downloads_after_one_probe(hub, tmp_path):
    pytest.importorskip("transformers")
    from dpst.models.segmenter import SegmenterConfig, build_segmenter
    from tests.tiny_segformer import save_tiny_segformer

    folder = save_tiny_segformer(tmp_path / "tiny", input_size=32)
    prefix = "/dpst-test/tiny/resolve/main/"
    files = {prefix + p.name: p.read_bytes() for p in folder.iterdir()}
    handler = type("Handler", (_Hub,), {"files": files, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        hub(f"http://127.0.0.1:{httpd.server_address[1]}")
        config = SegmenterConfig(model="dpst-test/tiny", cache_dir=str(tmp_path / "cache"))
        identity = build_segmenter(config).describe()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert identity["weights_from"] == "downloaded" and identity["input_size"] == [32, 32]
    weights = (folder / "model.safetensors").read_bytes()
    assert identity["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert handler.requests[0] == ("HEAD", prefix + "config.json")  # the probe
    assert ("GET", prefix + "model.safetensors") in handler.requests


def test_missing_weights_with_downloads_allowed_but_offline_never_probe(hub, guard, tmp_path):
    pytest.importorskip("transformers")
    from dpst.models.segmenter import SegmenterConfig, build_segmenter

    with pytest.raises(WeightsNotFoundError, match="uses weights already on disk only"):
        build_segmenter(SegmenterConfig(cache_dir=str(tmp_path), allow_download=False))
    assert guard == []
