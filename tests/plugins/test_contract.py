"""Every registered model, built-in or third-party, passes the model contract (segzoo.testing)."""

import pytest

import segzoo
from segzoo.testing import ModelContract


def _params():
    for name in segzoo.list_models():
        card = segzoo.get_model_card(name)
        # big: over 100 MB published, or no size published (MaskFormer: ~42-63 M parameters)
        big = card.figures.size_mb is None or card.figures.size_mb > 100
        yield pytest.param(name, id=name, marks=[pytest.mark.slow] if big else [])


@pytest.mark.parametrize("name", list(_params()))
def test_model_contract(name):
    contract = ModelContract(name)
    contract.check_preprocess()
    contract.check_forward()
    contract.check_train_step()
    contract.check_save_load()
