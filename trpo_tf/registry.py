"""Entry-point discovery for plug-ins: lazy, failure-isolated, duplicate-aware.

Built-ins and third-party plug-ins are found the same way, through the entry-point
groups below (our own ``setup.cfg`` registers the built-ins). Three rules:

* Lazy: listing names reads package metadata only; :func:`load` imports the one
  entry point asked for and caches what it returns.
* Failure-isolated: a plug-in whose import raises is reported as a
  :class:`~trpo_tf.errors.RegistryError` naming its package and the exception;
  the other names of its group stay loadable.
* Duplicate-aware: two packages providing one name is an error naming both.
  Identical copies of one entry point (same name, target and package, as editable
  installs or a repeated ``sys.path`` entry produce) count as one.

This module must stay light: it never imports TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trpo_tf.errors import RegistryError

DISTRIBUTIONS = "trpo_tf.distributions"
ADVANTAGES = "trpo_tf.advantages"
ENVS = "trpo_tf.envs"
TRACKERS = "trpo_tf.trackers"
NETWORKS = "trpo_tf.networks"
GROUPS = (DISTRIBUTIONS, ADVANTAGES, ENVS, TRACKERS, NETWORKS)

_KINDS = {
    DISTRIBUTIONS: "distribution",
    ADVANTAGES: "advantage estimator",
    ENVS: "environment",
    TRACKERS: "tracker",
    NETWORKS: "network",
}
_UNKNOWN_PACKAGE = "unknown package"


@dataclass(frozen=True)
class PluginInfo:
    """One entry point as declared in package metadata (nothing imported).

    Attributes:
        name: The name users write, e.g. ``"diag_gaussian"``.
        group: The entry-point group, e.g. ``"trpo_tf.distributions"``.
        value: The import target, ``"module.path:attribute"``.
        package: The distribution (pip package) that declares it; ``None`` when
            the entry point carries no distribution.
        version: That package's version, ``None`` when unknown.
    """

    name: str
    group: str
    value: str
    package: str | None
    version: str | None

    @property
    def provider(self) -> str:
        """``"package version"`` for messages, or ``"unknown package"``."""
        if self.package is None:
            return _UNKNOWN_PACKAGE
        return f"{self.package} {self.version}" if self.version else self.package


_Found = tuple[PluginInfo, importlib.metadata.EntryPoint]

# Keyed by the full PluginInfo, so a changed target or package is never served stale.
_loaded: dict[PluginInfo, Any] = {}


# Every group's entry points, read at once, with the sys.path fingerprint they were read at.
_scanned: tuple[tuple[tuple[str, int | None], ...], importlib.metadata.EntryPoints] | None = None


def _path_fingerprint() -> tuple[tuple[str, int | None], ...]:
    """Each ``sys.path`` entry with its modification time (ns), None when it is missing.

    Installing or removing a package adds or removes a ``*.dist-info`` entry in a
    directory on ``sys.path``, which changes that directory's modification time;
    ``importlib.metadata`` keys its own path cache the same way.
    """
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return tuple(stamps)


def _entry_points(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    """The single place that reads installed metadata (tests replace it).

    Metadata is read once for all groups (~2.5 ms with TensorFlow's dependencies
    installed) and read again only when ``sys.path`` or a directory on it changes: a
    run resolves several names, and the pre-check resolves them once more.
    """
    global _scanned
    fingerprint = _path_fingerprint()
    if _scanned is None or _scanned[0] != fingerprint:
        _packages.clear()
        _scanned = (fingerprint, importlib.metadata.entry_points())
    return _scanned[1].select(group=group)


def kind(group: str) -> str:
    """Human-readable word for what a group holds, e.g. ``"advantage estimator"``."""
    return _KINDS.get(group, "plug-in")


def _normalize(package: str | None) -> str | None:
    # PEP 503: "My_Pkg" and "my-pkg" are one distribution.
    return None if package is None else re.sub(r"[-_.]+", "-", package).lower()


# (package, version) by distribution object: reading them parses the package's METADATA
# file (~1-3 ms each), and every lookup of a name reads those of its whole group.
_packages: dict[int, tuple[Any, tuple[str | None, str | None]]] = {}


def _package_of(dist: Any) -> tuple[str | None, str | None]:
    if dist is None:
        return None, None
    known = _packages.get(id(dist))
    if known is not None and known[0] is dist:
        return known[1]
    _packages[id(dist)] = (dist, _read_package(dist))
    return _packages[id(dist)][1]


def _read_package(dist: Any) -> tuple[str | None, str | None]:
    # Broken metadata of one package must not break listing the others.
    try:
        package = getattr(dist, "name", None) or dist.metadata["Name"]
    except Exception:
        package = None
    try:
        version = dist.version
    except Exception:
        version = None
    return package or None, version or None


def _discover(group: str) -> list[_Found]:
    """Entry points of ``group``, identical copies dropped, stably sorted by name."""
    seen: set[tuple[str, str, str | None]] = set()
    found: list[_Found] = []
    for ep in _entry_points(group):
        package, version = _package_of(getattr(ep, "dist", None))
        info = PluginInfo(ep.name, group, ep.value, package, version)
        identity = (info.name, info.value, _normalize(package))
        if identity in seen:
            continue
        seen.add(identity)
        found.append((info, ep))
    # Stable sort: providers of a duplicated name stay in sys.path order.
    found.sort(key=lambda pair: pair[0].name)
    return found


def available(group: str) -> list[PluginInfo]:
    """Lists the plug-ins of a group without importing any of them.

    Args:
        group: An entry-point group, e.g. :data:`DISTRIBUTIONS`.

    Returns:
        One :class:`PluginInfo` per entry point, sorted by name. A name provided
        by several packages appears once per provider, so the conflict can be shown.
    """
    return [info for info, _ in _discover(group)]


def names(group: str) -> list[str]:
    """Sorted distinct plug-in names of a group; imports nothing."""
    return sorted({info.name for info, _ in _discover(group)})


def has(group: str, name: str) -> bool:
    """Whether some installed package declares ``name`` in ``group``; imports nothing.

    A duplicated name counts as present (loading it then reports the conflict).
    """
    return any(info.name == name for info, _ in _discover(group))


def _unknown_message(group: str, name: str, known: list[str]) -> str:
    by_lower = {known_name.lower(): known_name for known_name in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"did you mean {by_lower[close[0]]!r}? " if close else ""
    listed = ", ".join(known) if known else "none installed"
    return f"unknown {kind(group)} {name!r}; {hint}available: {listed}"


def _duplicate_message(group: str, name: str, infos: list[PluginInfo]) -> str:
    providers = [f"{info.provider} ({info.value})" for info in infos]
    listed = " and ".join(providers) if len(providers) == 2 else ", ".join(providers)
    packages = {_normalize(info.package) for info in infos}
    if len(packages) == 1 and None not in packages:
        fix = f"package {infos[0].package} declares it {len(infos)} times; fix its entry points"
    else:
        fix = "uninstall one of them" if len(infos) == 2 else "uninstall all but one of them"
    return (
        f"{kind(group)} {name!r} in group {group} is provided by {len(infos)} packages: "
        f"{listed}; {fix}"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failure_message(info: PluginInfo, exc: BaseException) -> str:
    where = _UNKNOWN_PACKAGE if info.package is None else f"package {info.provider}"
    return f"plug-in {info.name!r} ({where}) in group {info.group} failed to load: {_one_line(exc)}"


def _find_one(group: str, name: str) -> _Found:
    found = _discover(group)
    matches = [pair for pair in found if pair[0].name == name]
    if not matches:
        known = sorted({info.name for info, _ in found})
        raise RegistryError(_unknown_message(group, name, known))
    if len(matches) > 1:
        raise RegistryError(_duplicate_message(group, name, [info for info, _ in matches]))
    return matches[0]


def _load_found(info: PluginInfo, ep: importlib.metadata.EntryPoint) -> Any:
    if info in _loaded:
        return _loaded[info]
    try:
        obj = ep.load()
    except Exception as exc:
        raise RegistryError(_failure_message(info, exc)) from exc
    _loaded[info] = obj
    return obj


def load(group: str, name: str) -> Any:
    """Imports one plug-in and returns the object its entry point names.

    Only this entry point's module is imported; the result is cached.

    Args:
        group: An entry-point group, e.g. :data:`DISTRIBUTIONS`.
        name: The plug-in name, e.g. ``"diag_gaussian"``.

    Returns:
        The object the entry point refers to (typically a factory).

    Raises:
        RegistryError: The name is unknown (the message lists the available names
            and suggests the closest), provided by more than one package (the
            message names both), or its import raised (the message names the
            package and the exception; ``__cause__`` holds the original).
    """
    info, ep = _find_one(group, name)
    return _load_found(info, ep)


def info(group: str, name: str) -> PluginInfo:
    """The declared entry point of one plug-in (nothing imported), for messages.

    Raises:
        RegistryError: the name is unknown or provided by several packages.
    """
    return _find_one(group, name)[0]


def check(group: str, name: str) -> str | None:
    """Tries to load a plug-in without raising.

    Args:
        group: An entry-point group.
        name: The plug-in name.

    Returns:
        ``None`` when :func:`load` succeeds, else its one-line error message.
    """
    try:
        load(group, name)
    except RegistryError as err:
        return str(err)
    return None


def clear_cache() -> None:
    """Forgets loaded plug-in objects and the metadata read (modules stay imported); for tests."""
    global _scanned
    _loaded.clear()
    _packages.clear()
    _scanned = None


def _format_group(group: str, try_load: bool) -> tuple[list[str], int]:
    """The group's lines and how many of its entries are DUPLICATE or BROKEN."""
    lines = [f"{group} ({kind(group)}s)"]
    found = _discover(group)
    if not found:
        empty = "  (none installed"
        empty += "; gymnasium ids work without a plug-in)" if group == ENVS else ")"
        return [*lines, empty], 0
    counts: dict[str, int] = {}
    for info, _ in found:
        counts[info.name] = counts.get(info.name, 0) + 1
    name_width = max(len(info.name) for info, _ in found)
    provider_width = max(len(info.provider) for info, _ in found)
    problems = 0
    for info, ep in found:
        row = f"  {info.name:<{name_width}}  {info.provider:<{provider_width}}  {info.value}"
        if counts[info.name] > 1:
            others = [o.provider for o, _ in found if o.name == info.name and o is not info]
            row += f"  DUPLICATE (also provided by {', '.join(others)}; uninstall one)"
            problems += 1
        elif try_load:
            try:
                _load_found(info, ep)
            except RegistryError as err:
                row += f"  BROKEN: {_one_line(err.__cause__ or err)}"
                problems += 1
            else:
                row += "  ok"
        lines.append(row)
    return lines, problems


