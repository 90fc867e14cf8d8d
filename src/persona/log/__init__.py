"""The durable event log: the source of truth every derived state is rebuilt from."""

from persona.log.events import Event
from persona.log.store import AppendResult, EventLog, QuarantinedMessage, Rejected

__all__ = ["AppendResult", "Event", "EventLog", "QuarantinedMessage", "Rejected"]
