"""The registries of the two compared axes: lookups, one-line refusals, parameter checks, out-of-tree modules."""

import dataclasses
import subprocess
import sys
import textwrap

import pytest

from harness.config.estimators import ESTIMATORS, Estimator
from harness.config.levels import LEVELS
from harness.config.registry import ENTROPIES, TOKEN_REWARDS, Configured, Entry, Registry, resolve
from harness.config.schema import ConfigError, ranged
from harness.config.validate import key_type
from tests.conftest import ROOT, parse_config


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scale:
    """A_{i,t} = c A_i (a test entry)."""

    c: float = ranged(1.0, gt=0, le=10, doc="factor")


def fresh() -> Registry:
    registry = Registry("advantage.estimator", Estimator)
    registry.register("scaled", "c times trl's advantage", compute=lambda batch, c: c * batch)(Scale)
    registry.register("other", "another", compute="harness.algorithms.advantages:outcome")(Scale)
    return registry


def test_unknown_name_lists_the_registered_names_in_order():
    with pytest.raises(ConfigError) as error:
        fresh().get("td")
    assert str(error.value) == "advantage.estimator='td'; allowed: scaled, other (or MODULE.NAME of an own module)"
    with pytest.raises(ConfigError, match="allowed: scaled, other .*; did you mean scaled\\?$"):
        fresh().get("scaed")
    with pytest.raises(ConfigError, match=r"advantage.estimator=3 must be a string; allowed: scaled, other"):
        fresh().get(3)


def test_the_built_in_entries_in_registration_order():
    assert ESTIMATORS.names()[:2] == ("outcome", "process")
    assert LEVELS.names() == ("token", "sequence", "sequence_token")  # the report's order: baselines first
    assert [level.name for level in LEVELS if not level.baseline] == ["sequence_token"]
    assert ESTIMATORS.get("process").needs == {TOKEN_REWARDS} and ESTIMATORS.get("outcome").per_sequence


def test_every_compute_path_resolves_to_a_function():
    for entry in [*ESTIMATORS, *LEVELS]:
        assert callable(entry.function()), entry.name
        assert entry.formula and entry.description, entry.name
    assert [callable(resolve(level.rebase_old_logps)) for level in LEVELS if level.rebase_old_logps] == [True]


def test_params_are_parsed_and_range_checked():
    entry = fresh().get("scaled")
    assert entry.parse({}, "advantage") == Scale(c=1.0)
    assert entry.parse({"c": 2}, "advantage") == Scale(c=2.0)
    with pytest.raises(ConfigError, match=r"^advantage.c=0 must be a finite number in \(0, 10\]$"):
        entry.parse({"c": 0}, "advantage")
    with pytest.raises(ConfigError, match=r"^advantage.d is not a config key; allowed: c$"):
        entry.parse({"d": 1}, "advantage")
    assert Configured(entry, Scale(c=3.0)).compute(2.0) == 6.0  # params as keyword arguments


def test_config_keys_follow_the_chosen_estimator():
    run = parse_config("logger=none", "advantage=discounted")
    assert run.advantage.estimator == "process" and run.advantage.params.gamma == 0.9
    assert run.advantage.configured.kwargs() == {"gamma": 0.9}
    with pytest.raises(ConfigError) as error:
        parse_config("logger=none", "advantage=outcome", "+advantage.gamma=0.5")
    assert str(error.value) == (
        "advantage.gamma only applies to advantage.estimator=process; remove it "
        "(advantage.estimator=outcome takes name, estimator)"
    )
    with pytest.raises(ConfigError, match=r"^advantage.gama is not a key of advantage.estimator=process; did you "):
        parse_config("logger=none", "+advantage.gama=0.5")
    assert key_type("advantage.gamma") == (float, {"gt": 0, "le": 1})  # a study's search space
    with pytest.raises(ConfigError, match="advantage.gama is not a config key; did you mean gamma"):
        key_type("advantage.gama")


def test_dotted_lookup_of_a_missing_module_or_name_is_one_line():
    with pytest.raises(ConfigError) as error:
        ESTIMATORS.get("no_such_module.toy")
    assert str(error.value) == (
        "advantage.estimator=no_such_module.toy: cannot import no_such_module (No module named 'no_such_module')"
    )
    with pytest.raises(ConfigError) as error:
        ESTIMATORS.get("harness.algorithms.advantages.toy")
    assert str(error.value).startswith(
        "advantage.estimator=harness.algorithms.advantages.toy: harness.algorithms.advantages registers no toy; "
        "registered: outcome, process"
    )


def test_an_own_module_registers_on_import(tmp_path, monkeypatch):
    (tmp_path / "own_estimators.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from harness.config.estimators import ESTIMATORS

            @ESTIMATORS.register("own_half", "half of trl's advantage", compute=lambda batch: batch.advantages / 2)
            @dataclass(frozen=True, kw_only=True)
            class Half:
                '''A_i / 2'''
            """
        )
    )
    (tmp_path / "broken_estimators.py").write_text("raise RuntimeError('the module is broken')\n")
    monkeypatch.syspath_prepend(tmp_path)
    assert ESTIMATORS.find("own_estimators.own_half") is None  # nothing imported by a lookup that does not import
    try:
        entry = ESTIMATORS.get("own_estimators.own_half")
        assert entry.name == "own_half" and ESTIMATORS.find("own_estimators.own_half") is entry
        with pytest.raises(ConfigError, match="advantage.estimator=own_half is registered twice"):
            ESTIMATORS.register("own_half", "again", compute=entry.compute)(entry.params)
    finally:
        ESTIMATORS._entries.pop("own_half", None)  # the registry is process-wide: leave it as the other tests see it
    with pytest.raises(ConfigError) as error:
        ESTIMATORS.get("broken_estimators.x")
    assert str(error.value) == (
        "advantage.estimator=broken_estimators.x: cannot import broken_estimators (RuntimeError: the module is broken)"
    )


def test_bad_declarations_fail_at_import():
    registry = fresh()
    with pytest.raises(TypeError, match="frozen dataclass"):
        registry.register("plain", "x", compute="m:f")(type("Plain", (), {}))
    with pytest.raises(TypeError, match="'module:function'"):
        registry.register("path", "x", compute="harness.algorithms.advantages.outcome")(Scale)
    with pytest.raises(TypeError, match="needs \\['tokens'\\]; known: entropies, generations, token_rewards"):
        registry.register("needy", "x", compute="m:f", needs=frozenset({"tokens"}))(Scale)
    with pytest.raises(TypeError, match="no dot"):
        registry.register("a.b", "x", compute="m:f")(Scale)
    assert Entry(name="e", description="d", params=Scale, compute="m:f", needs=frozenset({ENTROPIES})).needs


def test_declarations_import_no_torch():
    code = (
        "import sys; import harness.config.estimators, harness.config.levels, harness.config.groups; "
        "heavy = {'torch', 'trl', 'transformers'} & set(sys.modules); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
