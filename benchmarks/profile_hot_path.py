"""Profile one route of the benchmark bot in-process, without gunicorn or sockets.

Calls the WSGI app directly with the same signed body ``bench.py`` sends (a new
``X-Webhook-Id`` per call), first to time it against the hand-written Flask app and the
bare WSGI callable, then under pyinstrument (``pip install pyinstrument``)::

    BOTKIT_DEV=1 .venv/bin/python benchmarks/profile_hot_path.py --route gif-1k --store memory://

The numbers are one thread's cost per request, with nothing else running in the process:
a floor, not what gunicorn serves (bench.py measures that).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench import PREFIX, ROUTES, make_body  # noqa: E402

from botkit.core.config import DEV_API_KEY, DEV_API_SECRET  # noqa: E402
from botkit.testing import signed_headers  # noqa: E402

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def environ_maker(route_name: str) -> Callable[[], dict[str, Any]]:
    route = ROUTES[route_name]
    body = make_body(route)
    headers = signed_headers(body, api_key=DEV_API_KEY, secret=DEV_API_SECRET)
    path, _, query = (PREFIX + route.path).partition("?")
    base = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        # as under gunicorn: handlers run in the request thread (botkit.runtime.deadlines)
        "SERVER_SOFTWARE": "gunicorn/27.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_X_API_KEY": headers["X-Api-Key"],
        "HTTP_X_SIGNATURE": headers["X-Signature"],
        "HTTP_X_WEBHOOK_ATTEMPT": "1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }

    def make() -> dict[str, Any]:
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(body)
        if route.dedup:
            env["HTTP_X_WEBHOOK_ID"] = uuid.uuid4().hex
        return env

    return make


def call(app: WSGIApp, make: Callable[[], dict[str, Any]]) -> bytes:
    status: list[str] = []

    def start_response(s: str, headers: Any, exc_info: Any = None) -> None:
        status.append(s)

    out = b"".join(app(make(), start_response))
    if not status[0].startswith("200"):
        raise SystemExit(f"{status[0]}: {out[:300]!r}")
    return out


def per_request_us(app: WSGIApp, make: Callable[[], dict[str, Any]], n: int) -> tuple[float, float]:
    """Wall-clock and CPU time (all threads of the process) per request, in µs."""
    for _ in range(min(n, 200)):
        call(app, make)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        call(app, make)
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _best(best: dict[str, tuple[float, float]], label: str, sample: tuple[float, float]) -> None:
    old = best.get(label, sample)
    best[label] = (min(old[0], sample[0]), min(old[1], sample[1]))


class InlineExecutor:
    """Runs the handler in the request thread: what dropping the deadline thread saves."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from concurrent.futures import Future

        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _fast_command(data: dict[str, Any]) -> dict[str, Any]:
    """The checks the hand-written app does, in place of the marshmallow schema."""
    message, user = data.get("message"), data.get("user")
    if not isinstance(message, dict) or not isinstance(user, dict) or not user.get("id"):
        from botkit.core.schemas import InvalidPayload

        raise InvalidPayload({"message": ["invalid"]})
    return data


#: Counterfactuals: each takes away one cost of botkit's hot path (in this process only,
#: botkit's files are not changed) so its share can be measured.
EXPERIMENTS = (
    "handler thread",
    "reply validation",
    "schema load",
    "log line",
    "dedup",
    "flask request cycle",
)


class _EnvironHeaders:
    """Case-insensitive header lookup straight from the WSGI environ."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ

    def get(self, key: str, /) -> str | None:
        value: str | None = self.environ.get("HTTP_" + key.upper().replace("-", "_"))
        return value


def bare_webhooks(flask_app: Any) -> WSGIApp:
    """The webhook routes answered from the WSGI environ, Flask only for the rest: what
    a thin WSGI adapter in botkit/web.py would cost instead of Flask's request cycle."""
    from urllib.parse import parse_qsl

    from botkit.core.pipeline import BEFORE_SEND, COMMAND, PUSH

    dispatcher = flask_app.extensions["botkit"]
    prefix = dispatcher.config.url_prefix
    kinds = {
        prefix + "/custom-commands": COMMAND,
        prefix + "/before-message-send": BEFORE_SEND,
        prefix + "/push": PUSH,
    }

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        kind = kinds.get(environ.get("PATH_INFO", ""))
        if kind is None or environ["REQUEST_METHOD"] != "POST":
            return flask_app.wsgi_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        command_type = dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("type")
        response = dispatcher.handle(kind, body, _EnvironHeaders(environ), command_type)
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(response.body)))],
        )
        return [response.body]

    return app


