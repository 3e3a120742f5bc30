"""`--mqtt HOST:PORT --topic T`: each change of the shown label published to an MQTT broker (paho-mqtt,
the `[mqtt]` extra), for a home-automation hub or a dashboard.

The camera never waits for the network. A label change goes into a bounded queue (the oldest message
is dropped when it is full, and counted); a publisher thread hands messages to paho only while it is
connected; paho's own network thread connects, and reconnects with exponential backoff (1 s doubling
to 30 s) whenever the broker goes away. Messages are JSON, QoS 1, retained, so a new subscriber sees
the current label at once.

Nothing goes missing unsaid: a message counts as delivered when the broker acknowledges it (PUBACK), not
when it is handed to paho. A broker that cannot be reached (from the start or later) is said once on
stderr, as is the first message dropped while it is away; at exit the camera says how many label changes
were not delivered, and `/metrics` counts them as they happen (fmnist_edge_mqtt_*).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque

from edge_runtime.camera.pipeline import FrameResult
from edge_runtime.camera.quality import Quality
from edge_runtime.camera.sinks.base import Sink, StreamInfo
from edge_runtime.web.address import parse_host_port
from edge_runtime.core.errors import FmnistEdgeError

log = logging.getLogger(__name__)

QUEUE = 100
"""Label changes kept while the broker is away: the newest ones."""
STATUS_EVERY = 60.0
"""Seconds between status messages (TOPIC/status, retained): frames, fps, unsure frames, drift."""
BACKOFF = (1, 30)


def check_topic(topic: str) -> str:
    """A topic to publish to: not empty, no wildcards (+ #), no NUL, at most 65535 bytes."""
    if not topic or any(c in topic for c in "+#\0") or len(topic.encode()) > 65535:
        raise FmnistEdgeError(f"--topic {topic!r}: give a topic to publish to, e.g. home/camera/label "
                              "(no + or # wildcards)")
    return topic


class MqttSink(Sink):
    def __init__(self, address: str, topic: str, queue_size: int = QUEUE):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise FmnistEdgeError("--mqtt needs paho-mqtt: pip install 'fmnist-edge[mqtt]'") from None
        self._mqtt = mqtt
        self.host, self.port = parse_host_port(address, "--mqtt")
        self.topic = check_topic(topic)
        self._queue: deque[bytes] = deque(maxlen=queue_size)
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._stopping = False
        self._last: str | None = None
        self.handed = self.delivered = self.dropped = 0
        """Messages handed to paho, acknowledged by the broker, and dropped from the full queue."""
        self._unreachable_said = False
        self._source = ""
        self.quality = Quality(None)
        """The run's tally (StreamInfo.quality), read, never added to; an empty one until start."""
        self._status_at = 0.0

    @classmethod
    def from_options(cls, opts) -> MqttSink | None:
        return cls(opts.mqtt, opts.topic) if opts.mqtt else None

    def start(self, stream: StreamInfo) -> None:
        mqtt = self._mqtt
        self._source = stream.source
        self.quality = stream.quality
        self._status_at = time.monotonic()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"fmnist-edge-{socket.gethostname()}-{os.getpid()}")
        self.client.reconnect_delay_set(*BACKOFF)
        self.client.max_queued_messages_set(len(self._queue) or QUEUE)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        stream.outlets.counters.append(self.counters)
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._publisher = threading.Thread(target=self._publish_loop, name="mqtt publish", daemon=True)
        self._publisher.start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection (%s)", self.host, self.port, reason)
            return
        log.info("MQTT: connected to %s:%d, publishing to %s", self.host, self.port, self.topic)
        self._unreachable_said = False
        with self._cond:
            self._connected.set()
            self._cond.notify_all()

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._unreachable_said and not self._stopping:
            log.warning("MQTT: cannot reach the broker at %s:%d; retrying (every %d s at most), label changes "
                        "wait here (the newest %d)", self.host, self.port, BACKOFF[1], self._queue.maxlen)
            self._unreachable_said = True

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        if self._connected.is_set() and not self._stopping:
            log.warning("MQTT: lost %s:%d (%s); reconnecting, label changes wait here", self.host, self.port,
                        reason)
            self._unreachable_said = True
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._cond:
            self.delivered += 1

    @property
    def undelivered(self) -> int:
        """Label changes not (yet) acknowledged by the broker: dropped, waiting here, or in paho's hands."""
        with self._cond:
            return self.dropped + len(self._queue) + self.handed - self.delivered

    def counters(self) -> dict[str, tuple[str, str, float]]:
        """For /metrics (read when scraped): name -> (kind, help, value)."""
        return {"fmnist_edge_mqtt_delivered": ("counter", "Label changes the MQTT broker acknowledged",
                                               self.delivered),
                "fmnist_edge_mqtt_dropped": ("counter", "Label changes dropped while the broker was away (the "
                                             "queue keeps the newest)", self.dropped),
                "fmnist_edge_mqtt_undelivered": ("gauge", "Label changes not acknowledged by the broker now "
                                                 "(dropped, waiting, or sent and not yet acknowledged)",
                                                 self.undelivered),
                "fmnist_edge_mqtt_connected": ("gauge", "1 while connected to the broker",
                                               1 if self._connected.is_set() else 0)}

    def consume(self, result: FrameResult) -> None:
        if time.monotonic() - self._status_at >= STATUS_EVERY:
            self._publish_status(result.fps)
        label = result.shown.label
        if label == self._last:
            return
        self._last = label
        message = {"label": label, "class_id": result.shown.class_id, "score": round(result.shown.score, 4),
                   "frame": result.frame.index, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "source": self._source}
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                if not self.dropped:
                    log.warning("MQTT: %d label changes wait for the broker at %s:%d; dropping the oldest from "
                                "now on", self._queue.maxlen, self.host, self.port)
                self.dropped += 1
            self._queue.append(json.dumps(message).encode())
            self._cond.notify_all()

    def _publish_status(self, fps: float) -> None:
        """The latest status only (QoS 0, retained): a status the broker missed is replaced by the next."""
        self._status_at = time.monotonic()
        if not self._connected.is_set():
            return
        status = {**self.quality.status(), "fps": round(fps, 2), "undelivered": self.undelivered,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": self._source}
        self.client.publish(f"{self.topic}/status", json.dumps(status).encode(), qos=0, retain=True)

    def _publish_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or (self._queue and self._connected.is_set()))
                if self._stopping and not (self._queue and self._connected.is_set()):
                    return
                payload = self._queue.popleft()
            rc = self.client.publish(self.topic, payload, qos=1, retain=True).rc
            if rc == self._mqtt.MQTT_ERR_SUCCESS:
                with self._cond:
                    self.handed += 1
                continue
            with self._cond:  # keep it for the next try
                self._queue.appendleft(payload)
                if rc == self._mqtt.MQTT_ERR_NO_CONN:  # gone between the check and the publish: wait for on_connect
                    self._connected.clear()
                else:  # paho's own queue is full (a slow broker): try again shortly
                    self._cond.wait(0.1)

    def stop(self, summary) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._publisher.join(timeout=5)
        deadline = time.monotonic() + 2  # let the broker acknowledge what was just sent
        while self._connected.is_set() and self.handed > self.delivered and time.monotonic() < deadline:
            time.sleep(0.02)
        self.client.disconnect()
        self.client.loop_stop()
        if self.undelivered:
            log.warning("MQTT: %d of %d label changes not delivered to %s:%d (%d dropped while the broker was "
                        "away)", self.undelivered, self.delivered + self.undelivered, self.host, self.port,
                        self.dropped)
