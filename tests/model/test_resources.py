"""Resource asks and totals: a sum of GPU shares is a total in milli-GPU, which no single
ask could be."""

from __future__ import annotations

import pytest

from federation.errors import ValidationError
from federation.model import Resources, ResourceTotals


def test_shares_add_up_past_one_gpu_as_a_total() -> None:
    share = Resources.from_spec({"cpu": 1000, "memory": 512, "gpu": 0.46})
    total = share + share + share
    assert isinstance(total, ResourceTotals)
    assert total == ResourceTotals(3000, 1536, 1380)


def test_totals_take_whole_gpus_and_shares_alike() -> None:
    total = ResourceTotals() + Resources(gpu=2) + Resources(gpu_share_milli=500)
    assert total.gpu_milli == 2500
    assert total.within(ResourceTotals(0, 0, 2500))
    assert not total.within(ResourceTotals(0, 0, 2499))


def test_one_ask_is_whole_gpus_or_a_share_never_both() -> None:
    with pytest.raises(ValidationError):
        Resources(gpu=1, gpu_share_milli=380)


def test_a_share_uses_one_device() -> None:
    share = Resources(gpu_share_milli=460)
    assert (share.devices_wanted, share.gpu_per_device_milli) == (1, 460)
    assert (Resources(gpu=3).devices_wanted, Resources(gpu=3).gpu_per_device_milli) == (3, 1000)
