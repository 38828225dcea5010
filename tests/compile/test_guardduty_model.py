"""The GuardDuty service model read straight from botocore's data folder is the one botocore's Loader gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.loaders import Loader

from minerwatch.catalog import guardduty_model


def test_the_model_is_the_one_the_loader_finds() -> None:
    assert guardduty_model._service_model() == Loader().load_service_model("guardduty", "service-2")


def test_a_model_under_the_users_aws_folder_is_read_through_the_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~/.aws/models is on the Loader's search path: a newer API version there is the one it reads.
    shipped = Loader().load_service_model("guardduty", "service-2")
    custom = {**shipped, "metadata": {**shipped["metadata"], "serviceId": "GuardDuty custom"}}
    folder = tmp_path / ".aws" / "models" / "guardduty" / "2999-01-01"
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(custom))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(Loader, "CUSTOMER_DATA_PATH", str(tmp_path / ".aws" / "models"))
    assert guardduty_model._service_model()["metadata"]["serviceId"] == "GuardDuty custom"
