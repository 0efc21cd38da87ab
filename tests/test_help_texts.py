"""Every subcommand's --help, walked: one metavar per meaning, defaults said, the forms named.

Issue 24: `dpst look -o` listed image extensions, `dpst look export --help` printed `dpst
look`'s text with an `ARG`, `dpst video -o OUT` beside `-o OUTPUT` elsewhere, flags whose
default the help did not say. These tests read the parsers, not the source.
"""

from __future__ import annotations

import argparse
import os

import pytest

from dpst.cli import build_parser, main
from dpst.serve.examples import photo_names

# -o names what is written: a file of a fixed kind by its kind (as --model MODEL.onnx,
# --look LOOK.dpst and --lut LUT.cube name the same kinds as inputs), else OUTPUT (an image
# or a video whose format follows the extension).
OUTPUT_METAVARS = {
    "export": "MODEL.onnx",
    "look": "LOOK.dpst",
    "look export": "LUT.cube",
    "data pairs": "MANIFEST",
}
# Flags whose one name has two meanings in different commands, each with its own metavar.
TWO_MEANINGS = {"--masks": {"{auto,none}", "DIR"}}  # segment both photos / a folder of masks


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by its name ("data pairs", "look export", ...)."""
    found = {}

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(f"{name} {sub_name}".strip(), sub)

    walk("", build_parser())
    del found[""]
    return found


def _metavar(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The metavar as --help prints it (argparse's own formatter)."""
    formatter = parser._get_formatter()
    default = action.dest.upper() if action.option_strings else action.dest
    return formatter._metavar_formatter(action, default)(1)[0]


def _valued(parser: argparse.ArgumentParser):
    """The parser's shown arguments that take a value: (action, metavar)."""
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or action.nargs == 0:
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        yield action, _metavar(parser, action)


PARSERS = _parsers()


def test_every_command_is_walked_and_renders_its_help():
    assert {"demo", "fast", "look", "look export", "video", "serve", "data pairs"} <= set(PARSERS)
    for name, parser in PARSERS.items():
        text = parser.format_help()
        assert parser.prog == f"dpst {name}" and text.startswith(f"usage: dpst {name}"), name


def test_metavars_are_written_not_derived_from_dest_names():
    # argparse's derived metavars (CONTENT_MASK, OUT_DIR, photo_dir) were where one meaning
    # got several names; written ones are single words, positionals in capitals.
    for name, parser in PARSERS.items():
        for action, metavar in _valued(parser):
            assert "_" not in metavar, (name, action.option_strings or action.dest, metavar)
            if not action.option_strings:
                assert metavar == metavar.upper(), (name, action.dest, metavar)


def test_one_metavar_per_flag_across_commands():
    seen: dict[str, dict[str, str]] = {}
    for name, parser in PARSERS.items():
        for action, metavar in _valued(parser):
            for flag in action.option_strings:
                seen.setdefault(flag, {})[name] = metavar
    for flag, by_command in seen.items():
        if flag in ("-o", "--output"):
            for command, metavar in by_command.items():
                assert metavar == OUTPUT_METAVARS.get(command, "OUTPUT"), (command, metavar)
        elif flag in TWO_MEANINGS:
            assert set(by_command.values()) == TWO_MEANINGS[flag], (flag, by_command)
        else:
            assert len(set(by_command.values())) == 1, (flag, by_command)


def test_a_flag_with_a_default_says_it():
    for name, parser in PARSERS.items():
        for action, _ in _valued(parser):
            if action.default in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            text = action.help or ""
            said = "default" in text or f"({action.default})" in text or str(action.default) in text
            assert said, (name, action.option_strings, action.default, text)


def _help(parser_name: str, flag: str) -> str:
    parser = PARSERS[parser_name]
    return next(a.help for a in parser._actions if flag in a.option_strings)


def test_the_issues_help_texts():
    # dpst look writes a look file, export a .cube: no list of image extensions.
    assert ".png" not in _help("look", "-o") and ".png" not in _help("look export", "-o")
    # dpst serve's default model is the chain every one-pass command follows, bundled last.
    assert "bundled" in _help("serve", "--model")
    # dpst demo names the photos it can take.
    for flag in ("--content", "--style"):
        assert all(name in _help("demo", flag) for name in photo_names())
    # --threads defaults to the cores: the help says how many that is here.
    for command in ("fast", "look", "look export", "video"):
        assert f"{os.cpu_count() or 1} here" in _help(command, "--threads"), command


def test_look_export_help_is_its_own(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["look", "export", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dpst look export") and "CONTENT" in out and "ARG" not in out
    assert "-o LUT.cube" in out and "--style-mask" not in out
    with pytest.raises(SystemExit):
        main(["look", "--help"])
    out = capsys.readouterr().out
    assert "STYLE" in out and "dpst look export --help" in out and "--lut-size" not in out


def test_export_only_flags_on_dpst_look_are_one_line(tmp_path, capsys):
    code = main(["look", str(tmp_path / "s.png"), "-o", str(tmp_path / "l.dpst"), "--hald",
                 str(tmp_path / "h.png")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["dpst look: error: --hald: only for dpst look export"]
