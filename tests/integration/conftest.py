from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Api, RelaisTestClient, token


@pytest.fixture
def client(aws: object) -> Iterator[RelaisTestClient]:
    with RelaisTestClient() as test_client:
        yield test_client


@pytest.fixture
def platform(client: RelaisTestClient) -> Api:
    """The API as seen by a platform administrator."""
    return Api(client, token("platform_admin"))


@pytest.fixture
def anonymous(client: RelaisTestClient) -> Api:
    return Api(client)
