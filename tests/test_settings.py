"""Settings layering, conversion errors, and the generated reference staying current."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil import settings


def test_defaults() -> None:
    s = settings.load(environ={})
    assert (s.ingest.graphite_port, s.ingest.statsd_port, s.node.http_port) == (2003, 8125, 8080)
    assert s.node.data_dir == Path("vigil-data")


def test_layers_file_then_environment_then_flags(tmp_path: Path) -> None:
    conf = tmp_path / "vigil.toml"
    conf.write_text("[ingest]\ngraphite_port = 1\nstatsd_port = 2\n[node]\nhttp_port = 3\n")
    s = settings.load(
        [conf],
        environ={"VIGIL_STATSD_PORT": "20", "VIGIL_HTTP_PORT": "30"},
        overrides={"http_port": "300", "bind": None},
    )
    assert (s.ingest.graphite_port, s.ingest.statsd_port, s.node.http_port) == (1, 20, 300)
    assert s.node.bind == "127.0.0.1"


def test_later_config_files_override_earlier_ones_key_by_key(tmp_path: Path) -> None:
    environment = tmp_path / "prod.toml"
    environment.write_text(
        "[bus]\nbus_nats = 'nats://n1:4222'\n[node]\nroles = 'all'\nhttp_port = 80\n"
    )
    node = tmp_path / "node7.toml"
    node.write_text("[node]\nroles = 'ingest'\nnode_name = 'ingest7'\n")
    s = settings.load([environment, node], environ={"VIGIL_HTTP_PORT": "8081"})
    assert (s.bus.bus_nats, s.node.roles, s.node.node_name) == (
        "nats://n1:4222",
        "ingest",
        "ingest7",
    )
    assert s.node.http_port == 8081


def test_a_bad_key_in_a_later_file_names_that_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "prod.toml", tmp_path / "node7.toml"
    good.write_text("[node]\nhttp_port = 80\n")
    bad.write_text("[node]\nhttp_prot = 81\n")
    with pytest.raises(
        settings.SettingsError, match=f"config file {bad}: unknown key node.http_prot"
    ):
        settings.load([good, bad], environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[ingest]\ngraphite_port = 'x'\n", "graphite_port = 'x' is not a valid int"),
        ("[nope]\na = 1\n", "unknown section [nope]"),
        ("[ingest]\nhttp_port = 1\n", "unknown key ingest.http_port"),
        ("[ingest\n", "config file"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(
        settings.SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        settings.load([conf], environ={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(settings.SettingsError, match="environment VIGIL_GRAPHITE_PORT"):
        settings.load(environ={"VIGIL_GRAPHITE_PORT": "two"})


def test_option_names_are_unique_across_sections() -> None:
    names = [o.name for o in settings.options()]
    assert len(names) == len(set(names))


def test_docs_config_md_is_current() -> None:
    doc = Path(__file__).parents[1] / "docs" / "config.md"
    assert doc.read_text() == settings.reference_doc(), "run: vigil config-docs > docs/config.md"
