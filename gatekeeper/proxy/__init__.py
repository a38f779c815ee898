"""Twisted protocols and factories: client side, upstream side, listeners, admin."""

from gatekeeper.proxy.gateway import Gateway, GatewayService

__all__ = ["Gateway", "GatewayService"]
