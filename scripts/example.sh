#!/usr/bin/env bash
# Installs vary-build and runs it on the example project: the README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo install --locked --quiet --path .
export PATH="$HOME/.cargo/bin:$PATH"
# Exit code 1 is the expected answer here: the example is unreproducible on purpose.
vary-build --seed 1 -s examples/hello-unrepro -a hello -- make || [ $? = 1 ]
