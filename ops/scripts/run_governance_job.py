#!/usr/bin/env python3
"""Run one governance job through the router: POST /v1/tools/execute as the scheduler account.

Cron runs this with the system ``python3`` and no virtualenv, so it uses the standard library
only. It prints one timestamped summary line (stdout) — job, tool.action, status, duration and
the result's counts — so an hourly job adds ~200 bytes to its cron log, not the whole result;
``--verbose`` (and ``--dry-run``, which people run to see a plan) prints the result JSON after
it. Failures print the
runbook's texts (RUNBOOK §9, Troubleshooting) on stderr and exit with a code per kind of failure,
so a log line and an exit status both say what to fix. Jobs are idempotent, so connection errors
and 5xx answers are retried a few times with backoff (honouring Retry-After within a cap).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

EXECUTE_PATH = "/v1/tools/execute"
DEFAULT_ROUTER_URL = "http://localhost:8000"
KEY_ENV = "SCHEDULER_API_KEY"
ROUTER_URL_ENV = "ROUTER_URL"
USER_AGENT = "run_governance_job/1"

EXIT_OK = 0
EXIT_UNEXPECTED = 1  # an answer the runner cannot read (not JSON, unexpected status)
EXIT_USAGE = 2  # bad arguments, including --params-json that is not a JSON object
EXIT_UNREACHABLE = 3  # Cannot reach <url>: connection failed (after retries) or no answer in --timeout
EXIT_UNAUTHORIZED = 4  # HTTP 401: SCHEDULER_API_KEY missing or not accepted
EXIT_FORBIDDEN = 5  # HTTP 403: the key's account lacks the job's entitlement
EXIT_TOOL_ERROR = 6  # the tool refused the job (4xx with "error"), or a bad ROUTER_URL / SCHEDULER_API_KEY value
EXIT_SERVER_ERROR = 7  # HTTP 5xx still failing after the retries

EXIT_CODES_HELP = """\
exit codes:
  0  success (the result JSON is printed)
  1  unexpected answer from the router (not JSON, unknown status)
  2  usage error, e.g. --params-json is not a JSON object (nothing was sent)
  3  Cannot reach <router url>: connection failed after the retries, or no answer within --timeout
  4  HTTP 401 from /v1/tools/execute: SCHEDULER_API_KEY is not set or not accepted
  5  HTTP 403 from /v1/tools/execute: the key's account lacks the action's entitlement
  6  error: <text>: the tool refused the job (e.g. "No platform digest found. Run
     architecture_pressure_tool.digest first."); not retried. Also a configuration error:
     ROUTER_URL or SCHEDULER_API_KEY holds a value the runner cannot use (nothing was sent)
  7  HTTP 5xx from /v1/tools/execute after the retries

environment:
  ROUTER_URL          router base URL when --router-url is not given (default http://localhost:8000)
  SCHEDULER_API_KEY   the scheduler service account's key, sent as "Authorization: Bearer <key>"
"""


class Failure(Exception):
    """A failure with its exit code and the lines to print (the first is the runbook's text)."""

    def __init__(self, code: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.code = code
        self.lines = lines


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run_governance_job.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run one governance job: POST {tool, action, ...params} to the router's /v1/tools/execute.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--tool", required=True, help="e.g. backlog_tool")
    parser.add_argument("--action", required=True, help="e.g. auto_generate_weekly")
    parser.add_argument("--params-json", default="{}", help="the action's params as a JSON object (default {})")
    parser.add_argument("--dry-run", action="store_true", help='send "dry_run": true: print the plan, change nothing')
    parser.add_argument("--router-url", default=None, help=f"default $ROUTER_URL, else {DEFAULT_ROUTER_URL}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer (default 120)")
    parser.add_argument("--job", default=None,
                        help="the registry's job name: shown in the log line, and sent so the router records "
                             "the run (its last success appears in /metrics)")
    parser.add_argument("--retries", type=int, default=3, help="retries after a connection error or 5xx (default 3)")
    parser.add_argument("--retry-backoff", type=float, default=2.0,
                        help="first retry delay in seconds, doubled each retry, with jitter (default 2)")
    parser.add_argument("--retry-max-wait", type=float, default=60.0,
                        help="cap in seconds on one retry delay, including Retry-After (default 60)")
    parser.add_argument("--verbose", action="store_true",
                        help="also print the whole result JSON (default: the summary line only; --dry-run "
                             "prints it too)")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.retries < 0 or args.retry_backoff < 0 or args.retry_max_wait < 0:
        parser.error("--timeout must be > 0; --retries, --retry-backoff and --retry-max-wait must be >= 0")
    return args


def build_body(tool: str, action: str, params_json: str, dry_run: bool, job: str | None = None) -> dict[str, Any]:
    """The request body, or a usage Failure before anything is sent."""
    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as exc:
        raise Failure(EXIT_USAGE, f"error: --params-json is not valid JSON: {exc}",
                      "  e.g. --params-json '{\"env\":\"prod\"}'") from None
    if not isinstance(params, dict):
        raise Failure(EXIT_USAGE, f"error: --params-json must be a JSON object, got {type(params).__name__}",
                      "  e.g. --params-json '{\"env\":\"prod\"}'")
    clash = sorted({"tool", "action", "job"} & set(params))
    if clash:
        raise Failure(EXIT_USAGE, f"error: --params-json may not set {', '.join(clash)}; use --tool/--action/--job")
    body: dict[str, Any] = {"tool": tool, "action": action, **params}
    if dry_run:
        body["dry_run"] = True
    if job:
        body["job"] = job  # the router records the run under the job's slot (last success in /metrics)
    return body


def router_base(option: str | None) -> str:
    from_env = not option and bool(os.environ.get(ROUTER_URL_ENV, "").strip())
    url = (option or os.environ.get(ROUTER_URL_ENV, "").strip() or DEFAULT_ROUTER_URL).strip().rstrip("/")
    try:
        parts = urllib.parse.urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, a bad IPv6 literal
        valid = False
    if valid:
        return url
    if from_env:  # the environment (the cron header), not the command line: a configuration error
        raise Failure(EXIT_TOOL_ERROR, f"error: {ROUTER_URL_ENV}={url[:80]!r}: not a router URL; accepted: "
                                       "http(s)://host[:port][/prefix], e.g. http://localhost:8000")
    raise Failure(EXIT_USAGE, f"error: router URL must be http(s)://host[:port], got {url!r}")


def scheduler_key() -> str | None:
    """``SCHEDULER_API_KEY``, refused (never printed) when it could not travel in a header."""
    key = os.environ.get(KEY_ENV, "").strip() or None
    if key is not None and not all("!" <= ch <= "~" for ch in key):
        raise Failure(EXIT_TOOL_ERROR, f"error: {KEY_ENV}: contains spaces, control or non-ASCII characters "
                                       "(value not shown); accepted: the scheduler account's key, printable "
                                       "ASCII without spaces, as the router's account holds it")
    return key


def retry_delay(attempt: int, backoff: float, cap: float, retry_after: str | None) -> float:
    """Retry-After (seconds) when the router sent one, else exponential backoff with jitter; capped."""
    if retry_after is not None and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), cap)
    return float(min(backoff * (2 ** attempt) * (0.5 + random.random() / 2), cap))


def error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode("utf-8", "replace").strip()[:500] or "(empty body)"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])
    return json.dumps(data)[:500]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET; report it instead (fix ROUTER_URL)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def post_once(url: str, body: bytes, key: str | None, timeout: float) -> tuple[int, bytes, str | None]:
    """One POST; returns (status, body, Retry-After). Raises OSError/URLError when unreachable."""
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return int(response.status), response.read(), response.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        with exc:
            if 300 <= exc.code < 400:
                location = exc.headers.get("Location", "?")
                return int(exc.code), json.dumps({"error": f"redirected to {location}; set ROUTER_URL to the "
                                                           "final URL"}).encode(), None
            return int(exc.code), exc.read(), exc.headers.get("Retry-After")


