#!/usr/bin/env bash
# The project's test command: builds lab and the lab image (once; nothing is rebuilt when it
# exists), then runs the unit tests and the integration tests against the real Docker Engine.
# Integration tests run one at a time: they start whole clusters, and drills measure failover.
# Extra arguments go to cargo nextest (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked
target/debug/lab image build
cargo nextest run --locked --no-fail-fast --test-threads 1 "$@"
