#!/usr/bin/env bash
# tests/arm64/run-suite.sh SUITE WHEEL [PYTEST ARGS]: every test that needs no TensorFlow, run inside the
# Debian arm64 root of SUITE (bookworm, trixie) against WHEEL installed there (`make test-arm64`).
#
# The tests, their golden files and the benchmark scripts some of them read are copied beside the
# root's venv; the package under test is the installed wheel, never the checkout. Tests that need
# TensorFlow skip themselves (conftest.py). The emulated core is a Raspberry Pi 5's (root.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=${1:?usage: run-suite.sh SUITE WHEEL [PYTEST ARGS]}
wheel=$(readlink -f "${2:?usage: run-suite.sh SUITE WHEEL [PYTEST ARGS]}")
shift 2
work=$(mktemp -d /var/tmp/fmnist-edge-arm64.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$repo/tests" "$repo/benchmarks" "$repo/pyproject.toml" "$work/"
binds=(--bind "$work")
photos=${FMNIST_EDGE_PHOTOS:-$repo/../shared/real-photos}
if [ -f "$photos/labels.csv" ]; then
  photos=$(readlink -f "$photos")
  binds+=(--bind "$photos")
  export FMNIST_EDGE_PHOTOS=$photos
fi
# The MQTT test needs a broker and the [mqtt] extra inside the root too.
export ARM64_SUITE=$suite
export ARM64_DEBS=${ARM64_DEBS:-python3 python3-venv dataset-fashion-mnist mosquitto}
export ARM64_EXTRA_REQS=${ARM64_EXTRA_REQS:-pytest>=8,<10 paho-mqtt>=2.1,<3}
exec "$here/root.sh" all "$wheel" "${binds[@]}" --cwd "$work" -- \
  python -m pytest -p no:cacheprovider -ra --durations=15 "$@" tests
