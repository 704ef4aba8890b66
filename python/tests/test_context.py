"""The context variable itself: nesting, tasks, validation."""

import asyncio
import uuid

import pytest

import pg_safeguard


def test_nesting_restores_the_outer_context():
    assert pg_safeguard.current_context() is None
    with pg_safeguard.request_context(tenant_id="0000000a-0000-4000-8000-000000000001") as outer:
        with pg_safeguard.request_context(tenant_id=uuid.UUID(int=2), request_id="inner"):
            assert pg_safeguard.current_context().request_id == "inner"
        assert pg_safeguard.current_context() == outer
    assert pg_safeguard.current_context() is None


def test_tasks_inherit_the_context_and_do_not_share_it():
    async def child():
        return pg_safeguard.current_context()

    async def run():
        with pg_safeguard.request_context(tenant_id=uuid.UUID(int=7)):
            task = asyncio.create_task(child())
        return await task, pg_safeguard.current_context()

    inherited, after = asyncio.run(run())
    assert inherited.tenant_id == uuid.UUID(int=7) and after is None


def test_malformed_uuid_fails_in_python():
    with pytest.raises(ValueError, match="tenant_id must be a UUID"):
        with pg_safeguard.request_context(tenant_id="not-a-uuid"):
            pass
