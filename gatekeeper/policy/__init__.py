"""Policy: input documents, engines, decisions and the decision cache."""

from gatekeeper.policy.engine import AllowAllBackend, PolicyEngine
from gatekeeper.policy.factory import make_engine
from gatekeeper.policy.input import Principal, SessionInfo, build_input

__all__ = ["AllowAllBackend", "PolicyEngine", "Principal", "SessionInfo", "build_input", "make_engine"]
