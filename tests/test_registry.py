"""Tests for trpo_tf.registry with monkeypatched entry points.

Fake packages are real ``*.dist-info`` directories in ``tmp_path`` read through
``importlib.metadata.PathDistribution``, so entry points carry a real ``.dist``;
fake plug-in modules are files in ``tmp_path`` put on ``sys.path``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from trpo_tf import registry
from trpo_tf.errors import RegistryError, TrpoTfError

EntryPoint = importlib.metadata.EntryPoint
D = registry.DISTRIBUTIONS


@pytest.fixture(autouse=True)
def _fresh_cache():
    registry.clear_cache()
    yield
    registry.clear_cache()


@pytest.fixture
def modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], Path]]:
    """Writes ``<name>.py`` importable from ``sys.path``; unimports it afterwards.

    Returns a function ``make(name, body) -> marker``; the module appends a line
    to ``marker`` every time it is imported, so tests can see whether it was.
    """
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    monkeypatch.syspath_prepend(str(code_dir))
    # Modules are rewritten within one test; stale bytecode must not be picked up.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    made: list[str] = []

    def make(name: str, body: str) -> Path:
        marker = tmp_path / f"{name}.imported"
        header = f"with open({str(marker)!r}, 'a') as _f:\n    _f.write('x\\n')\n"
        (code_dir / f"{name}.py").write_text(header + body)
        importlib.invalidate_caches()
        made.append(name)
        return marker

    yield make
    for name in made:
        sys.modules.pop(name, None)


def make_dist(
    root: Path, package: str, version: str, entry_points: dict[str, dict[str, str]]
) -> importlib.metadata.Distribution:
    """A package with the given ``{group: {name: target}}`` entry points."""
    info_dir = root / f"{package}-{version}.dist-info"
    info_dir.mkdir(parents=True)
    (info_dir / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
    )
    text = ""
    for group, entries in entry_points.items():
        text += f"[{group}]\n" + "".join(f"{n} = {v}\n" for n, v in entries.items())
    (info_dir / "entry_points.txt").write_text(text)
    return importlib.metadata.PathDistribution(info_dir)


def install(
    monkeypatch: pytest.MonkeyPatch,
    *sources: importlib.metadata.Distribution | EntryPoint,
) -> None:
    """Makes the registry see only these packages / bare entry points, in order."""

    def fake_entry_points(group: str) -> Iterable[EntryPoint]:
        found = []
        for source in sources:
            if isinstance(source, EntryPoint):
                found += [source] if source.group == group else []
            else:
                found += [ep for ep in source.entry_points if ep.group == group]
        return found

    monkeypatch.setattr(registry, "_entry_points", fake_entry_points)


def marker_count(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


# --- discovery --------------------------------------------------------------------


def test_available_is_sorted_and_carries_package_metadata(tmp_path, monkeypatch):
    dist = make_dist(
        tmp_path, "good_pkg", "1.2", {D: {"zeta": "json:loads", "alpha": "json:dumps"}}
    )
    install(monkeypatch, dist, EntryPoint("mid", "json:JSONDecoder", D))

    infos = registry.available(D)

    assert infos == [
        registry.PluginInfo("alpha", D, "json:dumps", "good_pkg", "1.2"),
        registry.PluginInfo("mid", D, "json:JSONDecoder", None, None),
        registry.PluginInfo("zeta", D, "json:loads", "good_pkg", "1.2"),
    ]
    assert [info.provider for info in infos] == ["good_pkg 1.2", "unknown package", "good_pkg 1.2"]
    assert registry.names(D) == ["alpha", "mid", "zeta"]
    assert registry.available(registry.ENVS) == []


def test_listing_and_has_import_no_plugin(tmp_path, monkeypatch, modules):
    broken = modules("fake_broken_listing", "raise RuntimeError('imported!')\n")
    good = modules("fake_good_listing", "def make():\n    return 1\n")
    dist = make_dist(
        tmp_path,
        "pkg",
        "1.0",
        {D: {"broken": "fake_broken_listing:make", "good": "fake_good_listing:make"}},
    )
    install(monkeypatch, dist)

    assert [info.name for info in registry.available(D)] == ["broken", "good"]
    assert registry.has(D, "good") and registry.has(D, "broken")
    assert not registry.has(D, "missing")
    assert not registry.has(registry.ADVANTAGES, "good")
    registry.format_plugins()

    assert marker_count(broken) == 0 and marker_count(good) == 0
    assert "fake_broken_listing" not in sys.modules


def test_load_imports_only_the_requested_entry_point_and_caches_it(tmp_path, monkeypatch, modules):
    broken = modules("fake_broken_lazy", "raise RuntimeError('imported!')\n")
    good = modules("fake_good_lazy", "def make():\n    return 'made'\n")
    dist = make_dist(
        tmp_path,
        "pkg",
        "1.0",
        {D: {"broken": "fake_broken_lazy:make", "good": "fake_good_lazy:make"}},
    )
    install(monkeypatch, dist)

    factory = registry.load(D, "good")
    assert factory() == "made"
    assert marker_count(good) == 1
    assert marker_count(broken) == 0

    # A second load is served from the cache, not by importing the module again.
    del sys.modules["fake_good_lazy"]
    assert registry.load(D, "good") is factory
    assert marker_count(good) == 1


def test_real_entry_points_of_an_unused_group_are_empty():
    assert list(registry._entry_points("trpo_tf.no_such_group_for_tests")) == []


# --- broken plug-ins --------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "body", "expected"),
    [
        ("fake_missing_dep:make", "import fake_module_that_does_not_exist\n",
         "ModuleNotFoundError: No module named 'fake_module_that_does_not_exist'"),
        ("fake_raises:make", "raise ValueError('boom\\n  on two lines')\n",
         "ValueError: boom on two lines"),
        ("fake_no_attr:make", "", "AttributeError: module 'fake_no_attr' has no attribute 'make'"),
    ],
)  # fmt: skip
def test_broken_plugin_error_names_package_and_exception_and_others_still_load(
    tmp_path, monkeypatch, modules, target, body, expected
):
    modules(target.split(":")[0], body)
    dist = make_dist(tmp_path, "bar", "1.0", {D: {"foo": target, "fine": "json:dumps"}})
    install(monkeypatch, dist)

    with pytest.raises(RegistryError) as caught:
        registry.load(D, "foo")

    assert str(caught.value) == (
        f"plug-in 'foo' (package bar 1.0) in group trpo_tf.distributions failed to load: {expected}"
    )
    assert isinstance(caught.value.__cause__, Exception)
    assert isinstance(caught.value, TrpoTfError)
    import json

    assert registry.load(D, "fine") is json.dumps
    assert registry.check(D, "fine") is None
    assert registry.check(D, "foo") == str(caught.value)


def test_broken_plugin_without_distribution_says_unknown_package(monkeypatch):
    install(monkeypatch, EntryPoint("foo", "fake_module_that_does_not_exist:make", D))

    with pytest.raises(RegistryError, match=r"^plug-in 'foo' \(unknown package\) in group "):
        registry.load(D, "foo")


def test_broken_plugin_is_retried_not_cached(tmp_path, monkeypatch, modules):
    marker = modules("fake_flaky", "raise ImportError('not yet')\n")
    install(monkeypatch, make_dist(tmp_path, "bar", "1.0", {D: {"flaky": "fake_flaky:make"}}))

    with pytest.raises(RegistryError, match="ImportError: not yet"):
        registry.load(D, "flaky")
    modules("fake_flaky", "make = 'fixed'\n")

    assert registry.load(D, "flaky") == "fixed"
    assert marker_count(marker) == 2


# --- duplicates -------------------------------------------------------------------


def test_duplicate_name_error_names_both_providers(tmp_path, monkeypatch):
    pkg_a = make_dist(tmp_path / "a", "pkg_a", "1.0", {D: {"gauss": "json:dumps"}})
    pkg_b = make_dist(
        tmp_path / "b", "pkg-b", "2.0", {D: {"gauss": "json:loads", "other": "json:loads"}}
    )
    install(monkeypatch, pkg_a, pkg_b)

    with pytest.raises(RegistryError) as caught:
        registry.load(D, "gauss")

    message = str(caught.value)
    assert message == (
        "distribution 'gauss' in group trpo_tf.distributions is provided by 2 packages: "
        "pkg_a 1.0 (json:dumps) and pkg-b 2.0 (json:loads); uninstall one of them"
    )
    assert registry.has(D, "gauss")
    assert [(i.name, i.package) for i in registry.available(D)] == [
        ("gauss", "pkg_a"),
        ("gauss", "pkg-b"),
        ("other", "pkg-b"),
    ]
    assert registry.names(D) == ["gauss", "other"]
    import json

    assert registry.load(D, "other") is json.loads


def test_same_name_with_different_targets_in_one_package_is_a_duplicate(monkeypatch):
    install(monkeypatch, EntryPoint("x", "json:dumps", D), EntryPoint("x", "json:loads", D))

    with pytest.raises(RegistryError, match=r"provided by 2 packages: unknown package"):
        registry.load(D, "x")


def test_identical_duplicates_are_deduplicated(tmp_path, monkeypatch):
    # An editable install plus a stale copy, or one site dir on sys.path twice,
    # makes the same package declare the same entry point twice.
    first = make_dist(tmp_path / "site1", "My_Pkg", "1.0", {D: {"gauss": "json:dumps"}})
    second = make_dist(tmp_path / "site2", "my-pkg", "1.0", {D: {"gauss": "json:dumps"}})
    bare = EntryPoint("bare", "json:loads", D)
    install(monkeypatch, first, second, first, bare, EntryPoint("bare", "json:loads", D))

    assert [(i.name, i.package) for i in registry.available(D)] == [
        ("bare", None),
        ("gauss", "My_Pkg"),
    ]
    import json

    assert registry.load(D, "gauss") is json.dumps
    assert registry.load(D, "bare") is json.loads
    assert "DUPLICATE" not in registry.format_plugins()


# --- unknown names ----------------------------------------------------------------


def test_unknown_name_suggests_closest_and_lists_available(tmp_path, monkeypatch):
    dist = make_dist(
        tmp_path,
        "trpo_tf",
        "0.1.0",
        {D: {"diag_gaussian": "json:dumps", "categorical": "json:loads"}},
    )
    install(monkeypatch, dist)

    with pytest.raises(RegistryError) as caught:
        registry.load(D, "gausian")
    assert str(caught.value) == (
        "unknown distribution 'gausian'; did you mean 'diag_gaussian'? "
        "available: categorical, diag_gaussian"
    )

    with pytest.raises(RegistryError) as caught:
        registry.load(D, "Categorical")
    assert "did you mean 'categorical'?" in str(caught.value)

    with pytest.raises(RegistryError) as caught:
        registry.load(D, "beta")
    assert str(caught.value) == (
        "unknown distribution 'beta'; available: categorical, diag_gaussian"
    )


@pytest.mark.parametrize(
    ("group", "word"),
    [
        (registry.DISTRIBUTIONS, "distribution"),
        (registry.ADVANTAGES, "advantage estimator"),
        (registry.ENVS, "environment"),
        (registry.TRACKERS, "tracker"),
    ],
)
def test_unknown_name_uses_the_group_kind_word(monkeypatch, group, word):
    install(monkeypatch)

    with pytest.raises(RegistryError) as caught:
        registry.load(group, "nope")

    assert str(caught.value) == f"unknown {word} 'nope'; available: none installed"
    assert registry.check(group, "nope") == str(caught.value)


def test_groups_constant():
    assert registry.GROUPS == (
        "trpo_tf.distributions",
        "trpo_tf.advantages",
        "trpo_tf.envs",
        "trpo_tf.trackers",
        "trpo_tf.networks",
    )


# --- format_plugins ---------------------------------------------------------------


def _fixture_packages(tmp_path, monkeypatch, modules):
    modules("fake_broken_fmt", "import fake_module_that_does_not_exist\n")
    install(
        monkeypatch,
        make_dist(
            tmp_path / "own",
            "trpo_tf",
            "0.1.0",
            {D: {"categorical": "json:dumps"}, registry.ADVANTAGES: {"gae": "json:loads"}},
        ),
        make_dist(tmp_path / "a", "pkg_a", "1.0", {D: {"gauss": "json:dumps"}}),
        make_dist(tmp_path / "b", "pkg_b", "2.0", {D: {"gauss": "json:loads"}}),
        make_dist(tmp_path / "c", "bar", "3.1", {D: {"broken": "fake_broken_fmt:make"}}),
    )


def _line_of(text: str, start: str) -> str:
    [line] = [line for line in text.splitlines() if line.strip().startswith(start)]
    return line


def test_format_plugins_lists_names_packages_targets_and_duplicates(tmp_path, monkeypatch, modules):
    _fixture_packages(tmp_path, monkeypatch, modules)

    text = registry.format_plugins()

    for group in registry.GROUPS:
        assert group in text
    assert "categorical" in _line_of(text, "categorical")
    assert "trpo_tf 0.1.0" in _line_of(text, "categorical")
    assert "json:dumps" in _line_of(text, "categorical")
    assert "trpo_tf 0.1.0" in _line_of(text, "gae")
    gauss_lines = [line for line in text.splitlines() if line.strip().startswith("gauss")]
    assert len(gauss_lines) == 2
    assert "pkg_a 1.0" in gauss_lines[0] and "also provided by pkg_b 2.0" in gauss_lines[0]
    assert "pkg_b 2.0" in gauss_lines[1] and "also provided by pkg_a 1.0" in gauss_lines[1]
    assert all("DUPLICATE" in line for line in gauss_lines)
    assert "bar 3.1" in _line_of(text, "broken")
    assert "BROKEN" not in text and " ok" not in text
    assert "fake_broken_fmt" not in sys.modules
    assert "(none installed" in text  # envs and trackers are empty here


def test_format_plugins_load_marks_broken_without_raising(tmp_path, monkeypatch, modules):
    _fixture_packages(tmp_path, monkeypatch, modules)

    text = registry.format_plugins(load=True)

    assert _line_of(text, "broken").endswith(
        "BROKEN: ModuleNotFoundError: No module named 'fake_module_that_does_not_exist'"
    )
    assert _line_of(text, "categorical").endswith("ok")
    assert _line_of(text, "gae").endswith("ok")
    assert all("DUPLICATE" in line for line in text.splitlines() if "gauss" in line)
    assert not text.endswith("\n")


def test_plugin_report_counts_broken_and_duplicate_entries(tmp_path, monkeypatch, modules):
    _fixture_packages(tmp_path, monkeypatch, modules)

    assert registry.plugin_report().problems == 2  # the two gauss providers
    assert registry.plugin_report(load=True).problems == 3  # and the broken import


def test_plugins_check_exits_1_on_broken_or_duplicate(tmp_path, monkeypatch, modules, capsys):
    from trpo_tf.cli import main

    _fixture_packages(tmp_path, monkeypatch, modules)

    assert main(["plugins"]) == 0  # listing only: nothing is checked
    capsys.readouterr()
    assert main(["plugins", "--check"]) == 1
    captured = capsys.readouterr()
    assert "BROKEN" in captured.out and "DUPLICATE" in captured.out
    assert captured.err.strip().splitlines() == [
        "trpo-tf: plugins --check failed: 3 entries are BROKEN or DUPLICATE (marked above); "
        "reinstall or fix the broken package, uninstall one provider of a duplicate"
    ]


def test_plugins_check_exits_0_when_all_load(tmp_path, monkeypatch, capsys):
    from trpo_tf.cli import main

    install(monkeypatch, make_dist(tmp_path / "own", "trpo_tf", "0.1.0", {D: {"c": "json:dumps"}}))

    assert main(["plugins", "--check"]) == 0
    assert capsys.readouterr().err == ""


# --- module hygiene ---------------------------------------------------------------


def test_registry_does_not_import_tensorflow():
    tree = ast.parse(Path(registry.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"tensorflow", "tensorflow_probability", "tf_keras", "keras"}
