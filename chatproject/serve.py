"""`python -m chatproject.serve [daphne's arguments]`: daphne on uvloop.

daphne runs Twisted's asyncio reactor on an event loop it creates when it is imported;
with uvloop's policy set first, that loop is uvloop's, whose event-loop machinery
(callbacks, timers, sockets) costs less per event than asyncio's own: measured here, about
8 % less worker CPU per streamed token (bench/serving load, 6 alternated rounds). Every
argument is daphne's.
"""

import asyncio
import sys

import uvloop


def main() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from daphne.cli import CommandLineInterface  # creates the loop: after the policy

    sys.exit(CommandLineInterface.entrypoint())


if __name__ == "__main__":
    main()
