"""``dpst eval``'s outputs: a text table, a CSV, a JSON report and a PNG plot.

The plot is drawn with Pillow (already a dependency) rather than matplotlib, which the
project does not otherwise need: one horizontal bar per pair for the objective ratio and
for the photorealism-energy ratio, with the issue's limits (1.5 and 1) marked.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from dpst.imageio import atomic_write, write_json

# Columns of the printed table: (key, header, format).
TABLE_COLUMNS = (
    ("id", "pair", "{}"),
    ("objective_ratio", "J(G)/J(opt)", "{:.3f}"),
    ("gen_total", "J(G)", "{:.4g}"),
    ("opt_total", "J(opt)", "{:.4g}"),
    ("gen_energy", "E_m(G)", "{:.4g}"),
    ("opt_energy", "E_m(opt)", "{:.4g}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("gen_seconds", "G s/img", "{:.4f}"),
)
OBJECTIVE_LIMIT = 1.5
PLOT_RANGE = 4.0
ENERGY_LIMIT = 1.0
CSV_FILE, JSON_FILE, PLOT_FILE = "eval.csv", "eval.json", "eval.png"


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Aligned text: one line per pair, then the mean."""
    lines = [[header for _, header, _ in TABLE_COLUMNS]]
    for row in rows:
        lines.append([_cell(row.get(key), fmt) for key, _, fmt in TABLE_COLUMNS])
    mean = dict(summary, id="mean")
    lines.append([_cell(mean.get(key), fmt) for key, _, fmt in TABLE_COLUMNS])
    widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_COLUMNS))]
    text = []
    for line in lines:
        cells = zip(line, widths, strict=True)
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells))
        text.append("  ".join(padded))
    text.insert(1, "-" * len(text[0]))
    text.insert(len(text) - 1, "-" * len(text[0]))
    return "\n".join(text)


def write_csv(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    keys = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in keys})
    writer.writerow({k: _csv_value(summary.get(k)) for k in keys} | {"id": "mean"})
    data = buffer.getvalue().encode()
    atomic_write(path, lambda fh: fh.write(data))


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    return "" if value is None else value


def plot(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """Two bar charts side by side: J(G)/J(opt) and E_m(G)/E_m(opt) per pair."""
    from PIL import Image, ImageDraw

    bar_h, gap, label_w, chart_w, pad = 14, 6, 150, 320, 30
    top = 46
    height = top + len(rows) * (bar_h + gap) + 44
    width = label_w + 2 * (chart_w + 3 * pad)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 6), title, fill="black")
    charts = (
        ("objective_ratio", "objective J(G)/J(opt)", OBJECTIVE_LIMIT),
        ("energy_ratio", "photorealism E(G)/E(opt)", ENERGY_LIMIT),
    )
    for c, (key, name, limit) in enumerate(charts):
        x0 = label_w + pad + c * (chart_w + 3 * pad)
        values = [float(r.get(key) or 0.0) for r in rows]
        finite = [v for v in values if math.isfinite(v)] or [1.0]
        # Bars past PLOT_RANGE times the limit are cut (their value is still written).
        vmax = min(max(limit * 1.2, *finite), PLOT_RANGE * limit)
        scale = chart_w / vmax
        draw.text((x0, 24), name, fill="black")
        for i, (row, value) in enumerate(zip(rows, values, strict=True)):
            y = top + i * (bar_h + gap)
            if c == 0:
                draw.text((pad, y), str(row["id"])[:22], fill="black")
            v = min(value, vmax) if math.isfinite(value) else vmax
            colour = (70, 130, 180) if v <= limit else (205, 92, 92)
            draw.rectangle([x0, y, x0 + max(1, int(v * scale)), y + bar_h], fill=colour)
            draw.text((x0 + int(v * scale) + 3, y), f"{value:.2f}", fill="black")
        y_end = top + len(rows) * (bar_h + gap)
        for row_offset, (mark, fill) in enumerate(((1.0, "grey"), (limit, "red"))):
            x = x0 + int(mark * scale)
            draw.line([x, top - 4, x, y_end], fill=fill, width=1)
            draw.text((x - 4, y_end + 4 + 12 * row_offset), f"{mark:g}", fill=fill)
        draw.line([x0, top - 4, x0, y_end], fill="black", width=1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))


def write_report(
    out_dir: str | Path, rows: list[dict[str, Any]], summary: dict[str, Any], meta: dict
) -> dict[str, Path]:
    """``eval.csv``, ``eval.json`` (rows, summary and ``meta``) and ``eval.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / CSV_FILE, "json": out / JSON_FILE, "png": out / PLOT_FILE}
    write_csv(paths["csv"], rows, summary)
    write_json(paths["json"], {**meta, "summary": summary, "pairs": rows})
    title = (
        f"{summary['pairs']} pairs, mean J(G)/J(opt) {summary['objective_ratio']:.3f}, "
        f"mean E(G)/E(opt) {summary['energy_ratio']:.3f}"
    )
    plot(paths["png"], rows, title)
    return paths
