"""Command-line parsing that needs no server."""

from __future__ import annotations

from vigil.cli import _time_values_attached, build_parser


def test_relative_times_after_from_and_until_are_values_not_options() -> None:
    argv = _time_values_attached(["logs", "search", "timeout", "--from", "-1h", "--until", "-5min"])
    args = build_parser().parse_args(argv)
    assert (args.q, args.from_, args.until) == ("timeout", "-1h", "-5min")
    args = build_parser().parse_args(_time_values_attached(["cube", "--from", "-1d", "--rollup"]))
    assert args.from_ == "-1d" and args.rollup


def test_other_arguments_are_left_alone() -> None:
    argv = ["logs", "search", "--from", "20261123", "--host", "-odd-", "--json"]
    assert _time_values_attached(argv) == argv


def test_serve_takes_config_files_in_order_and_roles_repeated_or_comma_separated() -> None:
    argv = ["serve", "--config", "prod.toml", "--config", "node7.toml", "--role", "ingest,query"]
    args = build_parser().parse_args([*argv, "--role", "web"])
    assert [str(p) for p in args.config] == ["prod.toml", "node7.toml"]
    assert args.roles_list == ["ingest,query", "web"]
