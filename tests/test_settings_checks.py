"""Settings that once ended in a traceback: a --config count that is not whole or a number
that is not finite, and a port out of range, are one line and exit 2 (issue 25, item 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpst.cli import main
from dpst.config import update_dataclass
from dpst.errors import InputError
from dpst.imageio import write_image
from dpst.optim_reference.stylize import StylizeConfig
from tests.faults import one_line_error


@pytest.mark.parametrize(
    "text, said",
    [('{"iters": 2.5}', "whole number"), ('{"iters": NaN}', "finite"),
     ('{"weights": {"style": Infinity}}', "finite"), ('{"size": "big"}', "a number")],
)  # fmt: skip
def test_a_config_number_that_is_no_setting_is_one_line(tmp_path, capsys, text, said):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "c.png", rng.random((16, 16, 3)))
    (tmp_path / "bad.json").write_text(text)
    code = main(["stylize", str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o",
                 str(tmp_path / "o.png"), "--config", str(tmp_path / "bad.json"),
                 "--backbone", "random", "--masks", "none"])  # fmt: skip
    one_line_error(capsys, code, said)
    assert not (tmp_path / "o.png").exists()


def test_whole_floats_count_and_ints_stand_for_floats():
    config = update_dataclass(StylizeConfig(), {"iters": 3.0, "weights": {"style": 7}})
    assert config.iters == 3 and isinstance(config.iters, int)
    assert config.weights.style == 7.0 and isinstance(config.weights.style, float)
    with pytest.raises(InputError, match=r"config\.iters: expected a whole number"):
        update_dataclass(StylizeConfig(), json.loads('{"iters": 2.5}'))


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_serve_refuses_a_port_out_of_range_before_starting(capsys, monkeypatch, port):
    def forbidden(*args, **kwargs):
        raise AssertionError("the port was not checked before the demo was built")

    monkeypatch.setattr("dpst.serve.app.engine.DemoEngine", forbidden)
    code = main(["serve", "--port", port, "--backbone", "random"])
    one_line_error(capsys, code, "--port must be 1 to 65535", f"got {port}")
