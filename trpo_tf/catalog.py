"""The experiments shipped with trpo_tf, by name (``trpo-tf train cartpole``).

The YAML files are package data under ``trpo_tf/experiments/`` (the repository's
top-level ``experiments/`` points there), so a plain ``pip install`` has them. A
name is the file's path below that folder without ``.yaml``: ``cartpole``,
``mujoco/halfcheetah``; a file name that is unique (``halfcheetah``) works too.
``experiments/results.json`` holds the measured result each one is known for, with
the document under ``docs/benchmarks/`` it comes from.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trpo_tf.errors import ConfigError, first_line

EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
RESULTS_FILE = EXPERIMENTS_DIR / "results.json"
SUFFIXES = (".yaml", ".yml")
SEARCH_SPACE_SUFFIXES = (".space.yaml", ".space.yml")


def shipped() -> dict[str, Path]:
    """Every shipped experiment: name (``mujoco/halfcheetah``) -> its YAML file, sorted."""
    found = {}
    for path in EXPERIMENTS_DIR.rglob("*"):
        if path.name.endswith(SEARCH_SPACE_SUFFIXES):  # trpo-tf tune's, beside an experiment
            continue
        if path.suffix in SUFFIXES and path.is_file():
            found[path.relative_to(EXPERIMENTS_DIR).with_suffix("").as_posix()] = path
    return dict(sorted(found.items(), key=lambda item: (item[0].count("/"), item[0])))


def _by_short_name(names: list[str]) -> dict[str, str]:
    """File names without folder that only one experiment has: ``halfcheetah``."""
    short: dict[str, list[str]] = {}
    for name in names:
        short.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return {key: found[0] for key, found in short.items() if len(found) == 1}


def resolve(spec: str | Path) -> Path:
    """The experiment file ``spec`` names: an existing path, else a shipped name.

    ``experiments/cartpole.yaml`` given where no such file exists (outside a
    checkout of the repository) is the shipped ``cartpole``.

    Raises:
        ConfigError: neither a file nor a shipped experiment (with the closest names).
    """
    path = Path(spec)
    if path.is_file():
        return path
    catalog = shipped()
    key = path.as_posix()
    for suffix in SUFFIXES:
        key = key.removesuffix(suffix)
    candidates = [key, key.removeprefix("./").removeprefix("experiments/")]
    short = _by_short_name(list(catalog))
    for candidate in candidates:
        if candidate in catalog:
            return catalog[candidate]
        if candidate in short:
            return catalog[short[candidate]]
    if path.is_dir():
        raise ConfigError(f"experiment {str(spec)!r} is a directory; pass a YAML file or a name")
    names = list(dict.fromkeys([*catalog, *short]))
    close = difflib.get_close_matches(candidates[-1], names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    what = "experiment file not found" if path.suffix in SUFFIXES else "unknown experiment"
    raise ConfigError(
        f"{what}: {str(spec)[:200]!r}{hint} (a YAML path, a registered gymnasium id, or a "
        f"shipped experiment: {', '.join(name for name in catalog if '/' not in name)}, ...; "
        "`trpo-tf experiments` lists them all)"
    )


SHARED_DEFAULT = "mujoco/default"
"""The experiment a gymnasium id with a Box action space and none of its own trains with."""


@dataclass(frozen=True)
class Experiment:
    """What ``trpo-tf train SPEC`` trains: a YAML file, keys it sets, and why (or "")."""

    path: Path
    overrides: tuple[str, ...] = ()
    note: str = ""


def experiment_for(spec: str | Path) -> Experiment:
    """:func:`resolve`, and a registered gymnasium id (``Walker2d-v5``) as well.

    An id is trained with the shipped experiment made for it (``HalfCheetah-v5`` ->
    ``mujoco/halfcheetah``); an id with a Box action space and no experiment of its
    own with the shared default, :data:`SHARED_DEFAULT`, with ``env.id`` set.

    Raises:
        ConfigError: neither a file, a shipped name nor a registered gymnasium id; an
            id that cannot be built, or whose actions are not a Box and that no shipped
            experiment is made for.
    """
    try:
        return Experiment(resolve(spec))
    except ConfigError:
        env_id = str(spec)
        if Path(spec).suffix in SUFFIXES or not _is_gymnasium_id(env_id):
            raise
    for name, path in shipped().items():
        env = yaml_mapping(path).get("env") or {}
        if env.get("id") == env_id and not env.get("kwargs"):
            return Experiment(path, note=f"{env_id}: the shipped experiment {name}")
    import gymnasium

    space = _action_space(env_id)
    if not isinstance(space, gymnasium.spaces.Box):
        raise ConfigError(
            f"{env_id} has no experiment of its own and its actions are {space}, not a Box "
            f"(the shared default, {SHARED_DEFAULT}, is for continuous actions): start "
            f"from a shipped one, e.g. trpo-tf train cartpole --set env.id={env_id}"
        )
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in env_id.lower())
    return Experiment(
        shipped()[SHARED_DEFAULT],
        (f"env.id={env_id}", f"name={slug}"),
        f"{env_id} has no experiment of its own: the shared default for Box actions, "
        f"{SHARED_DEFAULT} with env.id={env_id}",
    )


def yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping ({} when empty or not a mapping)."""
    import yaml

    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else {}


