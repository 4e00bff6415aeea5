"""The container's health probe: `python -m <package>.web.probe`. Template-owned.

Exit 0 when GET /health on this machine answers 200, else 1 with one line.
The standard library only: the slim image has no curl, and importing the app
would cost more than the probe. The port is uvicorn's: UVICORN_PORT (8000).
"""

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 4.0


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('UVICORN_PORT', '8000')}/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"unhealthy: {url}: {reason}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
