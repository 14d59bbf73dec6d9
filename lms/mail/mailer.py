"""Starting a node's Mailer: its transport chosen from the settings (SMTP when LMS_SMTP_URL is
set, else `.eml` files in the mail dir), the outbox on the node's database, and the composer
that renders each message with the node's public URL and unsubscribe key."""

from __future__ import annotations

from actors.mailer import MailerConfig, MailerHandle, Transport, start_mailer
from actors.runtime import GiveUpHandler, Supervisor
from lms.config import Settings
from lms.domain.unsubscribe import derived_key
from lms.mail.eml_dir import EmlDirTransport
from lms.mail.message import Composer
from lms.mail.outbox import PostgresOutbox
from lms.mail.smtp import SmtpTransport
from lms.store.database import Database

# The part of a lease a send may take (sends of a batch run at once, each cut off at the send
# timeout); the rest is room for rendering and completing the batch, for a lease shorter than
# a batch would let another mailer take (and send) a message this one is still sending. The
# default 90 s lease gives the 60 s send timeout and 30 s of room.
SEND_SHARE = 2 / 3


def mail_transport(settings: Settings) -> SmtpTransport | EmlDirTransport:
    smtp = settings.smtp
    return EmlDirTransport(settings.mail_dir) if smtp is None else SmtpTransport(smtp)


def mail_destination(settings: Settings) -> str:
    """Where the node's mail goes, for people (never the SMTP password)."""
    smtp = settings.smtp
    return f".eml files in {settings.mail_dir}" if smtp is None else smtp.describe()


def mailer_config(settings: Settings) -> MailerConfig:
    """The node's Mailer: a send timeout that fits LMS_MAIL_LEASE_SECONDS."""
    return MailerConfig(send_timeout=settings.mail_lease_seconds * SEND_SHARE)


async def start_node_mailer(
    supervisor: Supervisor,
    settings: Settings,
    db: Database,
    transport: Transport,
    config: MailerConfig | None = None,
    *,
    on_give_up: GiveUpHandler | None = None,
) -> MailerHandle:
    """Start the Mailer with `config` (`mailer_config(settings)` when None), claiming under
    LMS_MAIL_LEASE_SECONDS.

    Raises:
      ValueError: `config`'s sends do not fit in the lease.
    """
    lease = settings.mail_lease_seconds
    config = mailer_config(settings) if config is None else config
    if config.send_timeout > lease * SEND_SHARE:
        raise ValueError(
            f"a send timeout of {config.send_timeout:g} s does not fit a {lease} s mail lease"
        )
    outbox = PostgresOutbox(db, lease_seconds=lease, policy=config.policy)
    composer = Composer(
        sender=settings.mail_from,
        public_url=settings.public_origin,
        unsubscribe_key=derived_key(settings.secret_key),
    )
    return await start_mailer(
        supervisor, outbox, transport, composer, config, on_give_up=on_give_up
    )
