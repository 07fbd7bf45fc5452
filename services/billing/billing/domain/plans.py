"""Plans: monthly offers with a price and the quotas and limits that follow from them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """One plan of the catalog; `monthly_job_quota` units (one unit is one job) per billing period."""

    plan_id: str
    display_name: str
    description: str
    monthly_job_quota: int
    price_minor_units: int = 0
    currency_code: str = "usd"
    stripe_price_id: str = ""
    stripe_product_id: str = ""
    features: tuple[str, ...] = ()
    max_concurrent_jobs: int = 1
    requests_per_minute: int = 60
    max_watched_folders: int = 1
    purchasable: bool = True
