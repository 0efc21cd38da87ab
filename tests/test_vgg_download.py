"""The Caffe VGG-19 fetched on first use, from a loopback HTTP server started here.

The server serves a state dict made here in the Caffe port's layout (the project's random
VGG-19 under the key names of ``vgg19-d01eb7cb.pth``), named ``vgg19-<its own hash>.pth`` as
torch hub names checkpoints; ``DPST_VGG_URL`` points the download at it.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from dpst.cli import main
from dpst.optim_reference import vgg, vgg_download
from dpst.optim_reference.vgg_download import file_name, hash_prefix
from dpst.optim_reference.vgg_weights import CAFFE_FILE, ENV_URL, ENV_WEIGHTS, TORCHVISION_FILE


def random_features_state() -> dict[str, torch.Tensor]:
    """The project's random VGG-19 under torchvision's and the Caffe port's feature keys."""
    state = {}
    for key, tensor in vgg.random_backbone(seed=5).state_dict().items():
        name, param = key.split(".")
        state[f"features.{vgg.VGG19_LAYER_INDEX[name]}.{param}"] = tensor
    return state


@pytest.fixture(scope="module")
def caffe_bytes() -> tuple[str, bytes]:
    """``(file name, bytes)``: the random VGG-19 saved as jcjohnson's 2017 file is laid out."""
    state = random_features_state()
    for i in (1, 4, 6):  # the classifier keys that tell the Caffe port (never read)
        state[f"classifier.{i}.weight"] = torch.zeros(2, 2)
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue()
    return f"vgg19-{hashlib.sha256(data).hexdigest()[:8]}.pth", data


