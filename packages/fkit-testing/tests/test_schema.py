"""Schema setups: how they are named (one template per schema) and loaded from ini values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text

from fkit_testing import AlembicSchema, WorkerDatabase
from fkit_testing._schema import describe_schema, load_reference, schema_from_ini, schema_key

if TYPE_CHECKING:
    from pathlib import Path


def notes_metadata(extra_column: bool = False) -> MetaData:
    metadata = MetaData()
    columns = [Column("id", Integer, primary_key=True), Column("body", Text, index=True)]
    if extra_column:
        columns.append(Column("tag", Text))
    Table("notes", metadata, *columns)
    return metadata


def build_a(conn: object) -> None:
    pass


def build_b(conn: object) -> None:
    pass


def test_schema_keys_follow_the_schema_not_the_object() -> None:
    # Every xdist worker builds its own objects: equal DDL must give the same template.
    assert schema_key(notes_metadata()) == schema_key(notes_metadata())
    assert schema_key(notes_metadata()) != schema_key(notes_metadata(extra_column=True))
    assert schema_key(build_a) == schema_key(build_a)
    assert schema_key(build_a) != schema_key(build_b)
    assert schema_key(None) != schema_key([])
    assert schema_key(AlembicSchema("alembic.ini")) != schema_key(
        AlembicSchema("alembic.ini", "0001")
    )
    assert len(schema_key(None)) == 8


def test_describe_schema() -> None:
    assert describe_schema(None) == "no schema (an empty database)"
    assert (
        describe_schema(AlembicSchema("db/alembic.ini"))
        == "alembic upgrade head with db/alembic.ini"
    )
    assert describe_schema([build_a, build_b]) == "build_a then build_b"


def test_ini_values(tmp_path: Path) -> None:
    assert schema_from_ini("", "", "head", tmp_path) is None
    alembic = schema_from_ini("", "db/alembic.ini", "0002", tmp_path)
    assert alembic == AlembicSchema(tmp_path / "db/alembic.ini", "0002")
    assert schema_from_ini("fkit_testing:AlembicSchema", "", "", tmp_path) is AlembicSchema
    assert load_reference("fkit_testing._schema:AlembicSchema.__name__") == "AlembicSchema"
    with pytest.raises(ValueError, match="not both"):
        schema_from_ini("a:b", "alembic.ini", "head", tmp_path)
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        load_reference("fkit_testing:Nope")


def test_worker_database_repr_hides_the_password() -> None:
    database = WorkerDatabase(
        name="fkit_0123456789_abcdef01_main",
        template="fkit_0123456789_abcdef01_tpl",
        worker="main",
        url="postgresql://app:s3cret@db:5432/fkit_0123456789_abcdef01_main",
        server_url="postgresql://app:s3cret@db:5432/postgres",
    )
    assert "s3cret" not in repr(database)
    assert database.sqlalchemy_url("psycopg").startswith("postgresql+psycopg://app:s3cret@db")
