"""Whether and how the session manager runs Alembic migrations: :class:`MigrationSettings`."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from fkit_core.settings._base import SettingsModel

__all__ = ["MigrationSettings"]


class MigrationSettings(SettingsModel):
    """Alembic migrations run by the session manager when it starts (off by default).

    Needs the ``fkit-core[alembic]`` extra. From the environment:
    ``FKIT_DB_MIGRATIONS__RUN_ON_START=true``,
    ``FKIT_DB_MIGRATIONS__ALEMBIC_INI=/app/alembic.ini``.

    Attributes:
        run_on_start: Run ``alembic upgrade <revision>`` in ``start()``, after the
            engines are created and before ``ManagerStarted``.
        alembic_ini: Path of the ``alembic.ini`` (for example one written by
            ``fkit migrations init``); required when ``run_on_start`` is true. A relative
            path is taken from the process's working directory.
        revision: The revision to upgrade to: ``"head"``, ``"heads"`` or a revision id.
    """

    run_on_start: bool = False
    # validate_default: the check below must also run when the field was left unset.
    alembic_ini: str | None = Field(default=None, min_length=1, validate_default=True)
    revision: str = Field(default="head", min_length=1)

    @field_validator("alembic_ini")
    @classmethod
    def _required_to_run(cls, value: str | None, info: ValidationInfo) -> str | None:
        # run_on_start is declared first, so it has been validated by now (absent from
        # info.data only when it was itself invalid, which is reported on its own).
        if value is None and info.data.get("run_on_start"):
            raise ValueError(
                "is required when run_on_start is true: give the path of your alembic.ini "
                "(create one with `fkit migrations init DIR`)"
            )
        return value
