"""The small sh program that every remote command runs inside (see docs/TRANSPORT.md).

It reads the script from stdin (exactly N bytes, checked by an end mark, so a
cut connection can never run half a script), runs it in a session of its own,
and watches the connection meanwhile: stdin stays open after the script, and
the controller sends a heartbeat byte on it now and then. When stdin reaches
EOF (the controller or its connection is gone) or stays silent too long, the
script's process group is ended (``kill``) or, for steps that must not stop
half-way such as a package install, left to finish within a bound
(``finish``). A ``finish`` script finds in ``$GFSDEPLOY_GONE`` a file's name that
exists once the controller is gone: a script of several steps (a batch of changes)
finishes the step in progress and starts no other. The first line it prints is a
token: escalation (sudo/su) worked and the script may be sent.

POSIX sh only (dash, bash, busybox ash), plus ``head -c``, ``setsid``,
``timeout`` and ``dd`` (coreutils/util-linux or busybox).
"""

from __future__ import annotations

import shlex

#: exit code of the wrapper when the script arrived incomplete (nothing ran)
INCOMPLETE = 97


def end_mark(token: str) -> str:
    return f": {token}-END"


def frame_script(script: str, token: str) -> bytes:
    """The bytes sent after the token line: the script and its end mark."""
    body = script if script.endswith("\n") else script + "\n"
    return (body + end_mark(token) + "\n").encode()


def wrapper(*, token: str, length: int, launcher: str = "sh -s", on_disconnect: str = "kill",
            silence: int = 0, grace: int = 600, split_stderr: bool = False) -> str:
    """The wrapper's text (run as ``sh -c WRAPPER``).

    ``silence``: seconds without a heartbeat after which the controller counts as
    gone (0: only EOF). ``grace``: how long a ``finish`` script may still run once
    the controller is gone. ``split_stderr``: the script's stderr goes to a temp
    file printed after ``\\n<token> E\\n`` (a pty has one output stream only).
    """
    if on_disconnect not in ("kill", "finish"):
        raise ValueError(f"on_disconnect must be kill or finish, not {on_disconnect!r}")
    q = shlex.quote
    if silence > 0:
        # one heartbeat line read per loop: grep -q exits 0 on a line, 1 at EOF (the controller
        # is gone), 124 through timeout after `silence` s of nothing (the link is gone);
        # --foreground keeps it in the terminal's foreground group (a pty would stop it: SIGTTIN)
        listen = f"while timeout --foreground {int(silence)} grep -q ''; do :; done"
    else:
        listen = "cat >/dev/null 2>&1"
    if on_disconnect == "kill":
        react = 'kill -s TERM -- "-$p" 2>/dev/null && { sleep 3; kill -s KILL -- "-$p" 2>/dev/null; }'
    else:
        # the bound on a script left to finish; ended with the watchdog when the script is done.
        # First the "gone" mark: the script starts nothing new (see GFSDEPLOY_GONE above)
        react = (f'( set -C; :>"$g" ) 2>/dev/null; '
                 f'sleep {int(grace)} & z=$!; trap \'kill "$z" 2>/dev/null; exit 0\' TERM; wait "$z"; '
                 f'kill -s TERM -- "-$p" 2>/dev/null')
    # a closing pty sends SIGHUP to its session: the watchdog must outlive it to react
    watch = f"trap '' HUP; {listen}; {react}"
    lines = [
        f"t={q(token)}",
        "exec 3<&0",
        'echo "$t"',
        f"s=$(head -c {int(length)} <&3)",
        f'case $s in *{q(end_mark(token))}) ;; *) echo "gfsdeploy: the script arrived incomplete; '
        f'nothing was run" >&2; exit {INCOMPLETE};; esac',
        # the mark is not part of the script (its `:` would become the exit status)
        f"s=${{s%{q(end_mark(token))}}}",
    ]
    redirect = ""
    files = []
    if on_disconnect == "finish":
        # the script's output goes to files, not the connection: once the controller is gone
        # a write cannot kill it (SIGPIPE), and the terminal's hangup is ignored: it completes
        lines.append("trap '' HUP")
        files = ["o", "e"]
        redirect = ' >|"$o" 2>|"$e"'
    elif split_stderr:
        files = ["e"]
        redirect = ' 2>|"$e"'
    if files:
        # private temp files made with shell builtins (no mktemp process): in a subshell, so the
        # script keeps the login's umask, with umask 077 and noclobber (`:>` is then an exclusive
        # create, O_EXCL: nothing planted at that name is ever used)
        for name in files:
            lines.append(f'{name}="${{TMPDIR:-/tmp}}/.gfsdeploy-$t.{name}"')
        lines.append("(umask 077; set -C; " + "; ".join(f':>"${n}"' for n in files) +
                     f") 2>/dev/null || exit {INCOMPLETE}")
    run = "setsid sh -s" if launcher == "sh -s" else f"setsid sh -c {q(launcher)}"
    if on_disconnect == "finish":
        # a name only: the file is made when the controller is gone (the token is random;
        # one already there would only end a batch early: its members then run one by one)
        lines.append('g="${TMPDIR:-/tmp}/.gfsdeploy-$t.g"')
        run = f'GFSDEPLOY_GONE="$g" {run}'
        files = [*files, "g"]
    # the script reaches its shell through a here-document: "$s" is expanded once, never re-scanned
    lines += [
        f"{run} 3<&-{redirect} <<{q(token)} &",
        '$s',
        token,
        "p=$!; s=",
        # the watchdog (a subshell: killing it on success leaves its reader to end at EOF)
        f"( {watch} ) <&3 >/dev/null 2>&1 &",
        "w=$!",
        "exec 3<&-",
        'wait "$p"; r=$?',
        'kill -s TERM "$w" 2>/dev/null',
    ]
    if on_disconnect == "finish" and split_stderr:
        lines.append('cat "$o"; printf \'\\n%s E\\n\' "$t"; cat "$e"')
    elif on_disconnect == "finish":
        lines.append('cat "$o"; cat "$e" >&2')
    elif split_stderr:
        lines.append('printf \'\\n%s E\\n\' "$t"; cat "$e"')
    if files:
        lines.append("rm -f " + " ".join(f'"${n}"' for n in files))
    lines.append('exit "$r"')
    return "\n".join(lines)
