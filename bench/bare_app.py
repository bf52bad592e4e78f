"""The baseline of the get benchmark: a bare Flask endpoint returning the same JSON bytes."""

import os

from flask import Flask, Response

app = Flask(__name__)
with open(os.environ["BENCH_BODY_FILE"], "rb") as f:
    BODY = f.read()


@app.get("/compute/v1/projects/<project>/zones/<zone>/instances/<instance>")
def get(project: str, zone: str, instance: str) -> Response:
    return Response(BODY, content_type="application/json; charset=UTF-8")


@app.get("/oauth2/v3/certs")
def ready() -> Response:
    return Response(b"{}", content_type="application/json")


if __name__ == "__main__":  # on gstack serve's own HTTP server and switch interval (bench.harness.serve_bare)
    import sys

    from gstack.cli import SWITCH_INTERVAL
    from gstack.serving import PooledWSGIServer

    sys.setswitchinterval(SWITCH_INTERVAL)
    PooledWSGIServer("127.0.0.1", int(sys.argv[1]), app).serve_forever()
