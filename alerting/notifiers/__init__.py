"""Notifiers: one class per receiver type, built from config by :func:`build_notifiers`."""

from alerting.notifiers.base import Notifier, RateLimited, RepeatingNotifier, build_notifiers

__all__ = ["Notifier", "RateLimited", "RepeatingNotifier", "build_notifiers"]
