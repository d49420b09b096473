"""The one `{{ name }}` renderer behind Kafka's, Cassandra's and nginx's generated configs."""
from __future__ import annotations

from pathlib import Path

import pytest

from reelhouse.ops import cassandra_server, kafka_server
from reelhouse.ops.service import ServiceError
from reelhouse.templates import render_template
from reelhouse.settings import Settings


def test_every_placeholder_is_filled_whatever_its_spacing_and_the_rest_is_kept_byte_for_byte():
    text = "listeners=PLAINTEXT://127.0.0.1:{{ port }}\nlog.dirs={{log_dirs}}\n# {not a placeholder} {{ port }}\n"

    rendered = render_template(text, {"port": "9192", "log_dirs": "/data/kafka", "unused": "x"}, "server.properties")

    assert rendered == "listeners=PLAINTEXT://127.0.0.1:9192\nlog.dirs=/data/kafka\n# {not a placeholder} 9192\n"


def test_an_unfilled_placeholder_is_an_error_naming_it_and_the_template():
    with pytest.raises(ServiceError) as raised:
        render_template("a={{ filled }}\nb={{ forgotten }}\nc={{ also_missing }}\n", {"filled": "1"},
                        Path("/infra/kafka/server.properties"), ServiceError)

    message = str(raised.value)  # the caller's own error type: the supervisor's, here
    assert "/infra/kafka/server.properties" in message
    assert "{{ forgotten }}" in message and "{{ also_missing }}" in message
    assert "{{ filled }}" not in message


def test_values_are_inserted_literally_not_read_as_patterns():
    # A Windows-ish path or a regex replacement escape must come out as written.
    assert render_template("dir={{ d }}", {"d": r"C:\new\1 \g<0>"}, "t") == r"dir=C:\new\1 \g<0>"


@pytest.mark.parametrize("module, names", [
    (kafka_server, ["server.properties"]),
    (cassandra_server, list(cassandra_server.CONFIG_FILES)),
])
def test_the_project_templates_render_with_what_their_service_fills(module, names, tmp_path):
    # The real templates in infra/: none names a value its module forgot, none is left unrendered.
    values = module.config_values(Settings(home=tmp_path))
    for name in names:
        source = module.TEMPLATES / name
        rendered = render_template(source.read_text(), values, source)
        assert "{{" not in rendered, f"{source} still has a placeholder after rendering"


def test_nginx_config_renders_from_its_template_with_the_api_behind_it(tmp_path):
    from reelhouse.ops import nginx_server

    config = nginx_server.render_config(Settings(home=tmp_path, api_port=8123, nginx_port=8124))

    assert "{{" not in config
    assert "127.0.0.1:8123" in config and "127.0.0.1:8124" in config
