"""The actor runtime: mailboxes, ask/tell, supervision and keyed registries.

It imports nothing else of this project, so every actor (and every test) can use it alone.
"""

from .errors import (
    ActorError,
    ActorStopped,
    AskTimeout,
    MailboxFull,
    RegistryStopped,
    ReplyAlreadySent,
    SupervisorGaveUp,
)
from .mailbox import RETIRED, Address, Inbox, MailboxStatistics, Retired, open_mailbox
from .registry import Registry, RegistryStatistics
from .reply import Reply
from .restart import CrashHistory, RestartPolicy
from .supervisor import (
    Actor,
    ChildState,
    ChildStatistics,
    GiveUpHandler,
    Supervisor,
    SupervisorStatistics,
)

__all__ = [
    "RETIRED",
    "Actor",
    "ActorError",
    "ActorStopped",
    "Address",
    "AskTimeout",
    "ChildState",
    "ChildStatistics",
    "CrashHistory",
    "GiveUpHandler",
    "Inbox",
    "MailboxFull",
    "MailboxStatistics",
    "Registry",
    "RegistryStatistics",
    "RegistryStopped",
    "Reply",
    "ReplyAlreadySent",
    "RestartPolicy",
    "Retired",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorStatistics",
    "open_mailbox",
]
