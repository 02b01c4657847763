"""The local stage's container: the deployed one with the stand-ins of what has no local AWS.

SES's mailbox simulator (its Send, Bounce and Complaint events travel the deployed path through the
ses-events queue) wraps the SES mailer, and the simulated registered-letter provider takes the letters of
the `provider` channel (one per container, so that `GET /_local/letters` sees what the workers deposited).
Deployed functions never import this module: `chalicelib.wiring` builds the plain `Container`.
"""

from __future__ import annotations

from functools import cached_property

from chalicelib.config import Settings
from chalicelib.services.ports import Mailer, RegisteredMail
from chalicelib.wiring import Container


class LocalContainer(Container):
    @cached_property
    def mailer(self) -> Mailer:
        from chalicelib.local.ses_simulator import MailboxSimulator

        return MailboxSimulator(self.ses_mailer, self.ses_events_queue, self.settings.region)

    @cached_property
    def registered_mail(self) -> RegisteredMail | None:
        from chalicelib.adapters.simulated_registered_mail import SimulatedRegisteredMail

        return SimulatedRegisteredMail()


def build_container(config: Settings) -> Container:
    """The local stand-ins for the local stage only: a process switched to a deployed stage's settings
    (tests/integration/test_packaging.py) gets exactly the deployed container."""
    return LocalContainer(config) if config.stage == "local" else Container(config)
