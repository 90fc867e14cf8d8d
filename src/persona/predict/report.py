"""A model version's report: one self-contained HTML file (charts embedded as PNG, drawn like
the personas report's) and its figures as JSON beside it.

For a classifier: calibration (mean score against the share observed, per decile of the score),
lift per decile, and cumulative gain against picking customers at random; the figures of the
validation cut-off and the recency baseline. For the lifetime-value model: its fitted
parameters and figures."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from persona.personas.report import embedded_png, escaped, write_files
from persona.predict.registry import ModelVersion


def write_report(version: ModelVersion, path: Path) -> tuple[Path, Path]:
    return write_files(path, render(version), version.to_json())


def render(version: ModelVersion) -> str:
    shown = version.to_json()
    figures = "".join(f"<tr><td>{escaped(k)}</td><td>{escaped(v)}</td></tr>"
                      for k, v in version.metrics.items() if not isinstance(v, list))
    charts = ""
    if "lift" in version.metrics:
        charts = (f"<h2>Calibration</h2><p>Per tenth of the customers by score: the mean score against the share "
                  f"that turned out positive. On the diagonal, a score of 0.3 means 30%.</p>"
                  f"{embedded_png(_calibration(version))}"
                  f"<h2>Lift and gain</h2>{embedded_png(_lift(version))}")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escaped(version.label)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
img {{ max-width: 100%; }} .muted {{ color: #666; }}
</style></head><body>
<h1>Model {escaped(version.label)}</h1>
<p class="muted">Trained {escaped(shown['created_at'])} by {escaped(version.trained_by)} on
{escaped(version.trained_on)}{' · active' if version.active else ''}</p>
<p>{escaped(version.params.get('label', ''))}</p>
<h2>Figures</h2><table>{figures}</table>
{charts}
<h2>Features</h2><p>{escaped(', '.join(version.features))}</p>
</body></html>
"""


def _calibration(version: ModelVersion) -> Figure:
    rows = version.metrics["calibration"]
    fig = Figure(figsize=(5, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#bbb", linestyle="--", label="perfectly calibrated")
    ax.plot([r["mean_score"] for r in rows], [r["observed"] for r in rows], marker="o", label=version.label)
    ax.set_xlabel("mean score")
    ax.set_ylabel("observed share")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _lift(version: ModelVersion) -> Figure:
    rows = version.metrics["lift"]
    deciles = [r["decile"] for r in rows]
    fig = Figure(figsize=(10, 4))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.bar(deciles, [r["lift"] for r in rows], color="#4c72b0")
    left.axhline(1.0, color="#bbb", linestyle="--")
    left.set_xlabel("decile of the score (1: highest)")
    left.set_ylabel("lift")
    right.plot([0, *deciles], [0, *(100 * r["cumulative_gain"] for r in rows)], marker="o", label=version.label)
    right.plot([0, 10], [0, 100], color="#bbb", linestyle="--", label="at random")
    right.set_xlabel("deciles targeted")
    right.set_ylabel("% of positives reached")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig
