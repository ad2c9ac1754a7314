"""A writer for the crash loop: runs the reference agent (scripted models) on one thread until
it has answered ``TARGET`` human turns, resuming whatever a crash interrupted.

    python crash_writer.py

runs as a fork server, so each writer is a fresh process without paying for the imports
again: it imports everything, prints ``zygote``, then for each ``run URL THREAD TARGET DIR``
line on stdin forks a writer and prints ``pid <pid>``, and once that writer has ended
``exit <pid> <status>``. The writer prints ``ready`` once open, after every completed invoke
``ack <checkpoint_id> <n>`` (the thread's latest checkpoint and its message count), and
``done`` at the end. A killed writer's lines all come before its ``exit`` line.

Every line goes out in one ``write`` call (``say``): under ``PYTHONUNBUFFERED`` ``print``
writes the text and the newline separately, so a SIGKILL between the two left half a line
that the zygote's ``exit`` line was glued to, and the test waited for an ``exit`` line that
never started a line.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from checkpointer_support import config, scripted_models, settings_for
from langchain_core.messages import HumanMessage

from graphyard import open_runtime


def say(line: str) -> None:
    """Write one whole line with one system call (a pipe write under PIPE_BUF is atomic)."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


async def write(url: str, thread_id: str, target: int, work: Path) -> None:
    settings = settings_for(url, work, durability="sync")
    async with open_runtime(settings, models=scripted_models()) as runtime:
        graph = runtime.graph
        say("ready")
        while True:
            state = await graph.aget_state(config(thread_id))
            # A run a crash cut short: finish it first. `state.next` is not enough: a task
            # whose writes were saved before the kill is done, so it leaves `next` and
            # stays in `tasks` until the run goes on.
            if state.tasks:
                await graph.ainvoke(None, config(thread_id), durability=settings.durability)
            else:
                turns = sum(m.type == "human" for m in state.values.get("messages", []))
                if turns >= target:
                    break
                n = turns + 1
                await graph.ainvoke(
                    {"messages": [HumanMessage(f"turn {n}", id=f"h{n}")]},
                    config(thread_id),
                    durability=settings.durability,
                )
            state = await graph.aget_state(config(thread_id))
            checkpoint_id = state.config["configurable"]["checkpoint_id"]
            say(f"ack {checkpoint_id} {len(state.values['messages'])}")
    say("done")


def serve() -> None:
    say("zygote")
    for line in sys.stdin:
        command, *args = line.split()
        if command != "run":
            continue
        url, thread_id, target, work = args
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                asyncio.run(write(url, thread_id, int(target), Path(work)))
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            os._exit(code)
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {pid} {status}")


if __name__ == "__main__":
    serve()
