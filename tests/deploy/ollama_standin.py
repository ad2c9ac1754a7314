"""A stand-in for an Ollama server, run as its own process by the deploy tests.

``python ollama_standin.py PORT LOG`` serves on 127.0.0.1:PORT:

- ``POST /api/chat``: Ollama's native API, streaming NDJSON chunks like Ollama does (one
  ``message.content`` piece per line, then a ``done`` line with token counts);
- ``POST /v1/chat/completions``: the OpenAI-compatible endpoint Ollama also serves,
  streaming SSE chunks and a usage chunk;
- ``GET /api/tags``: one model.

Every request is appended to LOG as a JSON line (path, peer address, model), so a test can
tell which server a tier reached and how. It prints ``ready`` once it listens.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ANSWER = ["Hello", "!", " How", " can", " I", " help", "?"]


class Handler(BaseHTTPRequestHandler):
    log_path: Path

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self, body: dict[str, Any]) -> None:
        entry = {"path": self.path, "peer": list(self.client_address), "model": body.get("model")}
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def do_GET(self) -> None:
        self._record({})
        if self.path == "/api/tags":
            self._json({"models": [{"name": "qwen3:8b", "model": "qwen3:8b"}]})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        body = self._body()
        self._record(body)
        if self.path == "/api/chat":
            self._ollama_chat(body)
        elif self.path == "/v1/chat/completions":
            self._openai_chat(body)
        else:
            self.send_error(404)

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _ollama_chat(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.end_headers()  # HTTP/1.0: the body ends when the connection closes
        model = body.get("model", "qwen3:8b")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for piece in ANSWER:
            line = {
                "model": model,
                "created_at": now,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
            self.wfile.write(json.dumps(line).encode() + b"\n")
            self.wfile.flush()
        last = {
            "model": model,
            "created_at": now,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000,
            "prompt_eval_count": 42,
            "eval_count": len(ANSWER),
        }
        self.wfile.write(json.dumps(last).encode() + b"\n")

    def _openai_chat(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body.get("model", "qwen3:8b")
        for i, piece in enumerate(ANSWER):
            delta = {"content": piece, **({"role": "assistant"} if i == 0 else {})}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        stop = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(stop)}\n\n".encode())
        usage = {"prompt_tokens": 42, "completion_tokens": len(ANSWER), "total_tokens": 49}
        self.wfile.write(
            f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        )
        self.wfile.write(b"data: [DONE]\n\n")


def main() -> None:
    port, log = int(sys.argv[1]), Path(sys.argv[2])
    Handler.log_path = log
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