@dataclass(frozen=True)
class PluginReport:
    """What ``trpo-tf plugins`` prints, and how many entries need fixing.

    Attributes:
        text: the table (see :func:`format_plugins`).
        problems: entries marked DUPLICATE, or BROKEN when they were loaded.
    """

    text: str
    problems: int


def plugin_report(load: bool = False) -> PluginReport:
    """The plug-in table and its count of DUPLICATE/BROKEN entries (never raises).

    Args:
        load: also import each (non-duplicated) plug-in, marking it ``ok`` or
            ``BROKEN: <exception>``. Without it nothing is imported.
    """
    lines: list[str] = []
    problems = 0
    for group in GROUPS:
        group_lines, group_problems = _format_group(group, try_load=load)
        lines.extend(group_lines)
        problems += group_problems
    return PluginReport("\n".join(lines), problems)


def format_plugins(load: bool = False) -> str:
    """Printable table of every group's plug-ins, for ``trpo-tf plugins``.

    Each line shows name, providing package and version, and import target;
    duplicated names are marked. Never raises for a broken or duplicated plug-in.

    Args:
        load: Also import each (non-duplicated) plug-in and mark it ``ok`` or
            ``BROKEN: <exception>``. Without it nothing is imported.

    Returns:
        Text with one header line per group and one line per entry point, without
        a trailing newline.
    """
    return plugin_report(load).text
