"""`persona demo` end to end: a real server, the real HTTP API, ground truth checked."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from persona.config import load_config
from persona.demo import run_demo
from tests.support.live import free_port


def test_demo_stitches_every_customer_into_one_profile(tmp_path: Path) -> None:
    config = load_config(env={}, data_dir=tmp_path / "demo", port=free_port(), log_level="WARNING")
    out = io.StringIO()
    stitching = run_demo(config, customers=150, days=20, seed=3, fresh=True, keep_serving=False,
                         console=Console(file=out, width=200))
    assert stitching.customers == 150
    assert stitching.signed_up > 50
    assert stitching.rate == 1.0
    text = out.getvalue()
    assert "150 profiles for 150 customers" in text
    assert "/v1/profiles/email:" in text
    assert "Audiences, kept live" in text and "lapsed_buyers" in text  # definitions evaluated as events came in
    assert "customers scored as of" in text  # RFM
    assert "Personas (" in text or "personas:" in text
    assert "Recommendations for " in text and "factors" in text  # trained on the log, asked of the API
    assert "/v1/recommendations/email:" in text
