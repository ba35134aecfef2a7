"""The `metabot` command: a thin argparse front end over the Python API.

Every command lives in its own module under metabot/commands/ and exposes
`add_arguments(parser)` and `run(args) -> int`. Command modules import heavy
dependencies (torch, mujoco) inside `run`, so that robot-side commands such as
`deploy` and `inspect` never load them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from metabot import __version__
from metabot.errors import MetabotError

# (command words, module, one-line help). Nested words become nested subcommands.
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("tasks", "list"), "metabot.commands.tasks_list", "list the task distributions"),
    (("tasks", "sample"), "metabot.commands.tasks_sample", "sample tasks as JSON"),
    (("train",), "metabot.commands.train", "meta-train an agent"),
    (("eval",), "metabot.commands.evaluate", "measure the adaptation curve S(k) of a run"),
    (("export",), "metabot.commands.export", "export a trained run to one ONNX artifact"),
    (("inspect",), "metabot.commands.inspect", "print and verify an ONNX artifact's metadata"),
    (("mock-robot",), "metabot.commands.mock_robot", "run the MuJoCo-backed mock robot"),
    (("replay",), "metabot.commands.replay", "replay or summarize a control-loop cycle log"),
    (("deploy",), "metabot.commands.deploy", "run and adapt an agent on a robot"),
    (("demo",), "metabot.commands.demo", "the end-to-end demo on the mock robot"),
    (("bench", "sim"), "metabot.commands.bench_sim", "vectorized env throughput"),
    (("bench", "link"), "metabot.commands.bench_link", "wire codec and control-loop timing"),
    (("bench", "infer"), "metabot.commands.bench_infer", "artifact inference latency"),
    (("bench", "mock-physics"), "metabot.commands.bench_mock_physics",
     "S(k) of the demo's agents on the mock robot's physics, many goals, no link"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metabot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"metabot {__version__}")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND")
    }
    for words, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = sub.add_subparsers(dest=f"cmd{depth}", metavar="COMMAND")
        sub_parser = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        return int(run(args) or 0)
    except MetabotError as exc:
        print(f"metabot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("metabot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
