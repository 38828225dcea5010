"""EC2 On-Demand hourly prices: the bundled table (``data/ec2_on_demand_prices.csv``) or a user's file.

The file is CSV with the header ``region,instance_type,usd_per_hour``. Lines starting with ``#`` are comments;
two of them are read as metadata: ``# as_of: <date>`` (when the figures were taken) and ``# source: <where>``.
Every price says where it came from, because list prices change and the cost figures built on them must say so.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from minerwatch.errors import ConfigError

BUNDLED_FILE = "ec2_on_demand_prices.csv"
BUNDLED_NAME = f"minerwatch/catalog/data/{BUNDLED_FILE}"
_COLUMNS = ("region", "instance_type", "usd_per_hour")


@dataclass(frozen=True)
class PriceTable:
    """Hourly USD prices keyed by ``(region, instance_type)``, both lower case."""

    prices: dict[tuple[str, str], float] = field(default_factory=dict)
    as_of: str | None = None
    source: str | None = None
    file: str = BUNDLED_NAME

    def price(self, region: str | None, instance_type: str | None) -> float | None:
        """The hourly price, or ``None`` when the table has no figure for that type in that region."""
        if not region or not instance_type:
            return None
        return self.prices.get((region.strip().lower(), instance_type.strip().lower()))

    @property
    def regions(self) -> list[str]:
        return sorted({r for r, _ in self.prices})

    def describe(self) -> dict[str, object]:
        """Where the figures come from, for reports: file, date, source, size."""
        return {
            "file": self.file,
            "as_of": self.as_of,
            "source": self.source,
            "regions": self.regions,
            "entries": len(self.prices),
        }


def parse_prices(text: str, file: str) -> PriceTable:
    """Parse a price table; :class:`ConfigError` with the line for a bad header, row, price or duplicate."""
    meta: dict[str, str] = {}
    data_lines: list[tuple[int, str]] = []
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, sep, value = stripped[1:].partition(":")
            if sep and key.strip().lower() in ("as_of", "source"):
                meta.setdefault(key.strip().lower(), value.strip())
            continue
        data_lines.append((n, line))
    if not data_lines:
        raise ConfigError("price table has no header row (region,instance_type,usd_per_hour)", file=file)
    header_line, header_text = data_lines[0]
    header = [c.strip().lower() for c in next(csv.reader([header_text]))]
    if header != list(_COLUMNS):
        raise ConfigError(
            f"price table header must be {','.join(_COLUMNS)}, not {header_text.strip()!r}",
            file=file,
            line=header_line,
            source_line=header_text,
        )
    prices: dict[tuple[str, str], float] = {}
    for n, raw in data_lines[1:]:
        row = next(csv.reader(io.StringIO(raw)), [])
        if len(row) != 3:
            raise ConfigError(f"expected 3 columns, got {len(row)}", file=file, line=n, source_line=raw)
        region, itype, price_text = (c.strip() for c in row)
        try:
            price = float(price_text)
        except ValueError:
            raise ConfigError(f"price {price_text!r} is not a number", file=file, line=n, source_line=raw) from None
        if not math.isfinite(price) or price < 0:
            raise ConfigError(f"price {price_text!r} must be a finite number ≥ 0", file=file, line=n, source_line=raw)
        key = (region.lower(), itype.lower())
        if not key[0] or not key[1]:
            raise ConfigError("region and instance_type must not be empty", file=file, line=n, source_line=raw)
        if key in prices:
            raise ConfigError(f"{itype} in {region} is listed twice", file=file, line=n, source_line=raw)
        prices[key] = price
    return PriceTable(prices, meta.get("as_of"), meta.get("source"), file)


def load_prices(path: str | Path | None = None) -> PriceTable:
    """The price table at ``path``, or the bundled one."""
    if path is None:
        text = resources.files("minerwatch.catalog").joinpath("data", BUNDLED_FILE).read_text(encoding="utf-8")
        return parse_prices(text, BUNDLED_NAME)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read price table: {exc}", file=str(path)) from None
    return parse_prices(text, str(path))
