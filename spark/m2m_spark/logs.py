"""The job's logging, as --log-format and --log-level say: the same text or JSON lines as the native
daemons (docs/configuration.md, "Logging"): one object a line with time (UTC, ISO 8601), level,
message and the process's fields."""
import datetime
import json
import logging

# The level names of --log-level (the native daemons') as Python's levels, and the names JSON lines
# give them (spdlog's, as the native daemons' lines).
LEVELS = {"trace": logging.DEBUG - 5, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR, "off": logging.CRITICAL + 10}
NAMES = {logging.DEBUG - 5: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
         logging.ERROR: "error", logging.CRITICAL: "critical"}


class JsonFormatter(logging.Formatter):
    def __init__(self, fields):
        super().__init__()
        self.fields = fields

    def format(self, record):
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        time = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        return json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                           "level": NAMES.get(record.levelno, record.levelname.lower()), "message": message,
                           "logger": record.name, **self.fields}, ensure_ascii=False)


def configure(log_format, level, fields):
    """Sets up the root logger; JSON lines carry `fields` (a dict) after time, level and message."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(fields))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=LEVELS[level], handlers=[handler], force=True)
