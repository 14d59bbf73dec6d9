"""The node's Mailer settings: a mail lease that any send fits in, so a message is never taken
by another node while its sender may still be sending it."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.mailer import MailerConfig
from actors.runtime import Supervisor
from lms.config import ConfigError, Settings
from lms.mail.eml_dir import EmlDirTransport
from lms.mail.mailer import mailer_config, start_node_mailer
from tests.databases import open_database


def test_a_send_is_cut_off_well_within_the_mail_lease() -> None:
    default = Settings.from_env({})
    assert default.mail_lease_seconds == 90
    assert mailer_config(default).send_timeout == 60.0  # as before the lease was a setting
    short = Settings.from_env({"LMS_MAIL_LEASE_SECONDS": "6"})
    assert short.mail_lease_seconds == 6
    assert mailer_config(short).send_timeout == pytest.approx(4.0)


@pytest.mark.parametrize("raw", ["2", "3601", "soon"])
def test_a_mail_lease_out_of_range_is_refused_with_its_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LMS_MAIL_LEASE_SECONDS": raw})
    [problem] = caught.value.problems
    assert problem.startswith(f"LMS_MAIL_LEASE_SECONDS={raw!r}: expected")


async def test_a_mailer_whose_sends_outlast_its_lease_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(secret_key="s" * 32, mail_lease_seconds=6)
    async with open_database(database_url) as db, trio.open_nursery() as nursery:
        supervisor = Supervisor("test")
        await nursery.start(supervisor.run)
        with pytest.raises(ValueError, match="does not fit a 6 s mail lease"):
            await start_node_mailer(
                supervisor, settings, db, EmlDirTransport(tmp_path), MailerConfig(send_timeout=6)
            )
        nursery.cancel_scope.cancel()
