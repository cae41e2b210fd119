#!/usr/bin/env bash
# The project's test command: builds lab and the lab image (once; nothing is rebuilt when it
# exists), then runs the unit tests and the integration tests against the real Docker Engine.
# Integration tests run one at a time: they start whole clusters, and drills measure failover.
#
# Needs: Rust (cargo; see rust-version in Cargo.toml) and a Docker Engine this user can use
# (`docker info` works). Where no container registry answers, the image's Debian base is made
# with debootstrap, which needs root; on Debian or Ubuntu lab installs debootstrap with apt-get.
#
# The tests run with cargo-nextest when it is installed (each test in a process of its own, with
# its time); without it, with `cargo test` on one thread. The script says which. It does not
# install nextest: building it from source costs minutes on a small machine and needs crates.io,
# and `cargo test` runs the same tests. `cargo install --locked cargo-nextest` adds it.
# Extra arguments go to the runner (e.g. a test name filter, which both accept).
#
# Three tests need programs beside Rust and Docker: `lab watch`'s drives its terminal view in
# tmux; the access test logs in to the labs as a trainee does, with OpenSSH's own client (ssh and
# ssh-keygen; passwords go through SSH_ASKPASS, so sshpass is not needed); `lab serve`'s drives
# its web page in headless Chromium through chromedriver (WebDriver); the several-engines test
# connects with psql to a lab on a second engine. Where one is missing, this script installs its
# package with apt-get (Debian or Ubuntu, as root), or stops saying how to get it.
#
# The several-engines test runs a second Docker Engine on this machine (scripts/second-engine.sh:
# needs root; it installs openssh-server for its ssh way in when sshd is missing). The test starts
# it once; this script stops it and removes everything it made when the tests end, however they
# end.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    local command=$1 package=$2 why=$3
    command -v "$command" >/dev/null 2>&1 && return 0
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "test.sh: installing $package ($why)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    else
        echo "test.sh: $command is needed ($why); install $package" \
            "(e.g. sudo apt-get install $package) and run this again" >&2
        exit 1
    fi
}
need tmux tmux "lab watch's test draws its view in it"
need ssh openssh-client "the access test logs in to the labs with it"
need ssh-keygen openssh-client "the access test makes a trainee's key with it"
need chromium chromium "lab serve's test opens its page in headless Chromium"
need chromedriver chromium-driver "lab serve's test drives Chromium through it"
need psql postgresql-client "the several-engines test connects to a lab with it"

cargo build --locked
target/debug/lab image build
# The several-engines test starts a second Docker Engine (scripts/second-engine.sh start, as
# root); it is stopped, and all it made removed, when the tests end however they end.
if [ "$(id -u)" = 0 ]; then
    trap 'scripts/second-engine.sh stop >/dev/null 2>&1 || echo "test.sh: scripts/second-engine.sh stop failed" >&2' EXIT
fi
if cargo nextest --version >/dev/null 2>&1; then
    echo "test.sh: running the tests with cargo-nextest, one at a time"
    cargo nextest run --locked --no-fail-fast --test-threads 1 "$@"
else
    echo "test.sh: cargo-nextest is not installed (\`cargo install --locked cargo-nextest\` adds" \
        "it); running the tests with cargo test, one at a time, instead"
    cargo test --locked --no-fail-fast --lib --bins --tests "$@" -- --test-threads 1
fi
