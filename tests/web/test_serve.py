"""web_demo/serve.py, the local server of `make web-demo` and of the browser test: loopback only, the page's files
and mounted folders, cross-origin isolation headers (the WASM runtimes' threads need them), nothing outside."""

import importlib.util
import urllib.error
import urllib.request

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
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_serves_the_page_and_mounts_isolated_on_loopback(server):
    assert server.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(server + "/index.html") as page:
        assert b'<script type="module" src="app.js">' in page.read()
        assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    with urllib.request.urlopen(server + "/models/m.tflite") as model:
        assert model.read() == b"model bytes"
    with urllib.request.urlopen(server + "/app.js") as script:
        assert script.headers["Content-Type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/models/../secret.txt", "/models/%2e%2e/secret.txt", "/models/missing.onnx"])
def test_nothing_outside_a_mount(server, path):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server + path)
    assert error.value.code == 404
