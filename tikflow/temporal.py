"""Temporal client set-up shared by the api, the worker and the CLI."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tikflow.settings import Settings

SEARCH_ATTRIBUTES = {
    "TikflowPlanId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "TikflowDeviceIds": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TikflowEnvironment": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "TikflowRiskLevel": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "TikflowPhase": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal.address,
        namespace=settings.temporal.namespace,
        data_converter=pydantic_data_converter,
    )


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register tikflow's search attributes that the namespace lacks; return the added names."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {name: kind for name, kind in SEARCH_ATTRIBUTES.items()
               if name not in existing.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def dev_server_search_attribute_flags() -> list[str]:
    """Return ``--search-attribute`` flags that register tikflow's attributes on a dev server."""
    names = {IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
             IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList"}
    flags: list[str] = []
    for name, kind in SEARCH_ATTRIBUTES.items():
        flags += ["--search-attribute", f"{name}={names[kind]}"]
    return flags
