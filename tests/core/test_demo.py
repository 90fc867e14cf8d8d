"""`persona demo` end to end: a real server, the real HTTP API, ground truth checked."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from persona.config import load_config
from persona.demo import run_demo
from tests.support.live import free_port


def test_demo_stitches_every_customer_into_one_profile(tmp_path: Path) -> None:
    config = load_config(env={}, data_dir=tmp_path / "demo", port=free_port(), log_level="WARNING")
    out = io.StringIO()
    stitching = run_demo(config, customers=600, days=30, seed=3, fresh=True, keep_serving=False,
                         console=Console(file=out, width=200))
    assert stitching.customers == 600
    assert stitching.signed_up > 50
    assert stitching.rate == 1.0
    text = out.getvalue()
    assert "600 profiles for 600 customers" in text
    assert "/v1/profiles/email:" in text
    assert "Audiences, kept live" in text and "lapsed_buyers" in text  # definitions evaluated as events came in
    assert "customers scored as of" in text  # RFM
    assert "Personas (" in text or "personas:" in text
    assert re.search(r"predictive clv: clv@(\d) trained; [\d,]+ customers scored by clv@\1", text)
    assert "predictive propensity: not trained: " in text and "persona demo --days 150" in text  # 30 days: too few
    assert "most_valuable" in text and not engine_queue_left(config)
    assert "Recommendations for " in text and "factors" in text  # trained on the log, asked of the API
    assert "/v1/recommendations/email:" in text


def engine_queue_left(config: object) -> list[object]:
    """Score changes the audience stage has not evaluated (the demo waits for them)."""
    from persona.engine import Engine

    with Engine.open(config) as engine:  # type: ignore[arg-type]
        size = engine.audiences.sizes().get("most_valuable", 0)
        scored = engine.model_traits.values("predicted_clv_12m_percentile")
        assert size == sum(1 for rank in scored.values() if rank > 90) > 0
        return engine.model_traits.changes(10)
