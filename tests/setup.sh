# Shared setup of the test scripts (sourced by tests/run.sh, tests/browser/run.sh,
# tests/e2e/run.sh): install what is missing, build what is stale, and nothing twice — each step
# checks first, so a script run on its own and the whole suite do the same work once.
# Expects the repository root as the current directory.

export DEBIAN_FRONTEND=noninteractive
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# A stage: printed, and timed for tests/bench/build-times.sh when it asks (HEADTUNE_TIMES).
step() { echo "== $* =="; [ -z "${HEADTUNE_TIMES:-}" ] || record_step "$*"; }
[ -z "${HEADTUNE_TIMES:-}" ] || source tests/bench/steps.sh

_APT_UPDATED=0
# apt-get install, with one `apt-get update` per script run before the first install.
apt_install() {
  if [ "$_APT_UPDATED" = 0 ]; then apt-get update -qq; _APT_UPDATED=1; fi
  apt-get install -y -qq "$@" >/dev/null
}

# Debian Chromium (ships SwiftShader, so WebGPU works without a GPU).
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    step "installing Debian Chromium"
    apt_install chromium
  fi
}

# The Fashion-MNIST images the training tests and the page fixtures are drawn from.
ensure_fashion_mnist() {
  if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    step "installing Fashion-MNIST (dataset-fashion-mnist)"
    apt_install dataset-fashion-mnist
  fi
}

# `npm ci` in DIR only when node_modules is missing or package-lock.json changed since the last
# install (a copy of the lock file installed with it is the record).
ensure_npm_ci() {
  local dir=$1
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.headtune-installed-lock.json"; then
    step "npm ci ($dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
    cp "$dir/package-lock.json" "$dir/node_modules/.headtune-installed-lock.json"
  fi
}

# www/pkg built from the current sources: kept if current (either flavour), else the fast
# flavour is built (see www/build.sh --if-stale).
ensure_package() {
  step "browser package (www/build.sh --if-stale)"
  bash www/build.sh --if-stale
}

# The native CLI the browser tests compare against (target/debug/headtune); cargo rebuilds it
# only when a source changed, and `cargo test` has usually just built it.
ensure_cli() {
  # Built the way `cargo test` builds it (dev-dependencies take part in feature resolution), so
  # after the native tests this is a no-op; a plain `cargo build` would compile the crate and
  # part of its dependencies a second time under another feature set.
  step "native CLI (cargo test --no-run --test cli: builds target/debug/headtune; nothing to do when current)"
  cargo test --quiet --no-run -p headtune --test cli
}
