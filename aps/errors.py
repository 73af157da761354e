"""The errors apshooks raises. Each message says what happened and what to do."""

from __future__ import annotations


class APSError(Exception):
    """Base class of every error apshooks raises on purpose."""


class SettingsError(APSError):
    """A setting is missing or malformed."""


class StoreError(APSError):
    """The store cannot be opened, read or written.

    ``lasting`` tells a damaged file or a missing driver, which waiting will
    not mend, from an outage, which it may.
    """

    def __init__(self, message: str, *, lasting: bool = False) -> None:
        super().__init__(message)
        self.lasting = lasting


class AuthenticationError(APSError):
    """Connecting to APS as a user failed."""


class ConsentRequired(AuthenticationError):
    """The user has to sign in (again) and grant consent on a workstation."""

    @classmethod
    def for_job(cls, autodesk_id: str) -> ConsentRequired:
        return cls(
            "Job processing requires Autodesk Platform Services authentication! "
            f"Please connect on your workstation using Autodesk ID '{autodesk_id}' "
            "and grant consent."
        )


class SignInRefused(AuthenticationError):
    """The user, or the server, refused the sign-in (for example Deny)."""


class SignInTimeout(AuthenticationError):
    """No answer came back from the browser in time."""


class PortBusy(AuthenticationError):
    """The loopback listener for the callback URL could not bind its port."""


class ImpersonationRefused(AuthenticationError):
    """``connect(user=...)`` was called where impersonation is not allowed."""


class RequestError(APSError):
    """An APS request failed after its retries, or was refused before sending."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
