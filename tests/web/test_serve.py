"""web_demo/serve.py, the local server of `make web-demo` and of the browser test: loopback only, the page's files
and mounted folders, cross-origin isolation headers (the WASM runtimes' threads need them), nothing outside."""

import http.client
import importlib.util

import pytest

from tests.web.web import WEB


@pytest.fixture()
def server(tmp_path):
    spec = importlib.util.spec_from_file_location("web_demo_serve", WEB / "serve.py")
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.tflite").write_bytes(b"model bytes")
    (tmp_path / "secret.txt").write_text("outside")
    srv = serve.make_server(0, {"/models/": tmp_path / "models"})
    serve.serve_in_thread(srv)
    assert srv.server_address[0] == "127.0.0.1"  # loopback only
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def get(port: int, path: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One GET to the test's own server in this process, on the loopback address (no proxy, nothing downloaded)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_serves_the_page_and_mounts_isolated_on_loopback(server):
    status, headers, body = get(server, "/index.html")
    assert status == 200 and b'<script type="module" src="app.js">' in body
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert get(server, "/models/m.tflite")[2] == b"model bytes"
    assert get(server, "/app.js")[1]["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/models/../secret.txt", "/models/%2e%2e/secret.txt", "/models/missing.onnx"])
def test_nothing_outside_a_mount(server, path):
    assert get(server, path)[0] == 404