def _is_gymnasium_id(env_id: str) -> bool:
    import gymnasium

    return env_id in gymnasium.registry


def _action_space(env_id: str) -> Any:
    """The action space of ``gymnasium.make(env_id)`` (built once, then closed)."""
    import gymnasium

    try:
        env = gymnasium.make(env_id)
    except Exception as error:  # noqa: BLE001 - whatever the env raises becomes one line
        raise ConfigError(
            f"gymnasium env {env_id} could not be built to read its action space "
            f"({first_line(error, 200)})"
        ) from None
    try:
        return env.action_space
    finally:
        env.close()


def name_of(path: Path) -> str | None:
    """The shipped name of ``path``, None for a file that is not shipped."""
    try:
        relative = path.resolve().relative_to(EXPERIMENTS_DIR)
    except ValueError:
        return None
    return relative.with_suffix("").as_posix()


@dataclass(frozen=True)
class ExperimentInfo:
    """One row of ``trpo-tf experiments``."""

    name: str
    env_id: str
    total_steps: int
    result: str
    source: str


def results() -> dict[str, dict[str, str]]:
    """``results.json``: name -> ``{"result": ..., "source": "docs/benchmarks/..."}``."""
    with open(RESULTS_FILE) as file:
        return json.load(file)


def describe_all() -> list[ExperimentInfo]:
    """Env, budget and known result of every shipped experiment (defaults filled in)."""
    from trpo_tf.config.schema import EnvConfig, TrainerConfig

    known = results()
    rows = []
    for name, path in shipped().items():
        data = yaml_mapping(path)
        env = data.get("env") or {}
        trainer = data.get("trainer") or {}
        result = known.get(name, {})
        rows.append(
            ExperimentInfo(
                name=name,
                env_id=str(env.get("id", EnvConfig.id)),
                total_steps=int(trainer.get("total_steps", TrainerConfig.total_steps)),
                result=result.get("result", "-"),
                source=result.get("source", ""),
            )
        )
    return rows


def _steps(total: int) -> str:
    if total >= 1_000_000 and total % 1_000_000 == 0:
        return f"{total // 1_000_000}M"
    if total >= 1000 and total % 1000 == 0:
        return f"{total // 1000}k"
    return f"{total:,d}"


def format_table(rows: list[ExperimentInfo]) -> str:
    """A plain-text table: name, env, budget, result (and where the result is from)."""
    header = ("experiment", "env", "budget", "result")
    lines = [header] + [(r.name, r.env_id, _steps(r.total_steps), r.result) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    out = []
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line[:3], widths, strict=True)]
        out.append("  ".join([*cells, line[3]]).rstrip())
    sources = sorted({r.source for r in rows if r.source})
    out.append("")
    out.append("results: final deterministic eval return; from " + ", ".join(sources))
    out.append("train one: trpo-tf train NAME; its settings: trpo-tf config NAME")
    return "\n".join(out)
