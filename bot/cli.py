"""``cpn-bot``: serve, sandbox, demo, check-config."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from bot.config import Config, ConfigError, load_config

# How ``serve`` runs uvicorn (the benchmarks' bare baselines run the same way).
SERVER_OPTIONS: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "proxy_headers": True,
    "timeout_graceful_shutdown": 5,
}


def _configured(args: argparse.Namespace) -> Config | None:
    """The configuration of ``--config``, logging set up from it; None (and why, on stderr) if refused."""
    from bot.logs import log_uncaught_errors, setup_logging

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration refused:\n{exc}", file=sys.stderr)
        return None
    setup_logging(config.logging.level, config.logging.json_format)
    log_uncaught_errors()
    return config


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app
    from bot.http_server import server_options
    from bot.runtime import Bot

    config = _configured(args)
    if config is None:
        return 2
    if config.server.workers:
        from bot.worker import ProcessRole, Supervisor, worker_command, worker_roles

        bot = Bot(config, role=ProcessRole.WEB)
        bot.workers = [Supervisor(worker_command(args.config, r), r) for r in worker_roles(config.server.workers)]
    else:
        bot = Bot(config)
    bot.freeze_heap = True
    from bot.logs import uvicorn_log_config

    # uvicorn's own HTTP/1.1 protocol, with slow clients cut off and connections capped; its own
    # lines (startup, invalid requests, an application's error) as JSON too.
    options = server_options(config.server)
    uvicorn.run(
        create_app(bot), host=config.server.host, port=config.server.port, log_config=uvicorn_log_config(), **options
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from bot.worker import ProcessRole, run_worker

    config = _configured(args)
    if config is None:
        return 2
    return asyncio.run(run_worker(config, ProcessRole(args.role), args.parent))


def _check_config(args: argparse.Namespace) -> int:
    from services.health import check_all

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration refused:\n{exc}", file=sys.stderr)
        return 2
    print(f"{args.config}: valid")
    results = asyncio.run(check_all(config))
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


def _sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox.run import run_sandbox

    return run_sandbox(
        user=args.as_user,
        channel=args.channel,
        headless=args.headless,
        state_file=args.state_file,
        language=args.language,
        registry=args.registry,
        data=args.data,
        web=args.web,
        control=args.control,
    )


def _demo(args: argparse.Namespace) -> int:
    from bot.sandbox.demo import run_demo

    return run_demo(language=args.language, control=args.control)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpn-bot", description="ChatOps bot of Cloud π Native")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (production)")
    serve.add_argument("--config", required=True, help="TOML configuration file")
    serve.set_defaults(func=_serve)

    worker = sub.add_parser("worker", help="a worker process (started by serve when server.workers > 0)")
    worker.add_argument("--config", required=True, help="TOML configuration file")
    worker.add_argument("--role", choices=["worker", "events", "posts"], default="worker")
    worker.add_argument("--parent", type=int, help="stop when this process (the web one) is gone")
    worker.set_defaults(func=_worker)

    check = sub.add_parser("check-config", help="validate a configuration and reach every service")
    check.add_argument("--config", required=True)
    check.set_defaults(func=_check_config)

    sandbox = sub.add_parser("sandbox", help="the bot with every platform service emulated locally")
    sandbox.add_argument("--as", dest="as_user", default="alice", help="the user you type as")
    sandbox.add_argument("--channel", default="equipe-alpha", help="the channel you type in")
    sandbox.add_argument("--headless", action="store_true", help="no terminal chat")
    sandbox.add_argument("--state-file", help="with --headless: where to write URLs, tokens and ids")
    sandbox.add_argument("--language", choices=["fr", "en"], default="fr")
    sandbox.add_argument("--registry", choices=["quay", "harbor"], default="quay", help="the emulated registry")
    sandbox.add_argument(
        "--control",
        choices=["direct", "console"],
        default="direct",
        help="who provisions: the bot itself, or the emulated Cloud π Native console (with Harbor)",
    )
    sandbox.add_argument("--data", metavar="DIR", help="keep the sandbox's state in DIR across runs (else temporary)")
    sandbox.add_argument("--web", action="store_true", help="also serve a web view of the chat on loopback")
    sandbox.set_defaults(func=_sandbox)

    demo = sub.add_parser("demo", help="a scripted tour in the sandbox; exit 0 if every step passed")
    demo.add_argument("--language", choices=["fr", "en"], default="fr")
    demo.add_argument("--control", choices=["direct", "console"], default="direct", help="who provisions")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox" and args.headless and not args.state_file:
        print("--headless needs --state-file", file=sys.stderr)
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
