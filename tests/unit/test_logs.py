import io
import json

from twisted.logger import Logger, LogPublisher

from gatekeeper.config import LoggingConfig
from gatekeeper.logs import JsonLinesObserver, log_observer


def _publish(observer: object, level: str, fmt: str, **fields: object) -> None:
    publisher = LogPublisher(observer)  # type: ignore[arg-type]
    getattr(Logger(namespace="gatekeeper.test", observer=publisher), level)(fmt, **fields)


def test_json_line_has_time_level_namespace_message_and_context() -> None:
    out = io.StringIO()
    _publish(JsonLinesObserver(out), "warn", "closing {peer}: {why}", peer="1.2.3.4:5", why="bad\nframe",
             session="01J", principal="svc-orders", listener="default", password="hunter2")
    line, = out.getvalue().splitlines()  # a newline in a value never breaks the line
    record = json.loads(line)
    assert record["level"] == "warn" and record["namespace"] == "gatekeeper.test"
    assert record["message"] == "closing 1.2.3.4:5: bad\nframe"
    assert (record["session"], record["principal"], record["listener"]) == ("01J", "svc-orders", "default")
    assert record["time"].endswith("Z")
    assert "hunter2" not in line  # fields the message does not print are not written


def test_the_level_drops_what_is_below_it() -> None:
    out = io.StringIO()
    observer = log_observer(LoggingConfig(level="warn", format="json"), out)
    _publish(observer, "info", "chatty")
    _publish(observer, "error", "loud")
    assert [json.loads(x)["message"] for x in out.getvalue().splitlines()] == ["loud"]
