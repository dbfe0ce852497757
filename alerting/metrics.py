"""Prometheus metrics of delivery and of incident actions, registered on an injected registry.

>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = DeliveryMetrics(reg)
>>> m.attempts.labels(receiver="pager", result="ok").inc()
>>> reg.get_sample_value("crisiswatch_notification_attempts_total",
...                      {"receiver": "pager", "result": "ok"})
1.0
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.enqueued = Counter(
            "crisiswatch_notifications_enqueued",
            "Notifications persisted to the outbox.",
            ["receiver", "action"],
            registry=registry,
        )
        self.delivered = Counter(
            "crisiswatch_notifications_delivered",
            "Notifications a receiver accepted.",
            ["receiver", "action"],
            registry=registry,
        )
        self.attempts = Counter(
            "crisiswatch_notification_attempts",
            "Delivery attempts by outcome: ok, retry (recoverable failure), failed, expired.",
            ["receiver", "result"],
            registry=registry,
        )
        self.given_up = Counter(
            "crisiswatch_notifications_given_up",
            "Notifications that will never be delivered: failed (permanent error) or expired.",
            ["receiver", "reason"],
            registry=registry,
        )
        self.superseded = Counter(
            "crisiswatch_notifications_superseded",
            "Triggers not sent because their incident was acknowledged or resolved first.",
            ["receiver"],
            registry=registry,
        )
        self.latency = Histogram(
            "crisiswatch_notification_delivery_seconds",
            "From enqueue to accepted by the receiver.",
            ["receiver"],
            # up to the default expiry (6 h): a page delivered hours late is still counted apart
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 7200, 21600),
            registry=registry,
        )
        self.pending = Gauge(
            "crisiswatch_outbox_pending",
            "Notifications waiting in the outbox (due or backing off).",
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "crisiswatch_outbox_oldest_pending_seconds",
            "Age of the oldest pending notification (0 when none).",
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "crisiswatch_receiver_consecutive_failures",
            "Failed attempts in a row per receiver (0 after a success).",
            ["receiver"],
            registry=registry,
        )


class ActionMetrics:
    """Incident actions arriving over HTTP: REST, one-click links, inbound PagerDuty webhooks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.actions = Counter(
            "crisiswatch_incident_actions",
            "Acknowledge/resolve/snooze requests and silences added/expired, by channel (api,"
            " link, pagerduty).",
            ["action", "via"],
            registry=registry,
        )
        self.rejected = Counter(
            "crisiswatch_incident_action_rejections",
            "Requests refused: unauthorized, forbidden, bad_signature, expired, malformed, ...",
            ["via", "reason"],
            registry=registry,
        )