def execute(args: argparse.Namespace, *, post: Callable[..., tuple[int, bytes, str | None]] = post_once,
            sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] | None = None) -> Any:
    """Send the job, retrying what is safe to retry; the router's ``result`` or a Failure."""
    emit = log or (lambda line: print(line, file=sys.stderr, flush=True))
    body = build_body(args.tool, args.action, args.params_json, args.dry_run, args.job)
    base = router_base(args.router_url)
    url = base + EXECUTE_PATH
    key = scheduler_key()
    payload = json.dumps(body).encode("utf-8")
    attempts = args.retries + 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            status, answer, retry_after = post(url, payload, key, args.timeout)
        except TimeoutError:
            raise Failure(EXIT_UNREACHABLE, f"Cannot reach {base}",
                          f"  no answer within --timeout {args.timeout:g}s (not retried: the job may still be "
                          "running; it is idempotent, so re-running later is safe)") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if last:
                raise Failure(EXIT_UNREACHABLE, f"Cannot reach {base}",
                              f"  {reason} ({attempts} attempt(s)); is the router running? "
                              "Check compose, or set ROUTER_URL (the cron header) / --router-url") from None
            delay = retry_delay(attempt, args.retry_backoff, args.retry_max_wait, None)
            emit(f"{timestamp()} retry {attempt + 1}/{args.retries}: cannot reach {base} ({reason}); "
                 f"next attempt in {delay:.1f}s")
            sleep(delay)
            continue
        if status >= 500 and not last:
            delay = retry_delay(attempt, args.retry_backoff, args.retry_max_wait, retry_after)
            emit(f"{timestamp()} retry {attempt + 1}/{args.retries}: HTTP {status} from {EXECUTE_PATH} "
                 f"({error_text(answer)}); next attempt in {delay:.1f}s")
            sleep(delay)
            continue
        return interpret(status, answer, key)
    raise AssertionError("unreachable")  # pragma: no cover


