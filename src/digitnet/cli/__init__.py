"""The ``digitnet`` command: ``main(argv) -> int``, one module per verb.

Each verb module has ``add_parser(sub, fmt)``, which declares its arguments,
and ``run(args) -> int``, which does the work. User errors (bad files, bad
flags, bad shapes) print one line on stderr and exit with status 2;
``--traceback`` shows the full trace instead.
"""

from __future__ import annotations

import argparse
import signal
import sys

from .. import __version__
from ..errors import DigitnetError
from ..nn.threads import inference_threads
from . import evaluate, export, finetune, import_pickle, info, predict, report, serve, sweep, train

EXIT_USAGE = 2
VERBS = (train, evaluate, predict, finetune, export, report, info, import_pickle, serve, sweep)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every error takes the same path."""

    def error(self, message):
        # main() prints the one "digitnet: error:" prefix; here only the verb, if any, leads the message
        verb = self.prog.removeprefix("digitnet").strip()
        if message.startswith("argument COMMAND: invalid choice:"):
            message = "unknown command" + message.removeprefix("argument COMMAND: invalid choice:")
        raise DigitnetError(f"{verb}: {message}" if verb else message)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except 'None' (options whose help text says what happens without them)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="digitnet",
        formatter_class=_HelpFormatter,
        description="Handwritten-digit recognition with from-scratch NumPy networks.",
    )
    p.add_argument("--version", action="version", version=f"digitnet {__version__}")
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for verb in VERBS:
        verb.add_parser(sub, _HelpFormatter)
    return p


def _refuse_extra(verb: str, extra: list[str]) -> None:
    """Name what argparse could not place: an unknown option, or an argument too many."""
    options = [e.split("=")[0] for e in extra if e.startswith("-") and e != "-"]
    if options:
        raise DigitnetError(f"{verb}: unknown option {options[0]} (see digitnet {verb} --help)")
    raise DigitnetError(f"{verb}: unexpected argument {extra[0]!r} (see digitnet {verb} --help)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_trace = "--traceback" in argv
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            _refuse_extra(args.command, extra)
        args.argv = [a for a in argv if a != "--traceback"]
        if args.command in ("train", "sweep"):  # fit() sets its own threads (--threads)
            return args.func(args)
        with inference_threads():
            return args.func(args)
    except DigitnetError as exc:
        if show_trace:
            raise
        print(f"digitnet: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("digitnet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def console() -> None:
    """The ``digitnet`` executable: ``main()``, then exit with its status.

    Once the work is done, Ctrl-C is ignored: the interpreter's shutdown
    (imported libraries unloading) restores the default SIGINT action, and a
    Ctrl-C landing there would kill a finished, successful process with a
    signal instead of its exit status.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C after main() returned, before the finally clause
        print("digitnet: interrupted", file=sys.stderr)
        code = 130
    finally:  # also after SystemExit (--help, --version)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
