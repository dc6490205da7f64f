"""The last resort at the command line's edge: an exception nobody expected (a bug) becomes one line
and exit 1, and its traceback goes to a log file the line names, with every secret we know of hidden.

A user then sees `error: internal error: <type>: <message> (traceback in <file>)` rather than forty
lines of frames; whoever fixes it has the frames. The file is written under $GEXHISTORY_LOG_DIR, else
the user's cache folder ($XDG_CACHE_HOME or ~/.cache, then gexhistory/logs), else the temporary
folder: the first of them that can be written.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import traceback
from pathlib import Path

from gexhistory.config import redact_url

LOG_DIR_ENV = "GEXHISTORY_LOG_DIR"
SECRET_ENV = ("POLYGON_API_KEY", "MASSIVE_API_KEY")
URL_ENV = ("DATABASE_URL",)


def log_dirs() -> list[Path]:
    """Where a crash log may go, in order of preference."""
    out = []
    if os.environ.get(LOG_DIR_ENV):
        out.append(Path(os.environ[LOG_DIR_ENV]).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    out.append(Path(cache) / "gexhistory" / "logs")
    out.append(Path(tempfile.gettempdir()))
    return out


def hide_secrets(text: str, argv: list[str]) -> str:
    """`text` with API keys and database passwords (from the arguments and the environment) hidden."""
    for name in SECRET_ENV:
        key = os.environ.get(name)
        if key and len(key) >= 4:
            text = text.replace(key, "***")
    for url in [a for a in argv if "://" in a] + [os.environ.get(n, "") for n in URL_ENV]:
        if url and redact_url(url) != url:
            text = text.replace(url, redact_url(url))
    return text


def write_log(exc: BaseException, argv: list[str]) -> Path | None:
    """Write the traceback of `exc` (with the command line) to a new log file; None if no folder took it."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    body = hide_secrets("gexhistory " + " ".join(argv) + "\n\n"
                        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), argv)
    for folder in log_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"gexhistory-crash-{stamp}-{os.getpid()}.log"
            path.write_text(body, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def internal_error_line(exc: BaseException, argv: list[str]) -> str:
    """The one line a user sees for an unexpected exception (its log written first)."""
    path = write_log(exc, argv)
    text = str(exc).strip()
    message = hide_secrets(text.splitlines()[0] if text else "", argv)
    where = f"traceback in {path}" if path else "no folder could take the traceback log"
    return f"internal error: {type(exc).__name__}: {message} ({where})" if message else \
        f"internal error: {type(exc).__name__} ({where})"
