"""A customer as the engine, the gate and the templates see them.

The store keeps profiles in Redis; this is the typed value read from there.  ``context()`` is the
one flat mapping that conditions and templates receive as ``profile``, so ``profile.orders_count``
means the same thing in a branch, a trigger filter and a template.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: The fields Loyaloop itself maintains; anything else a customer has lives in ``attributes``.
DERIVED_FIELDS = ("orders_count", "total_spent", "last_order_at", "products")


class ProductPurchase(BaseModel):
    """What a customer bought and when it is expected to run out (replenishment)."""

    model_config = ConfigDict(extra="forbid")

    sku: str
    name: str = ""
    last_bought_at: datetime
    replenish_at: datetime | None = None


class Profile(BaseModel):
    """Identity, contact points, consent and attributes of one customer."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    email: str | None = None
    phone: str | None = None
    push_tokens: list[str] = Field(default_factory=list)
    timezone: str | None = None
    locale: str | None = None
    #: Per-channel marketing consent (``{"email": True, "sms": False}``); absent means not given.
    consent: dict[str, bool] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)
    orders_count: int = 0
    total_spent: float = 0.0
    last_order_at: datetime | None = None
    products: dict[str, ProductPurchase] = Field(default_factory=dict)
    created_at: datetime | None = None

    def address(self, field: str) -> str | None:
        """The contact point a channel needs (``email``, ``phone``, ``push_token``), if any."""
        if field == "push_token":
            return self.push_tokens[-1] if self.push_tokens else None
        value = getattr(self, field, None) if field in {"email", "phone"} else self.attributes.get(field)
        return str(value) if value else None

    def context(self) -> dict[str, Any]:
        """The flat mapping templates and conditions see as ``profile``.

        Attributes come first so Loyaloop's own fields win a name clash: a marketer can never
        fake ``orders_count`` through ``identify``.
        """
        values: dict[str, Any] = dict(self.attributes)
        values.update(
            id=self.id,
            email=self.email,
            phone=self.phone,
            timezone=self.timezone,
            locale=self.locale,
            consent=dict(self.consent),
            orders_count=self.orders_count,
            total_spent=self.total_spent,
            last_order_at=self.last_order_at,
            products={sku: p.model_dump() for sku, p in self.products.items()},
            created_at=self.created_at,
        )
        return values
