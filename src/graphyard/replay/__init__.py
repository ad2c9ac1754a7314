"""Replay: record every model and tool call, re-run any checkpoint at zero model cost, diff.

- :class:`RecordingHandler` / :func:`recording_handlers` record a run's calls beside its
  checkpoints (:func:`recording_store`);
- :func:`replay` / :func:`replay_events` re-run a thread from a checkpoint with the recorded
  model outputs (or live), onto a new branch or a new thread, and diff the final state;
- :func:`replay_answers` / :func:`recorded_answer_cache_hit` tell a cost ledger and an
  answer cache what the running replay does, so a replay spends nothing and follows its
  recording;
- :func:`thread_history` lists a thread's checkpoints with step, node, tier, cost and time.
"""

from graphyard.replay._diff import diff_requests, diff_states, message_lines
from graphyard.replay._history import HistoryRow, thread_history
from graphyard.replay._record import (
    RecordingHandler,
    canonical_request,
    fingerprint,
    recording_handlers,
)
from graphyard.replay._replay import (
    Divergence,
    ModelCallForbidden,
    ReplayCache,
    ReplayDivergence,
    ReplayGuard,
    ReplayResult,
    ReplaySession,
    find_lineage,
    recorded_answer_cache_hit,
    replay,
    replay_answers,
    replay_events,
)
from graphyard.replay._store import Recording, RecordingStore, recording_store

__all__ = [
    "Divergence",
    "HistoryRow",
    "ModelCallForbidden",
    "Recording",
    "RecordingHandler",
    "RecordingStore",
    "ReplayCache",
    "ReplayDivergence",
    "ReplayGuard",
    "ReplayResult",
    "ReplaySession",
    "canonical_request",
    "diff_requests",
    "diff_states",
    "find_lineage",
    "fingerprint",
    "message_lines",
    "recorded_answer_cache_hit",
    "recording_handlers",
    "recording_store",
    "replay",
    "replay_answers",
    "replay_events",
    "thread_history",
]
