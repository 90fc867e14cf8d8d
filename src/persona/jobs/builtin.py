"""The jobs persona schedules (RFM, personas, recommendation training), and how each run gets a
process of its own.

A job reads every profile or every event and runs mostly Python: in the runner's own process
it would hold the GIL against the processing beside it for seconds at a time, and a fit
would leave scikit-learn's memory behind. So a scheduled run happens in a fresh child
process with its own connections to the store, which returns the line to log and exits.
Starting one costs about a second (imports, opening the store), once per interval.
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from persona.config import Config
from persona.errors import NotEnoughData

if TYPE_CHECKING:
    from persona.engine import Engine

EngineJob = Callable[["Engine"], str]


def rfm_job(engine: Engine) -> str:
    from persona.jobs.rfm import refresh_rfm

    return refresh_rfm(engine.state, engine.model_traits).summary()


def personas_job(engine: Engine) -> str:
    """A refit with the default options; its report is kept with the run (`persona personas show --report`)."""
    from persona.personas.runs import run_personas

    try:
        run = run_personas(engine.log, engine.state, engine.model_traits, engine.persona_runs)
    except NotEnoughData as exc:
        return f"skipped: {exc.message}"
    return run.line()


def models_job(engine: Engine) -> str:
    """Every predictive model's scores with its active version, trained first when due (`predict/lifecycle.py`)."""
    from persona.predict.lifecycle import refresh

    return refresh(engine)


def recs_job(engine: Engine) -> str:
    """What `persona recs train` does, with the config file's settings; running servers swap the new set in."""
    from persona.recommend.modelset import train

    models = train(engine.log, engine.state, engine.catalog, settings=engine.config.recommendations,
                   threads=1)  # a core stays with processing
    summary = models.summary
    if not summary["interactions"]:
        return "skipped: no interactions in the log yet (product views, adds to cart, orders with products)"
    model_id = engine.rec_models.save(models)
    return (f"model set #{model_id}: {summary['users']:,} users, {summary['items']:,} items, "
            f"{summary['interactions']:,} interactions")


def recs_wait(engine: Engine) -> str | None:
    """Why training must not start yet: nothing to train on, or processing is behind (an ingest burst, a
    rebuild) and would compete for the CPU while the training saw only part of the burst. Two or three
    cheap queries, asked only while the job is due."""
    from persona.recommend.interactions import ORDER_EVENT, PRODUCT_EVENTS, REVIEW_EVENT
    from persona.status import lag_of

    if not engine.log.event_names() & {*PRODUCT_EVENTS, ORDER_EVENT, REVIEW_EVENT}:
        return "no product events in the log yet"
    if (lag := lag_of(engine)) > engine.config.batch_size:
        return f"processing is {lag:,} events behind"
    return None


def in_child(job: EngineJob, config: Config) -> str:
    """Run `job` on an engine of its own in a fresh process; its exception, if any, is raised here.

    A plain subprocess (`python -m persona.jobs.builtin`), not multiprocessing: the runner may
    itself be a daemonic multiprocessing child (`persona serve`'s processor), which may not
    have children of its own. The job and config go in on stdin, the outcome comes back on
    stdout, both pickled; the child's logging goes to the runner's stderr."""
    done = subprocess.run([sys.executable, "-m", "persona.jobs.builtin"], input=pickle.dumps((job, config)),
                          stdout=subprocess.PIPE, check=False)
    if done.returncode != 0 or not done.stdout:
        raise RuntimeError(f"the job's process exited with code {done.returncode}")
    outcome = pickle.loads(done.stdout)
    if isinstance(outcome, BaseException):
        raise outcome
    return str(outcome)


def _child_main() -> None:
    job, config = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=config.log_level.upper(), format="job: %(levelname)s %(message)s")
    result_to = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing the job prints can garble the outcome
    from persona.engine import Engine

    outcome: object
    try:
        with Engine.open(config, "persona job") as engine:
            outcome = job(engine)
    except Exception as exc:
        outcome = exc
    try:
        encoded = pickle.dumps(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
        encoded = pickle.dumps(RuntimeError(f"{type(outcome).__name__}: {outcome}"))
    try:
        result_to.write(encoded)
        result_to.flush()
    except BrokenPipeError:  # the runner stopped meanwhile (a server shutting down): nobody to tell
        pass


if __name__ == "__main__":
    _child_main()
