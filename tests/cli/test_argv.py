"""The command line read by Hydra's own parser, in-process: what goes to Hydra unchecked, what is refused in one
line, and the argv handed on (flags first: Hydra's parser takes no override after a flag that follows overrides)."""

import pytest
from hydra._internal.utils import get_args_parser

from harness.cli.preflight import parse_argv, preflight
from harness.config.compose import normalise
from harness.config.schema import ConfigError


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["-h", "--nope"], ["--hydra-help"], ["--version"], ["--info"], ["--info=defaults", "seed=1"],
     ["-i", "plugins"], ["-sc", "install=bash"], ["--experimental-rerun", "config.pickle"], ["--nope", "--help"]],
)  # fmt: skip
def test_print_only_flags_go_to_hydra_unchecked(argv):
    assert parse_argv(argv) is None
    assert preflight(argv) == argv


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "--nope is not an option of python -m harness.run; did you mean --info?"),
        (["--nope=3", "seed=1"], "--nope is not an option of python -m harness.run; did you mean --info?"),
        (["--multi", "seed=0,1"], "--multi is not an option of python -m harness.run; did you mean --multirun?"),
        (["--cfg", "bogus"], "argument --cfg/-c: invalid choice: 'bogus' (choose from 'job', 'hydra', 'all')"),
        (["seed=1", "--cfg"], "argument --cfg/-c: expected one argument"),
        (["-m", "seed=0,1", "--cfg", "job"], "only one of --run, --multirun (-m) and --cfg can be given"),
        (["-r", "-m"], "only one of --run, --multirun (-m) and --cfg can be given"),
    ],
)
def test_bad_flags_are_one_line(argv, message):
    with pytest.raises(ConfigError) as error:
        parse_argv(argv)
    assert str(error.value) == message


def test_overrides_may_surround_flags():
    argv = ["logger=none", "--cfg", "job", "seed=2", "-p", "trainer", "trainer.bf16=false"]
    args = parse_argv(argv)
    assert (args.cfg, args.package, args.overrides) == (
        "job",
        "trainer",
        ["logger=none", "seed=2", "trainer.bf16=false"],
    )
    handed_on = preflight(argv)
    assert handed_on[:4] == ["--cfg", "job", "-p", "trainer"]
    hydra_args = get_args_parser().parse_args(handed_on)  # as hydra.main parses it (no intermixing)
    assert hydra_args.overrides == normalise(["logger=none", "seed=2", "trainer.bf16=false"])
    assert (hydra_args.cfg, hydra_args.package) == ("job", "trainer")
