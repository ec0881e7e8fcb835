#!/bin/sh
# Install the system packages the test suites need (Debian/Ubuntu), only when missing:
#   chromium + chromium-driver  the web dashboard in a real headless browser (tests/web)
#   prometheus                  promtool, to check and unit-test ops/alerts/backlog.rules.yml
#   redmine redmine-sqlite      a real Redmine 5 for the tracker adapter tests (tests/trackers);
#   ruby-webrick                debconf is preseeded to sqlite3 and to create no database, so the
#                               install is quiet and quick; the tests build their own instance
#   logrotate                   logrotate -d, to check ops/logrotate/daarion-governance (tests/jobs)
#   npm                         to install axe-core (below)
# and then, with npm, the accessibility engine the browser tests inject into every page:
#   axe-core (AXE_VERSION)      into .test-deps/node_modules/ (git-ignored), only when missing
# or, with the argument `bench`, what the benchmarks need (`make bench` calls it):
#   wrk                         the HTTP load generator of bench/http_bench.py
#   redmine redmine-sqlite      the throwaway Redmine of bench/tracker_bench.py (the tests' harness)
#   ruby-webrick
# or, with the argument `deploy`, what `make deploy-test` needs:
#   podman, runc                containers (runc: crun fails on these machines' cgroup layout)
#   netavark, aardvark-dns      compose networks whose services find each other by name
#   iptables                    netavark sets up those networks with it ("netavark: No such file
#                               or directory" without it)
#   podman-compose              compose.yaml under Podman
#   mmdebstrap                  a Debian base image when none can be pulled
#
# Idempotent and quiet when everything is there (`make test` calls it every time). Without
# root or sudo, or without apt-get, it says what is missing and leaves the decision to the
# tests: they skip with that reason locally and fail under CI=true.
#
# Note: Debian's `prometheus` package also installs the Prometheus server; on a machine with
# systemd it is started as a service (`sudo systemctl disable --now prometheus` if unwanted).
set -eu

need=""
installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}
if [ "${1:-}" = "bench" ]; then
    command -v wrk >/dev/null 2>&1 || need="$need wrk"
    for pkg in redmine redmine-sqlite ruby-webrick; do
        installed "$pkg" || need="$need $pkg"
    done
elif [ "${1:-}" = "deploy" ]; then
    command -v podman >/dev/null 2>&1 || need="$need podman"
    command -v runc >/dev/null 2>&1 || need="$need runc"
    [ -x /usr/lib/podman/netavark ] || need="$need netavark"
    [ -x /usr/lib/podman/aardvark-dns ] || need="$need aardvark-dns"
    command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need="$need iptables"
    command -v podman-compose >/dev/null 2>&1 || need="$need podman-compose"
    command -v mmdebstrap >/dev/null 2>&1 || need="$need mmdebstrap"
else
    [ -x /usr/bin/chromium ] || need="$need chromium"
    [ -x /usr/bin/chromedriver ] || need="$need chromium-driver"
    command -v promtool >/dev/null 2>&1 || need="$need prometheus"
    for pkg in redmine redmine-sqlite ruby-webrick; do
        installed "$pkg" || need="$need $pkg"
    done
    [ -x /usr/sbin/logrotate ] || need="$need logrotate"
    command -v npm >/dev/null 2>&1 || need="$need npm"
fi

# axe-core for tests/web (npm's own registry client; pinned, so every run checks the same rules).
AXE_VERSION=4.14.1
AXE_DIR="$(cd "$(dirname "$0")/../.." && pwd)/.test-deps"
axe() {
    [ -z "${1:-}" ] || return 0
    [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] \
        && grep -q "\"version\": \"$AXE_VERSION\"" "$AXE_DIR/node_modules/axe-core/package.json" && return 0
    echo "install_test_deps: installing axe-core@$AXE_VERSION (npm) into $AXE_DIR"
    mkdir -p "$AXE_DIR"
    if ! npm install --prefix "$AXE_DIR" --no-save --no-audit --no-fund --loglevel=error \
            "axe-core@$AXE_VERSION" >/dev/null; then
        echo "install_test_deps: npm could not install axe-core@$AXE_VERSION" >&2
        if [ "${CI:-}" = "true" ]; then exit 1; fi
    fi
}
if [ -z "$need" ]; then
    axe "${1:-}"
    exit 0
fi

fail() {
    echo "install_test_deps: $1; missing:$need" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine; install them with its package manager"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    fail "not root and no passwordless sudo; run: sudo apt-get install -y$need"
fi

echo "install_test_deps: installing$need"
case "$need" in
    *redmine*)
        # The package's dbconfig-common questions: sqlite3, and no database for its `default`
        # instance (the tests build their own); without this apt asks on a terminal.
        printf '%s\n' \
            'redmine redmine/instances/default/database-type select sqlite3' \
            'redmine redmine/instances/default/dbconfig-install boolean false' \
            | $SUDO debconf-set-selections
        ;;
esac
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # $need is a list of package names
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
command -v npm >/dev/null 2>&1 && axe "${1:-}"
exit 0
