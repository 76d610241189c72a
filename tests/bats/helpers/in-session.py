#!/usr/bin/env python3
"""Runs a command in a session of its own, as sshd runs a forced command.

usage: in-session.py ID_FILE COMMAND [ARG...]

The command becomes the leader of a new session and process group (no controlling
terminal), with the default action for SIGINT, SIGQUIT and SIGPIPE: a background job of a
script starts with SIGINT and SIGQUIT ignored, and Python ignores SIGPIPE, which the command
would inherit. ID_FILE gets the session's id (the command's pid, and its process group's id)
before the command starts, written whole (a rename).
"""

import os
import signal
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: in-session.py ID_FILE COMMAND [ARG...]")
    id_file, command = sys.argv[1], sys.argv[2:]
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(number, signal.SIG_DFL)
    os.setsid()
    with open(id_file + ".tmp", "w") as out:
        out.write(f"{os.getpid()}\n")
    os.rename(id_file + ".tmp", id_file)
    os.execvp(command[0], command)


main()
