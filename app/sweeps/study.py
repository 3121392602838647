"""The sweep's optimiser: an Optuna study in the service's own database, named by the sweep's id.

On Postgres the study tables live in the `optuna` schema of the same database (migration 0009 makes
it), so that Optuna's own Alembic version table never meets ours; on SQLite, in a file beside the
service's database, for the same reason.
"""

import contextlib
import json
import logging
from functools import cache
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from sqlalchemy.engine import make_url

from distillery.jobspec.sweep import Range, SweepSpec, is_integer_field

OPTUNA_SCHEMA = "optuna"
optuna.logging.set_verbosity(optuna.logging.WARNING)
logger = logging.getLogger(__name__)
_opened: set[str] = set()


@cache
def storage(database_url: str) -> optuna.storages.RDBStorage:
    """One storage (and connection pool) per database and process."""
    _opened.add(database_url)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        study_file = f"{database.removesuffix('.db')}.optuna.db" if database else ""
        return optuna.storages.RDBStorage(url.set(database=study_file).render_as_string(hide_password=False))
    return optuna.storages.RDBStorage(
        url.render_as_string(hide_password=False),
        engine_kwargs={"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True},
    )


def forget_connections() -> None:
    """In a forked child: drop the parent's pooled connections to the study tables without closing them."""
    for url in list(_opened):
        storage(url).engine.dispose(close=False)


def sampler(spec: SweepSpec, *, asked: int) -> optuna.samplers.BaseSampler:
    """The spec's sampler; seeded by the trials asked so far, since each pass builds it afresh."""
    seed = spec.seed + asked
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(grid(spec), seed=spec.seed)
    return optuna.samplers.TPESampler(seed=seed)


def pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """ASHA (successive halving) on the trials' eval metric, or none."""
    if spec.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(database_url: str, *, sweep_id: str, spec: SweepSpec, telling: bool = False) -> optuna.Study:
    """The sweep's study, created on first use; its sampler and pruner built from the spec.

    `telling`: a handle that only tells outcomes, whose sampler does nothing after a trial (the grid
    sampler's stops the study, which Optuna allows only inside `optimize`).
    """
    store = storage(database_url)
    _, direction = spec.metric()
    try:
        study_id = store.get_study_id_from_name(sweep_id)
        asked = len(store.get_all_trials(study_id, deepcopy=False))
    except KeyError:
        asked = 0
    return optuna.create_study(
        storage=store,
        study_name=sweep_id,
        direction=direction,
        sampler=optuna.samplers.RandomSampler() if telling else sampler(spec, asked=asked),
        pruner=pruner(spec),
        load_if_exists=True,
    )


def delete_study(database_url: str, *, sweep_id: str) -> None:
    """Remove the sweep's study, if it has one."""
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=sweep_id, storage=storage(database_url))


def distributions(spec: SweepSpec) -> dict[str, BaseDistribution]:
    """Optuna's distribution of each dimension; a list of choices by each choice's JSON text."""
    out: dict[str, BaseDistribution] = {}
    for key, dimension in spec.space().items():
        if isinstance(dimension, Range):
            if is_integer_field(spec.base, key):
                step = int(dimension.step or 1)
                out[key] = IntDistribution(
                    int(dimension.low), int(dimension.high), log=dimension.log, step=step
                )
            else:
                out[key] = FloatDistribution(
                    dimension.low, dimension.high, log=dimension.log, step=dimension.step
                )
        else:
            out[key] = CategoricalDistribution([encode(choice) for choice in dimension])
    return out


def grid(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every value of every dimension, for a grid search."""
    return {
        key: dimension.grid(integer=is_integer_field(spec.base, key))
        if isinstance(dimension, Range)
        else [encode(choice) for choice in dimension]
        for key, dimension in spec.space().items()
    }


def grid_size(spec: SweepSpec) -> int:
    """How many points the grid has."""
    size = 1
    for values in grid(spec).values():
        size *= len(values)
    return size


def encode(choice: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, anything else (a list of layers) as JSON text."""
    return choice if choice is None or isinstance(choice, bool | int | float | str) else json.dumps(choice)


def decode(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's parameters as the job spec takes them."""
    out = {}
    for key, value in params.items():
        dimension = spec.space().get(key)
        if isinstance(dimension, list) and isinstance(value, str) and value not in dimension:
            value = json.loads(value)
        out[key] = value
    return out
