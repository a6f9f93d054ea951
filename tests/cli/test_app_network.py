"""``cxr-explorer app`` bound to every address (the container's command, a department server) makes no request off
the machine at start: Streamlit's welcome message, which looks up the external IP on the internet when the address
is 0.0.0.0 and the server headless, is off."""

from __future__ import annotations

import argparse

from cxr_explorer.commands.app import streamlit_command


def test_binding_every_address_does_not_look_up_the_external_ip(monkeypatch) -> None:
    from streamlit import config
    from streamlit.web import bootstrap

    calls: list[str] = []

    def external_ip() -> None:
        calls.append("external")

    monkeypatch.setattr("streamlit.net_util.get_external_ip", external_ip)
    cmd = streamlit_command(argparse.Namespace(host="0.0.0.0", port=8501, max_upload_mb=50))
    flags = {cmd[i][2:]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    for option in ("server.address", "server.headless", "logger.hideWelcomeMessage"):
        monkeypatch.setattr(config, "_config_options", config._config_options)
        config.set_option(option, flags[option] if option == "server.address" else flags[option] == "true",
                          "command-line argument or environment variable")
    try:
        bootstrap._print_url(False)
    finally:
        config._config_options = None
    assert calls == []
