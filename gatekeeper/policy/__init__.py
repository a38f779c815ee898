"""Policy: input documents, engines and decisions."""

from gatekeeper.policy.engine import AllowAllEngine, make_engine
from gatekeeper.policy.input import Principal, SessionInfo, build_input

__all__ = ["AllowAllEngine", "Principal", "SessionInfo", "build_input", "make_engine"]