def interpret(status: int, answer: bytes, key: str | None) -> Any:
    if status == 401:
        hint = (f"  hint: {KEY_ENV} is not set; export it (cron: put it in the env file the job sources)"
                if key is None else f"  hint: the router did not accept {KEY_ENV}; check its value and the "
                                    "router's config/rbac.yml (account scheduler)")
        raise Failure(EXIT_UNAUTHORIZED, f"HTTP 401 from {EXECUTE_PATH}", hint)
    if status == 403:
        raise Failure(EXIT_FORBIDDEN, f"HTTP 403 from {EXECUTE_PATH}", f"error: {error_text(answer)}")
    if status >= 500:
        raise Failure(EXIT_SERVER_ERROR, f"HTTP {status} from {EXECUTE_PATH}", f"error: {error_text(answer)}")
    if 400 <= status < 500:
        raise Failure(EXIT_TOOL_ERROR, f"error: {error_text(answer)}", f"  (HTTP {status} from {EXECUTE_PATH})")
    try:
        data = json.loads(answer)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Failure(EXIT_UNEXPECTED, f"error: HTTP {status} from {EXECUTE_PATH} is not JSON",
                      f"  {answer[:200]!r}") from None
    if status != 200 or not isinstance(data, dict) or "result" not in data:
        raise Failure(EXIT_UNEXPECTED, f"error: unexpected answer HTTP {status} from {EXECUTE_PATH}",
                      f"  {json.dumps(data)[:500]}")
    return data["result"]


def result_counts(result: Any) -> str:
    """The result's numbers in one short phrase: ``created=14 updated=0 …, 16 items``.

    Numbers as ``name=value``, flags that are set by name, nested ``counts`` flattened, and lists
    (or maps) by their length in words; texts (paths, reasons) are left to ``--verbose``."""
    if not isinstance(result, dict):
        return ""
    numbers: list[str] = []
    sizes: list[str] = []
    for key, value in result.items():
        if isinstance(value, bool):
            if value and key != "dry_run":
                numbers.append(key)
        elif isinstance(value, int | float):
            numbers.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
        elif key == "counts" and isinstance(value, dict):
            numbers += [f"{k}={v}" for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)]
        elif isinstance(value, list | dict):
            sizes.append(f"{len(value)} {key}")
    return ", ".join(filter(None, [" ".join(numbers), ", ".join(sizes)]))


def describe(args: argparse.Namespace) -> str:
    name = f"job={args.job} " if args.job else ""
    return f"{name}{args.tool}.{args.action}{' (dry run)' if args.dry_run else ''}"


def fail(args: argparse.Namespace | None, failure: Failure, started: float) -> NoReturn:
    if args is not None:
        print(f"{timestamp()} {describe(args)} FAILED exit={failure.code} after {time.monotonic() - started:.2f}s",
              flush=True)
    for line in failure.lines:
        print(line, file=sys.stderr, flush=True)
    sys.exit(failure.code)


def warn_if_not_utc() -> None:
    """Cron fires in the host's local time; the registry's schedules are UTC."""
    offset = time.localtime().tm_gmtoff
    if offset:
        print(f"{timestamp()} warning: host local time is UTC{offset / 3600:+g}h; cron schedules in "
              "ops/cron/jobs.cron are meant as UTC", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    started = time.monotonic()
    args = parse_args(argv)
    try:
        result = execute(args)
    except Failure as failure:
        fail(args, failure, started)
    if args.job:  # under cron (the rendered lines pass --job)
        warn_if_not_utc()
    counts = result_counts(result)
    print(f"{timestamp()} {describe(args)} ok in {time.monotonic() - started:.2f}s via "
          f"{router_base(args.router_url)}{EXECUTE_PATH}{': ' + counts if counts else ''}", flush=True)
    if args.verbose or args.dry_run:  # a dry run is a person asking to see the plan (cron lines never pass it)
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str), flush=True)


if __name__ == "__main__":
    main()