class _Files(BaseHTTPRequestHandler):
    """Serves ``files``, recording each requested path; the fixture makes a subclass with its
    own dict and list."""

    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server():
    """A loopback HTTP server: ``(base URL, {path: bytes} it serves, paths requested)``."""
    handler = type("Handler", (_Files,), {"files": {}, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.files, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def fresh_machine(monkeypatch, tmp_path) -> Path:
    """Online (the conftest's HF_HUB_OFFLINE undone), no weights, TORCH_HOME empty.

    Returns torch hub's checkpoints folder under that TORCH_HOME (not created).
    """
    for name in ("HF_HUB_OFFLINE", "DPST_OFFLINE", ENV_WEIGHTS, ENV_URL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def connects(monkeypatch) -> list:
    """Socket guard: every outgoing connection attempt is recorded and refused."""
    attempts: list = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError(f"test socket guard: no connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _stylize(photos, out: Path, *extra: str) -> int:
    argv = ["stylize", *photos, "-o", str(out), "--size", "32", "--iters", "1"]
    return main([*argv, "--no-postfilter", "--masks", "none", "--quiet", *extra])


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("dpst stylize: error:")]


def test_hash_prefix_follows_torch_hub_names():
    assert hash_prefix(CAFFE_FILE) == "d01eb7cb"
    assert hash_prefix("vgg19-dcbb9e9d.pth") == "dcbb9e9d"
    assert hash_prefix("vgg19.pth") is None and hash_prefix("my-vgg.pth") is None
    assert file_name("https://example.org/models/vgg19-d01eb7cb.pth?x=1") == CAFFE_FILE


def test_first_use_downloads_checks_and_reports_second_use_does_not(
    server, fresh_machine, caffe_bytes, photos, tmp_path, capsys, monkeypatch
):
    base, files, requests = server
    name, data = caffe_bytes
    files[f"/models/{name}"] = data
    url = f"{base}/models/{name}"
    monkeypatch.setenv(ENV_URL, url)

    assert _stylize(photos, tmp_path / "first.png") == 0
    err = capsys.readouterr().err
    assert f'Downloading: "{url}"' in err and "100%" in err  # the progress bar
    stored = fresh_machine / name
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert sorted(p.name for p in fresh_machine.iterdir()) == [name]  # no partial file
    identity = json.loads((tmp_path / "first.png.json").read_text())["backbone"]
    assert identity["resolved_by"] == "download" and identity["url"] == url
    assert identity["path"] == str(stored) and identity["random"] is False
    assert identity["preprocessing"] == "caffe" and identity["format_detected_by"] == "keys"
    assert identity["sha256"] == hashlib.sha256(data).hexdigest()[:16]
    assert requests == [f"/models/{name}"]

    assert _stylize(photos, tmp_path / "second.png") == 0
    assert "Downloading" not in capsys.readouterr().err
    assert requests == [f"/models/{name}"]  # not fetched again
    identity = json.loads((tmp_path / "second.png.json").read_text())["backbone"]
    assert identity["resolved_by"] == "hub-checkpoints" and identity["url"] == url


def test_corrupt_download_is_refused_in_one_line_and_leaves_nothing(
    server, fresh_machine, caffe_bytes, photos, tmp_path, capsys, monkeypatch
):
    base, files, requests = server
    name, data = caffe_bytes
    files[f"/models/{name}"] = data[: len(data) // 2] + b"\0" * (len(data) - len(data) // 2)
    monkeypatch.setenv(ENV_URL, f"{base}/models/{name}")

    assert _stylize(photos, tmp_path / "out.png") == 2
    errors = _error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    assert f"does not start with {hash_prefix(name)}" in errors[0]
    assert f"{base}/models/{name}" in errors[0] and str(fresh_machine) in errors[0]
    assert requests == [f"/models/{name}"]
    assert not (tmp_path / "torch").exists()  # no file, no partial file, no folder made
    assert not (tmp_path / "out.png").exists()


def test_a_name_without_hash_prefix_cannot_be_checked(
    server, fresh_machine, photos, tmp_path, capsys, monkeypatch
):
    base, _files, requests = server
    monkeypatch.setenv(ENV_URL, f"{base}/vgg19.pth")
    assert _stylize(photos, tmp_path / "out.png") == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "carries no SHA-256 prefix" in error
    assert requests == [] and not (tmp_path / "torch").exists()


@pytest.mark.parametrize("variable", ["DPST_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_never_opens_a_socket(
    variable, server, fresh_machine, connects, photos, tmp_path, capsys, monkeypatch
):
    base, _files, requests = server
    url = f"{base}/models/{CAFFE_FILE}"
    monkeypatch.setenv(ENV_URL, url)
    monkeypatch.setenv(variable, "1")
    assert _stylize(photos, tmp_path / "out.png") == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert f"{variable} is set" in error and url in error and str(fresh_machine) in error
    assert "--vgg-weights" in error
    assert connects == [] and requests == []
    assert not (tmp_path / "torch").exists() and not (tmp_path / "out.png").exists()


def test_unreachable_host_is_one_attempt_and_one_line(
    fresh_machine, photos, tmp_path, capsys, monkeypatch
):
    with socket.socket() as probe:  # a port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/models/{CAFFE_FILE}"
    monkeypatch.setenv(ENV_URL, url)
    connects = []
    real_connect = socket.socket.connect

    def counting(self, address):
        connects.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    assert _stylize(photos, tmp_path / "out.png") == 2
    (error,) = _error_lines(capsys.readouterr().err)
    assert "VGG-19 weights download failed: cannot reach 127.0.0.1 (ConnectionRefusedError" in error
    assert url in error and len(connects) == 1
    assert not (tmp_path / "torch").exists()


def test_stalled_download_times_out_and_leaves_nothing(
    fresh_machine, caffe_bytes, photos, tmp_path, capsys, monkeypatch
):
    name, data = caffe_bytes
    release = threading.Event()

    class Stalls(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # half the file, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            release.wait(10)

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stalls)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(vgg_download, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.setenv(ENV_URL, f"http://127.0.0.1:{httpd.server_address[1]}/models/{name}")
    try:
        start = time.monotonic()
        assert _stylize(photos, tmp_path / "out.png") == 2
        elapsed = time.monotonic() - start
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    (error,) = _error_lines(capsys.readouterr().err)
    assert "no answer from 127.0.0.1 in 0.5 s" in error
    assert elapsed < 30  # torch hub's downloader would have waited forever
    assert not (tmp_path / "torch").exists()  # the half file and its folders are gone


def test_random_backbone_never_downloads(fresh_machine, connects, tmp_path):
    # `make demo-quality` runs `dpst demo --quality --backbone random`: online and without
    # weights, it must neither look for nor fetch VGG-19.
    out = tmp_path / "demo.png"
    argv = ["demo", "--quality", "-o", str(out), "--backbone", "random"]
    assert main([*argv, "--size", "32", "--iters", "1"]) == 0
    report = json.loads(out.with_name("demo.png.json").read_text())
    assert report["backbone"]["random"] is True
    assert connects == [] and not (tmp_path / "torch").exists()


def test_torchvision_weights_by_name_come_with_a_one_line_note(
    photos, tmp_path, capsys, monkeypatch
):
    # Offline (the conftest): the file is in torch hub's folder, so nothing is fetched.
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(random_features_state(), folder / TORCHVISION_FILE)
    out = tmp_path / "out.png"
    assert _stylize(photos, out, "--vgg-weights", "torchvision") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "not calibrated" in line]
    assert len(notes) == 1 and notes[0].startswith("dpst: warning: torchvision's VGG-19")
    identity = json.loads(out.with_name("out.png.json").read_text())["backbone"]
    assert identity["preprocessing"] == "torchvision" and "not calibrated" in identity["note"]
    assert identity["path"] == str(folder / TORCHVISION_FILE)
