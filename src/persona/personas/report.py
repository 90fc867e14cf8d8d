"""The personas report: one self-contained HTML file (plots embedded as PNG) and a JSON summary beside it.

Plots: persona sizes; each persona's feature profile (z-scores against everyone, as a
heatmap); customers on the first two principal components, coloured by persona; silhouette
and Davies-Bouldin by k for each method. Drawn with matplotlib's Agg canvas directly (no
pyplot, so no global backend state and no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

if TYPE_CHECKING:
    from persona.personas.runs import PersonaRun

SCATTER_SAMPLE = 4000


def write_report(run: PersonaRun, path: Path, html: str | None = None) -> tuple[Path, Path]:
    """Write the HTML report (`html`, else rendered now) at `path` and the JSON summary beside it (.json)."""
    return write_files(path, html if html is not None else render(run), run.summary())


def write_files(path: Path, html: str, summary: dict[str, object]) -> tuple[Path, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    beside = path.with_suffix(".json")
    beside.write_text(json.dumps(summary, indent=2))
    path.write_text(html)
    return path, beside


def render(run: PersonaRun) -> str:
    s = run.summary()
    chosen = s["chosen"]
    rows = "".join(
        f"<tr><td>{p.id}</td><td><b>{escaped(p.name)}</b></td><td>{p.size:,}</td><td>{p.share:.1%}</td>"
        f"<td>{escaped(p.description)}</td></tr>" for p in run.personas)
    candidates = "".join(
        f"<tr><td>{c['method']}</td><td>{c['k']}</td><td>{_num(c['silhouette'])}</td>"
        f"<td>{_num(c['davies_bouldin'])}</td><td>{'yes' if c['eligible'] else 'no'}</td>"
        f"<td>{escaped(c['note'])}</td></tr>"
        for c in s["candidates"])
    window = s["window"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Personas {escaped(run.id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
th {{ background: #f4f4f4; }} img {{ max-width: 100%; }} .muted {{ color: #666; }}
</style></head><body>
<h1>Customer personas</h1>
<p class="muted">Run {escaped(run.id)} · events from {escaped(window['since'] or 'the start')}
to {escaped(window['until'] or 'now')} · recency as of {escaped(window['as_of'])}</p>
<p>{s['customers']:,} customers clustered ({s['events']:,} events); {s['left_out']:,} with fewer than
{s['min_events']} events were left out. Chosen: <b>{chosen['method']}, k = {chosen['k']}</b>
(silhouette {_num(chosen['silhouette'])}, Davies-Bouldin {_num(chosen['davies_bouldin'])}).
Rule: {escaped(s['rule'])}.</p>
<h2>Personas</h2>
<table><tr><th>id</th><th>name</th><th>customers</th><th>share</th><th>description</th></tr>{rows}</table>
{embedded_png(_sizes(run))}
<h2>Feature profiles</h2>
<p>Each persona's average of every feature, in standard deviations from everyone's (after log1p of counts).</p>
{embedded_png(_heatmap(run))}
<h2>Customers on two principal components</h2>
{embedded_png(_scatter(run))}
{_stability(run)}
<h2>Choosing k</h2>
{embedded_png(_scores(run))}
<table><tr><th>method</th><th>k</th><th>silhouette</th><th>Davies-Bouldin</th><th>eligible</th><th>note</th></tr>
{candidates}</table>
<h2>Features</h2><p>{escaped(', '.join(s['features']))}</p>
</body></html>
"""


def _stability(run: PersonaRun) -> str:
    st = run.stability
    if st is None:
        return "<h2>Stability</h2><p>No earlier run to compare with.</p>"
    ari = "n/a (no customers in both)" if st.ari is None else f"{st.ari:.3f}"
    shares = "".join(f"<tr><td>{escaped(x['name'])}</td><td>{x['then']:.1%}</td><td>{x['now']:.1%}</td></tr>"
                     for x in st.shares)
    lineage = "".join(f"<tr><td>{escaped(run.personas[x['persona']].name)}</td><td>{escaped(x['previous_name'])}</td>"
                      f"<td>{x['overlap']:.0%}</td></tr>" for x in st.lineage)
    return f"""<h2>Stability against run {escaped(st.previous_run)}</h2>
<p>Adjusted Rand index over the {st.common_customers:,} customers in both runs: <b>{ari}</b>.
Population stability index of the previous personas: <b>{st.psi:.3f}</b>
(under 0.1 stable, 0.1-0.25 moderate shift, above 0.25 large).</p>
<table><tr><th>previous persona</th><th>share then</th><th>share now</th></tr>{shares}</table>
<table><tr><th>persona now</th><th>mostly from</th><th>overlap</th></tr>{lineage}</table>"""


def _sizes(run: PersonaRun) -> Figure:
    fig = Figure(figsize=(8, 0.5 + 0.45 * len(run.personas)))
    ax = fig.subplots()
    names = [p.name for p in run.personas][::-1]
    ax.barh(names, [p.size for p in run.personas][::-1], color="#4c72b0")
    ax.set_xlabel("customers")
    ax.set_title("Persona sizes")
    fig.tight_layout()
    return fig


def _heatmap(run: PersonaRun) -> Figure:
    columns = [c.name for c in run.features.columns]
    z = np.clip(np.array([p.z for p in run.personas]), -3, 3)
    fig = Figure(figsize=(max(8.0, 0.45 * len(columns)), 1.5 + 0.5 * len(run.personas)))
    ax = fig.subplots()
    image = ax.imshow(z, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(run.personas)), [p.name for p in run.personas], fontsize=8)
    fig.colorbar(image, ax=ax, label="z-score vs everyone")
    fig.tight_layout()
    return fig


def _scatter(run: PersonaRun) -> Figure:
    points, labels = run.fit.points, run.fit.labels
    if len(points) > SCATTER_SAMPLE:
        keep = np.sort(np.random.default_rng(run.fit.seed).choice(len(points), SCATTER_SAMPLE, replace=False))
        points, labels = points[keep], labels[keep]
    xy = PCA(n_components=2, random_state=run.fit.seed).fit_transform(points)
    fig = Figure(figsize=(8, 6))
    ax = fig.subplots()
    for persona in run.personas:
        mine = labels == persona.id
        ax.scatter(xy[mine, 0], xy[mine, 1], s=6, alpha=0.6, label=persona.name)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def _scores(run: PersonaRun) -> Figure:
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for method in dict.fromkeys(c.method for c in run.fit.candidates):
        scored = [c for c in run.fit.candidates if c.method == method and c.silhouette is not None]
        if not scored:
            continue
        style = "o" if method == "dbscan" else "o-"
        left.plot([c.k for c in scored], [c.silhouette for c in scored], style, label=method)
        right.plot([c.k for c in scored], [c.davies_bouldin for c in scored], style, label=method)
    chosen = run.fit.chosen
    left.plot([chosen.k], [chosen.silhouette], "k*", markersize=14, label="chosen")
    right.plot([chosen.k], [chosen.davies_bouldin], "k*", markersize=14, label="chosen")
    left.set_title("silhouette (higher is better)")
    right.set_title("Davies-Bouldin (lower is better)")
    for ax in (left, right):
        ax.set_xlabel("k")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def embedded_png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def escaped(text: object) -> str:
    return html.escape(str(text))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
