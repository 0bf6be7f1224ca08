"""Log records a log store can select by run: records about a run carry its ids as fields
(`run_id`, and `thread_id` where known), not only in their text; and `LOG_FORMAT=json`
writes every record as one JSON object per line (`JsonFormatter`), with those fields.

The plain format (the default) is unchanged: the ids are in the messages' text as before.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

# The attributes every LogRecord has: anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def run_fields(run_id: str, thread_id: str | None = None) -> dict[str, str]:
    """`extra=` for a log call about a run."""
    return {"run_id": run_id} if thread_id is None else {"run_id": run_id, "thread_id": thread_id}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the record's `extra`
    fields (`run_id`, `thread_id`, ...), and the traceback if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)
