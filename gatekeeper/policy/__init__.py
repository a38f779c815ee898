"""Policy: input documents, engines, decisions and the decision cache."""

from gatekeeper.policy.engine import AllowAllBackend, PolicyEngine
from gatekeeper.policy.factory import make_engine
from gatekeeper.policy.input import SessionInfo, build_input

__all__ = ["AllowAllBackend", "PolicyEngine", "SessionInfo", "build_input", "make_engine"]
