#!/usr/bin/env bash
# Install the peers that bench/graphite_ingest.py compares Vigil against.
#
#   - Graphite carbon-cache 1.1.10 + whisper 1.1.10 into their own venv at
#     bench/.peers/venv (carbon pins old dependencies; keep them out of
#     Vigil's venv).
#   - VictoriaMetrics from Debian (`victoria-metrics`, 1.79 on bookworm).
#
# Idempotent: a second run checks what is there and installs nothing.
# Needs root for apt (or sudo); skip apt with SKIP_APT=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="$here/.peers"
venv="$peers/venv"
python="${PYTHON:-python3}"

carbon_ok() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m
assert m.version("carbon") == "1.1.10"
assert m.version("whisper") == "1.1.10"
EOF
}

if carbon_ok; then
    echo "carbon 1.1.10 + whisper 1.1.10: already in $venv"
else
    echo "installing carbon 1.1.10 + whisper 1.1.10 into $venv"
    mkdir -p "$peers"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    # carbon's setup.py installs into <prefix>/lib by default unless told to
    # behave like a normal package; GRAPHITE_NO_PREFIX does that.
    GRAPHITE_NO_PREFIX=True "$venv/bin/pip" install --quiet \
        --no-binary=carbon carbon==1.1.10 whisper==1.1.10
    carbon_ok || { echo "carbon install did not verify" >&2; exit 1; }
fi

if command -v victoria-metrics >/dev/null 2>&1; then
    echo "victoria-metrics: already installed ($(command -v victoria-metrics))"
elif [ "${SKIP_APT:-0}" = 1 ]; then
    echo "victoria-metrics: missing, SKIP_APT=1 so not installing" >&2
else
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing victoria-metrics from Debian"
    # Only refresh the package lists when they do not know the package yet.
    if ! apt-cache show victoria-metrics >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends victoria-metrics
fi

echo "peers ready:"
echo "  carbon-cache: $venv/bin/carbon-cache.py"
echo "  victoria-metrics: $(command -v victoria-metrics || echo MISSING)"
