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

# Beyond a batch's longest send, room for rendering and completing it: a lease shorter than a
# batch would let another mailer take (and send) a message this one is still sending.
LEASE_MARGIN = 30.0


def mail_transport(settings: Settings) -> SmtpTransport | EmlDirTransport:
    smtp = settings.smtp
    return EmlDirTransport(settings.mail_dir) if smtp is None else SmtpTransport(smtp)


def mail_destination(settings: Settings) -> str:
    """Where the node's mail goes, for people (never the SMTP password)."""
    smtp = settings.smtp
    return f".eml files in {settings.mail_dir}" if smtp is None else smtp.describe()


async def start_node_mailer(
    supervisor: Supervisor,
    settings: Settings,
    db: Database,
    transport: Transport,
    config: MailerConfig | None = None,
    *,
    on_give_up: GiveUpHandler | None = None,
) -> MailerHandle:
    config = MailerConfig() if config is None else config
    outbox = PostgresOutbox(
        db, lease_seconds=config.send_timeout + LEASE_MARGIN, policy=config.policy
    )
    composer = Composer(
        sender=settings.mail_from,
        public_url=settings.public_origin,
        unsubscribe_key=derived_key(settings.secret_key),
    )
    return await start_mailer(
        supervisor, outbox, transport, composer, config, on_give_up=on_give_up
    )