def apply(
    experiment: str, app: Any, make_dedup: list[bool], target: list[Any]
) -> Callable[[], None]:
    """Apply one counterfactual to botkit in this process; return its undo."""
    import logging

    import botkit.core.pipeline as pipeline

    dispatcher = app.extensions["botkit"]
    if experiment == "handler thread":
        runtime = dispatcher.runtime
        old_pool = runtime._pool
        runtime._pool = InlineExecutor()

        def undo() -> None:
            runtime._pool = old_pool

        return undo
    if experiment == "reply validation":
        old = pipeline.validate_reply
        pipeline.validate_reply = lambda message: {}
        return lambda: setattr(pipeline, "validate_reply", old)
    if experiment == "schema load":
        names = ("load_command", "load_before_send", "load_event")
        olds = {n: getattr(pipeline, n) for n in names}
        for n in names:
            setattr(pipeline, n, _fast_command if n != "load_event" else (lambda d: d))

        def undo_load() -> None:
            for n, f in olds.items():
                setattr(pipeline, n, f)

        return undo_load
    if experiment == "log line":
        wlog = logging.getLogger("botkit.webhook")
        wlog.disabled = True
        return lambda: setattr(wlog, "disabled", False)
    if experiment == "dedup":
        make_dedup[0] = False
        return lambda: make_dedup.__setitem__(0, True)
    if experiment == "flask request cycle":
        target[0] = bare_webhooks(app)
        return lambda: target.__setitem__(0, app)
    raise ValueError(experiment)


def experiments(app: Any, route_name: str, n: int, rounds: int) -> None:
    """Per-request time of botkit with each cost taken away, alone and all together."""
    dedup = [True]
    base = environ_maker(route_name)

    def make() -> dict[str, Any]:
        env = base()
        if not dedup[0]:
            env.pop("HTTP_X_WEBHOOK_ID", None)
        return env

    variants: list[tuple[str, tuple[str, ...]]] = [("botkit as is", ())]
    variants += [(f"without {e}", (e,)) for e in EXPERIMENTS]
    variants.append(("without all but Flask's", EXPERIMENTS[:-1]))
    variants.append(("without all of them", EXPERIMENTS))
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for label, exps in variants:
            target = [app]
            undos = [apply(e, app, dedup, target) for e in exps]
            try:
                _best(best, label, per_request_us(target[0], make, n))
            finally:
                for undo in reversed(undos):
                    undo()
    wall0, cpu0 = best["botkit as is"]
    print("botkit with one cost taken away (in this process only):")
    for label, (wall, cpu) in best.items():
        print(
            f"  {label:26} wall {wall:7.1f} us (-{(wall0 - wall) / wall0:5.1%})  "
            f"CPU {cpu:7.1f} us (-{(cpu0 - cpu) / cpu0:5.1%})"
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--route", default="gif-1k", choices=sorted(ROUTES))
    p.add_argument("--store", default="memory://", help="BOTKIT_STORE for botkit")
    p.add_argument("-n", type=int, default=3000, help="requests per timing")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; the best is kept")
    p.add_argument("--html", help="also write pyinstrument's HTML report here")
    p.add_argument("--no-profile", action="store_true", help="timings only")
    p.add_argument(
        "--inline",
        action="store_true",
        help="profile with the handler run in the request thread (pyinstrument sees one thread)",
    )
    p.add_argument(
        "--experiments",
        action="store_true",
        help="also time botkit with each hot-path cost removed",
    )
    args = p.parse_args()

    os.environ["BOTKIT_DEV"] = "1"
    os.environ["BOTKIT_STORE"] = args.store
    os.environ.pop("GIPHY_API_KEY", None)
    import bench_bot
    import flask_baseline
    import wsgi_baseline

    make = environ_maker(args.route)
    apps: dict[str, WSGIApp] = {
        "botkit": bench_bot.app,
        "flask": flask_baseline.app,
        "wsgi": wsgi_baseline.app,
    }
    # alternate, several rounds, keep the best of each (least disturbed by the machine)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name, app in apps.items():
            _best(best, name, per_request_us(app, make, args.n))
    print(f"{args.route}, one thread, best of {args.rounds} rounds of {args.n} requests:")
    for name, (wall, cpu) in best.items():
        print(
            f"  {name:7} wall {wall:7.1f} us/request ({best['flask'][0] / wall:.2f} of flask), "
            f"CPU {cpu:7.1f} us/request ({best['flask'][1] / cpu:.2f} of flask)"
        )

    if args.experiments:
        experiments(bench_bot.app, args.route, args.n, args.rounds)
    if args.no_profile:
        return 0
    from pyinstrument import Profiler

    if args.inline:  # so the profile shows the handler's frames too
        apply("handler thread", bench_bot.app, [True], [bench_bot.app])

    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(args.n):
        call(bench_bot.app, make)
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False))
    if args.html:
        Path(args.html).write_text(profiler.output_html())
    return 0


if __name__ == "__main__":
    sys.exit(main())
