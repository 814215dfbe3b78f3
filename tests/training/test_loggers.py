"""The wandb factory's network check: a dead server is named quickly, a live one (any HTTP answer) is not."""

from __future__ import annotations

import http.server
import socket
import threading
import time

from rsn_lightning.training.loggers import wandb_server_unreachable


def test_a_closed_port_is_unreachable_at_once(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    reason = wandb_server_unreachable(5.0)
    assert reason and f"127.0.0.1:{port}" in reason
    assert time.monotonic() - started < 5.0


def test_a_server_that_answers_even_with_an_error_is_reachable(monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
        assert wandb_server_unreachable(5.0) is None
    finally:
        server.shutdown()
        server.server_close()
