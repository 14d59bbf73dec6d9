"""`lms`: serve a node, migrate the database, create an admin."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable

import trio

from lms.config import ConfigError, Settings
from lms.observability.logging import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lms", description="LMS streaming server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a node (HTTP, WebSockets, actors)")
    serve.add_argument("--host", help="address to listen on (LMS_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (LMS_PORT, default 8000)")

    commands.add_parser(
        "worker", help="transcode jobs from the shared queue (LMS_TRANSCODE_WORKERS slots), no HTTP"
    )
    commands.add_parser("migrate", help="apply pending database migrations, then exit")

    admin = commands.add_parser("createadmin", help="create an admin (or promote an account)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", required=True)

    transcode = commands.add_parser(
        "transcode", help="transcode a video file here, into OUTDIR (renditions, HLS, poster)"
    )
    transcode.add_argument("input", help="the video file")
    transcode.add_argument("outdir", help="where the outputs go (created if missing)")

    args = parser.parse_args(argv)
    env = dict(os.environ)
    if getattr(args, "host", None):
        env["LMS_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        env["LMS_PORT"] = str(args.port)
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        print(f"lms: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)

    from lms import commands as run  # imported late: the parser answers --help fast

    actions: dict[str, Callable[[], Awaitable[int]]] = {
        "serve": lambda: run.serve(settings),
        "worker": lambda: run.worker(settings),
        "migrate": lambda: run.migrate(settings),
        "createadmin": lambda: run.create_admin(settings, args.email, args.password),
    }
    try:
        if args.command == "transcode":  # plain blocking work in this thread: no event loop
            return run.transcode(args.input, args.outdir)
        return trio.run(actions[args.command])
    except run.CommandFailed as exc:
        print(f"lms {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
