"""Small input files the integration tests write; each test gets its own copies."""

from __future__ import annotations

from pathlib import Path

import yaml

PURCHASES_SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
    "zip": {"type": "string", "role": "quasi_identifier", "category": "user.contact.address.postal_code"},
    "age": {"type": "integer", "role": "quasi_identifier", "category": "user.demographic.age_range"},
    "segment": {"type": "string", "role": "attribute", "category": "user.behavior"},
    "spend": {"type": "double", "role": "sensitive", "category": "user.financial"},
}}
BRAND_SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "tier": {"type": "string", "role": "attribute", "category": "user.behavior"},
}}


def agreement(mode: str = "join", k: int = 5, valid_until: str = "2099-12-31") -> dict:
    return {
        "name": "syrup-insights", "provider": "retailer", "recipients": ["brand"],
        "purposes": ["analytics.reporting"], "valid_until": valid_until,
        "datasets": {"retailer.purchases": {"fields": {
            "customer_id": {"transform": "hash"}, "zip": {"transform": "generalize", "keep": 3},
            "age": {"transform": "bucket", "width": 10}, "segment": "raw", "spend": "raw", "email": "drop"}}},
        "access": {"mode": mode, "min_group_size": k, "join_keys": ["customer_id"]},
    }


def write_purchases(folder: Path, people: int = 60, rows_each: int = 2) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["customer_id,email,zip,age,segment,spend"]
    for i in range(people):
        for j in range(rows_each):
            lines.append(f"C{i:04d},p{i}@example.org,{10000 + i % 7},{20 + i % 40},{['a', 'b', 'c'][i % 3]},{(i * 7 + j) % 50}.5")
    data = folder / "purchases.csv"
    data.write_text("\n".join(lines) + "\n")
    schema = folder / "purchases.yaml"
    schema.write_text(yaml.safe_dump(PURCHASES_SCHEMA))
    return data, schema


def write_brand(folder: Path, people: int = 40, offset: int = 20) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["customer_id,tier"] + [f"C{i:04d},{['gold', 'silver'][i % 2]}" for i in range(offset, offset + people)]
    data = folder / "brand.csv"
    data.write_text("\n".join(lines) + "\n")
    schema = folder / "brand.yaml"
    schema.write_text(yaml.safe_dump(BRAND_SCHEMA))
    return data, schema


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
