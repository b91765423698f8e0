"""Serve the web demo on 127.0.0.1: `python web_demo/serve.py [--port 8000] [--model FILE ...]`.

The page, its vendored runtimes (vendor/, from `make web-deps`) and the models under web_demo/models/ come from
this folder; --model copies a file there first. Only the loopback address is bound. The responses are
cross-origin isolated (COOP/COEP), which lets the WASM runtimes use threads, as the Python edge runtime does (2).
Tests import `make_server` to serve the page and their own files (tests/web/).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
         ".tflite": "application/octet-stream", ".onnx": "application/octet-stream"}


class Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}
    mounts: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        clean = unquote(path.split("?", 1)[0].split("#", 1)[0])
        for prefix, folder in self.mounts.items():
            if clean.startswith(prefix):
                base = folder.resolve()
                target = (base / clean[len(prefix):]).resolve()
                return str(target) if target == base or base in target.parents else str(base / ".outside-this-folder")
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # quiet: the address is printed once
        pass


def make_server(port: int = 0, mounts: dict[str, Path] | None = None, root: Path = ROOT) -> ThreadingHTTPServer:
    """A server for `root` on 127.0.0.1:port (0: any free port); `mounts` maps URL prefixes ("/models/") to folders."""
    handler = type("MountedHandler", (Handler,), {"mounts": {k: Path(v) for k, v in (mounts or {}).items()}})
    return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(handler, directory=str(root)))


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python web_demo/serve.py", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0: any free one)")
    parser.add_argument("--model", action="append", type=Path, default=[], metavar="FILE",
                        help="a .tflite/.onnx file to copy into web_demo/models/ and open (repeat)")
    args = parser.parse_args(argv)
    if not (ROOT / "vendor" / "litertjs" / "core.js").is_file():
        print("error: web_demo/vendor/ is missing; run `make web-deps` first", file=sys.stderr)
        return 2
    models = ROOT / "models"
    models.mkdir(exist_ok=True)
    for model in args.model:
        if not model.is_file():
            print(f"error: {model}: no such file", file=sys.stderr)
            return 2
        shutil.copy2(model, models / model.name)
    try:
        server = make_server(args.port)
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); pass --port", file=sys.stderr)
        return 2
    address = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"serving web_demo/ at {address}")
    for model in args.model:
        print(f"  {model.name}: {address}?model=models/{model.name}")
    print("Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
