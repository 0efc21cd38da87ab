"""The JavaScript runtime (serve/js, docs/onnx.md) against ``dpst fast`` on the bundled model.

``node serve/js/stylize.mjs`` runs in a subprocess on small pairs made here (a synthetic pair
with a clipped highlight, and scikit-image photos), with and without mask files (one content
label the style lacks, so the orphan rule runs), at strength 0.5 and 1.5; its PNG must be
within 1/255 mean absolute difference of ``dpst fast``'s. Needs Node and ``npm ci
--ignore-scripts --prefix serve/js`` (``make js``): without them the tests skip, saying so,
except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from tests.conftest import sample_photo

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "serve" / "js"
CLI = JS / "stylize.mjs"
BUNDLED = ROOT / "serve" / "bundled"
# The parity: mean absolute difference of the 8-bit results, in levels of 255.
MAX_MEAN_DIFF = 1.0


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        _missing("node is not installed (Node.js 18 or newer runs serve/js)")
    if not (JS / "node_modules" / "onnxruntime-node").is_dir():
        _missing(
            "serve/js has no node_modules: make js (npm ci --ignore-scripts --prefix serve/js)"
        )
    return path


def _synthetic(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour waves with noise and a clipped white patch (highlight protection runs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack(
        [0.5 + 0.4 * np.sin(6 * x + seed), 0.5 + 0.4 * np.cos(5 * y - seed),
         0.5 + 0.3 * np.sin(4 * (x + y))], axis=-1,
    )  # fmt: skip
    image += rng.normal(0, 0.03, image.shape)
    image[height // 3 : height // 2, width // 4 : width // 3] = 1.0
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def _photo(name: str, long_side: int) -> np.ndarray:
    return (sample_photo(name, long_side) * 255).round().astype(np.uint8)


def _colour_mask(height: int, width: int, orphan: bool) -> np.ndarray:
    """Blue top, green bottom; the content's gets a red band the style lacks (an orphan)."""
    mask = np.zeros((height, width, 3), np.uint8)
    mask[: height // 2] = (0, 0, 255)
    mask[height // 2 :] = (0, 255, 0)
    if orphan:
        mask[:, : width // 5] = (255, 0, 0)
    return mask


PAIRS = {
    "synthetic": lambda: (_synthetic(181, 243, 1), _synthetic(150, 200, 2)),
    "photos": lambda: (_photo("chelsea", 220), _photo("coffee", 160)),
}


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("js-pairs")
    files = {}
    for name, make in PAIRS.items():
        content, style = make()
        paths = {k: root / f"{name}-{k}.png" for k in ("content", "style", "cmask", "smask")}
        Image.fromarray(content).save(paths["content"])
        Image.fromarray(style).save(paths["style"])
        Image.fromarray(_colour_mask(*content.shape[:2], orphan=True)).save(paths["cmask"])
        Image.fromarray(_colour_mask(*style.shape[:2], orphan=False)).save(paths["smask"])
        files[name] = paths
    return files


def _node_stylize(node: str, args: list, env_extra: dict | None = None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [node, str(CLI), *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("strength", [0.5, 1.5])
@pytest.mark.parametrize("masks", [False, True], ids=["one-region", "masks"])
@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_node_matches_dpst_fast(node, pair_files, tmp_path, monkeypatch, pair, masks, strength):
    files = pair_files[pair]
    monkeypatch.setenv("DPST_OFFLINE", "1")
    monkeypatch.delenv("DPST_MODEL", raising=False)  # both sides on the bundled model
    common = [files["content"], files["style"]]
    mask_args = ["--content-mask", files["cmask"], "--style-mask", files["smask"]] if masks else []
    python_out, node_out = tmp_path / "python.png", tmp_path / "node.png"
    no_masks = [] if masks else ["--masks", "none"]
    # The JS glue has no post-filter (docs/onnx.md, step 11): compared without it.
    argv = ["fast", *map(str, common), "-o", str(python_out), "--strength", str(strength),
            "--no-post-filter"]  # fmt: skip
    assert main([*argv, *map(str, mask_args), *no_masks]) == 0
    done = _node_stylize(node, [*common, "-o", node_out, "--strength", strength, *mask_args])
    assert done.returncode == 0, done.stderr
    expected, got = _read(python_out), _read(node_out)
    assert got.shape == expected.shape
    diff = float(np.abs(got - expected).mean())
    assert diff <= MAX_MEAN_DIFF, f"{pair} masks={masks} strength={strength}: {diff:.4f}/255"
    # Not a vacuous match: the look changed the photo.
    assert float(np.abs(got - _read(files["content"])).mean()) > 2.0


def test_masks_change_the_node_result(node, pair_files, tmp_path):
    """The mask files reach the model (a result with them differs from one region's)."""
    files = pair_files["synthetic"]
    outputs = []
    for extra in ([], ["--content-mask", files["cmask"], "--style-mask", files["smask"]]):
        out = tmp_path / f"out{len(outputs)}.png"
        done = _node_stylize(node, [files["content"], files["style"], "-o", out, *extra])
        assert done.returncode == 0, done.stderr
        outputs.append(_read(out))
    assert float(np.abs(outputs[0] - outputs[1]).mean()) > 2.0


def test_damaged_model_is_refused(node, pair_files, tmp_path):
    """A graph that does not match its .sha256 is refused in one line, exit 2 (as Python)."""
    model = tmp_path / "model"
    shutil.copytree(BUNDLED, model, ignore=shutil.ignore_patterns("examples", "*.csv"))
    renderer = model / "model.render.onnx"
    data = bytearray(renderer.read_bytes())
    data[-1] ^= 0xFF
    renderer.write_bytes(bytes(data))
    files = pair_files["synthetic"]
    out = tmp_path / "x.png"
    done = _node_stylize(
        node, [files["content"], files["style"], "-o", out, "--model", model / "model.onnx"]
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "does not match its checksum" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "{style}", "-o", "{out}"], "missing.png: no such file"),
        (["{content}", "{style}", "-o", "{out}", "--strength", "2.5"], "--strength must be betw"),
        (["{content}", "{style}", "-o", "{out}", "--content-mask", "{cmask}"], "or neither"),
        (["{content}", "{style}"], "give -o OUTPUT"),
        (["{content}", "{style}", "-o", "{out}", "--model", "{content}"], "not a dpst ONNX model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(node, pair_files, tmp_path, args, message):
    files = {k: str(v) for k, v in pair_files["synthetic"].items()}
    argv = [a.format(out=tmp_path / "x.png", **files) for a in args]
    done = _node_stylize(node, argv, {"PWD": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


# ----- the web page (serve/js/web) in headless Chromium -------------------------------------

CHROMIUM = os.environ.get("DPST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"]  # fmt: skip
# The browser's result against Node's, mean absolute difference in levels of 255 (the issue's).
MAX_WEB_DIFF = 2.0
WEB_RUN_MS = 240_000  # one thread of WebAssembly on a busy 2-core machine


@pytest.fixture(scope="module")
def static_server():
    """serve/ over http on 127.0.0.1 (a secure context: crypto.subtle checks the checksums)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output to the test's own
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "serve"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser(node):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs the playwright package"
    )
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _web_stylize(browser, server: str, content: Path, style: Path, strength: float) -> np.ndarray:
    """The page's result for two photo files, as the user gets it (choose, slide, click)."""
    import base64
    import io

    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server}/js/web/index.html")
    page.wait_for_selector('#status[data-state="idle"]', timeout=60_000)
    page.set_input_files("#content", str(content))
    page.set_input_files("#style", str(style))
    page.wait_for_selector("#run:not([disabled])", timeout=60_000)
    page.eval_on_selector(
        "#strength", f"e => {{ e.value = '{strength}'; e.dispatchEvent(new Event('input')); }}"
    )
    page.click("#run")
    page.wait_for_selector('#status[data-state="done"], #status[data-state="error"]',
                           timeout=WEB_RUN_MS)  # fmt: skip
    assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")
    assert not errors, errors
    assert page.get_attribute("#download", "href").startswith("blob:")
    url = page.eval_on_selector("#result", "c => c.toDataURL('image/png')")
    context.close()
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float64)


def _web_matches_node(node, browser, server, content: Path, style: Path, tmp_path: Path):
    strength = 0.75
    node_out = tmp_path / "node.png"
    done = _node_stylize(node, [content, style, "-o", node_out, "--strength", strength])
    assert done.returncode == 0, done.stderr
    web = _web_stylize(browser, server, content, style, strength)
    expected = _read(node_out)
    assert web.shape == expected.shape
    diff = float(np.abs(web - expected).mean())
    assert diff <= MAX_WEB_DIFF, f"browser vs Node: {diff:.4f}/255"


def test_web_page_matches_node(node, browser, static_server, pair_files, tmp_path):
    """The page styles two chosen photos with onnxruntime-web as Node does (within 2/255)."""
    files = pair_files["photos"]
    _web_matches_node(node, browser, static_server, files["content"], files["style"], tmp_path)


@pytest.mark.slow
def test_web_page_styles_12_megapixels(node, browser, static_server, tmp_path):
    """The issue's browser target: a 12 MP photo in a 12 MP look, rendered in bands without
    running out of memory, still as Node renders it (about 30 s in all on 2 cores)."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(_synthetic(3000, 4000, 5)).save(content)
    Image.fromarray(_synthetic(3000, 4000, 6)).save(style)
    _web_matches_node(node, browser, static_server, content, style, tmp_path)
