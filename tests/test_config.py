import copy

import pytest
import yaml

from conftest import ROOT, SCHEMA
from iriflow.config import (
    ConfigError,
    ModelSpec,
    datasets_used,
    iri_run_options,
    iri_settings,
    model_grid,
    observer_metrics,
    validate_config,
)


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.fixture(scope="module")
def default_cfg():
    return validate_config(load("config.yaml"), SCHEMA)


def test_default_config_is_valid_and_filled(default_cfg):
    assert default_cfg["device"] == "auto"
    assert default_cfg["data"]["mnist5k"]["test_fraction"] == 0.2
    # defaults come from the schema where the file is silent
    assert default_cfg["models"]["train"]["amp"] == "off"
    assert default_cfg["models"]["augmentations"]["adv_l2"]["attack"]["random_start"] is True
    assert default_cfg["iris"]["optimizer"] == "normalized"
    assert default_cfg["iris"]["loss_defs"]["tv-l6"] == {
        "kind": "tv-l6",
        "rep_weight": 10.0,
        "tv_weight": 5e-4,
        "tv_beta": 2.0,
        "norm_weight": 1.0,
        "norm_alpha": 6.0,
    }
    assert default_cfg["iris"]["loss_defs"]["adversarial"]["lam"] == 10.0


def test_validation_does_not_mutate_input():
    raw = load("config.yaml")
    before = copy.deepcopy(raw)
    validate_config(raw, SCHEMA)
    assert raw == before


def test_default_grid(default_cfg):
    ids = [m.id for m in model_grid(default_cfg)]
    assert len(ids) == 8
    assert "mnist5k/resnet18-ce-adv_l2-s0" in ids
    assert "mnist5k/vgg16bn-simclr-simclr_adv-s0" in ids
    assert datasets_used(default_cfg) == ["mnist5k"]


def test_paper_grid_is_the_full_design():
    cfg = validate_config(load("paper.yaml"), SCHEMA)
    grid = model_grid(cfg)
    # supervised: 2 datasets x 4 archs x 5 augmentations; TRADES/MART: 4 archs x 8
    # objectives (2 losses x 4 betas); SimCLR: 4 archs x 3 view augmentations
    assert len(grid) == 2 * 4 * 5 + 4 * 8 + 4 * 3
    assert {m.arch for m in grid} == {"resnet18", "vgg16bn", "densenet121", "inceptionv3"}
    assert datasets_used(cfg) == ["cifar10", "cifar100"]
    assert cfg["targets"]["n"] == 100 and cfg["iris"]["steps"] == 5000
    assert cfg["models"]["augmentations"]["adv_l2"]["attack"] == {
        "norm": "l2",
        "eps": 1.0,
        "steps": 7,
        "step_size": 0.5,
        "random_start": True,
    }
    assert cfg["models"]["objectives"]["simclr"]["train"]["epochs"] == 1000
    assert cfg["models"]["resources"]["gpu"] == 1 and cfg["iris"]["resources"]["gpu"] == 1


def test_exclude_drops_matching_models(default_cfg):
    cfg = copy.deepcopy(default_cfg)
    cfg["models"]["exclude"] = [{"arch": "vgg16bn", "objective": "simclr"}]
    ids = [m.id for m in model_grid(cfg)]
    assert len(ids) == 6 and not any("vgg16bn-simclr" in i for i in ids)


def test_model_id_roundtrip_and_rejects_garbage():
    spec = ModelSpec("cifar10", "resnet18", "trades_b0.1", "adv_linf", 3)
    assert spec.id == "cifar10/resnet18-trades_b0.1-adv_linf-s3"
    assert ModelSpec.parse(spec.id) == spec
    with pytest.raises(ConfigError, match="not a model id"):
        ModelSpec.parse("cifar10/resnet18-ce-s0")


def _bad(mutate):
    cfg = load("config.yaml")
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, SCHEMA)
    return str(err.value)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(colour="red"), "colour: unknown key 'colour'"),
        (lambda c: c["data"].update(dowload=True), "data.dowload: unknown key 'dowload'"),
        (lambda c: c.update(device="tpu"), "device: 'tpu' is not one of"),
        (lambda c: c["targets"].update(n=0), "targets.n: 0 is less than the minimum of 1"),
        (lambda c: c["targets"].update(n="20"), "targets.n: '20' is not of type 'integer'"),
        (lambda c: c["data"]["mnist5k"].update(test_fraction=1.5), "data.mnist5k.test_fraction: 1.5"),
        (
            lambda c: c["models"]["grid"][0]["archs"].append("resnet19"),
            "models.grid[0].archs[2]: 'resnet19' is not defined",
        ),
        (
            lambda c: c["models"]["grid"][1]["objectives"].__setitem__(0, "byol"),
            "models.grid[1].objectives[0]: 'byol' is not defined",
        ),
        (
            lambda c: c["models"]["grid"][0]["datasets"].__setitem__(0, "svhn"),
            "models.grid[0].datasets[0]: 'svhn' is not one of",
        ),
        (
            lambda c: c["models"]["augmentations"]["adv_l2"]["attack"].update(eps=-1),
            "models.augmentations.adv_l2.attack.eps: -1 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["models"]["augmentations"]["adv_l2"]["attack"].update(norm="l3"),
            "models.augmentations.adv_l2.attack.norm: 'l3' is not one of",
        ),
        (
            lambda c: c["models"]["augmentations"]["adv_l2"].update(base="simclr_adv"),
            "models.augmentations.adv_l2.base: 'simclr_adv' is itself adversarial",
        ),
        (
            lambda c: c["models"]["augmentations"].update({"adv-l2": {"kind": "none"}}),
            "models.augmentations: 'adv-l2' does not match",
        ),
        (
            lambda c: c["models"]["objectives"]["simclr"].update(temprature=0.5),
            "models.objectives.simclr.temprature: unknown key 'temprature'",
        ),
        (
            lambda c: c["models"]["objectives"]["ce"].update(kind="hinge"),
            "models.objectives.ce.kind: 'hinge' is not one of",
        ),
        (lambda c: c["models"]["train"].update(epochs=1.5), "models.train.epochs: 1.5 is not of type 'integer'"),
        (
            lambda c: c["iris"].update(losses=["regfree", "lpips-magic"]),
            "iris.losses[1]: 'lpips-magic' is neither a registered loss",
        ),
        (lambda c: c["iris"].update(seed_types=["pink-noise"]), "iris.seed_types[0]: 'pink-noise' is not one of"),
        (lambda c: c["iris"]["resources"].update(gpu=-1), "iris.resources.gpu: -1 is less than the minimum of 0"),
        (
            lambda c: c["judgments"]["observers"]["simulated"][0].update(lapse=2),
            "judgments.observers.simulated[0].lapse: 2 is greater than the maximum of 1",
        ),
        (
            lambda c: c["judgments"]["observers"]["simulated"].append({"metric": "ssmi"}),
            "judgments.observers.simulated[2].metric: 'ssmi' is not a registered metric",
        ),
        (
            lambda c: c["judgments"]["observers"]["simulated"].append({"metric": "ssim"}),
            "judgments.observers.simulated[2]: observer name 'ssim' is used twice",
        ),
        (
            lambda c: c["judgments"]["observers"]["simulated"][1]["calibration"].update(p_correct=0.5),
            "judgments.observers.simulated[1].calibration.p_correct: 0.5 is less than or equal to the minimum of 0.5",
        ),
        (
            lambda c: c["models"].update(exclude=[{"arch": "vgg16bn", "colour": 1}]),
            "models.exclude[0].colour: unknown key 'colour'",
        ),
    ],
)
def test_bad_configs_name_the_key(mutate, expected):
    assert expected in _bad(mutate)


def test_all_problems_reported_at_once():
    def two(c):
        c["targets"]["n"] = -5
        c["device"] = "gpu"

    msg = _bad(two)
    assert "targets.n" in msg and "device" in msg


def test_catalog_lists_exactly_the_registered_names():
    from iriflow.archs import ARCHS
    from iriflow.catalog import ARCH_NAMES, METRIC_NAMES
    from iriflow.metrics import METRICS

    assert sorted(ARCHS) == list(ARCH_NAMES)
    assert sorted(METRICS) == list(METRIC_NAMES)


def test_unknown_metric_is_named():
    assert "iris.metric: 'psnr' is not a registered metric" in _bad(lambda c: c["iris"].update(metric="psnr"))


def test_observer_metrics_are_each_metric_once_in_config_order():
    simulated = [{"metric": "fsim"}, {"name": "strict", "metric": "ssim"}, {"name": "lax", "metric": "fsim"}]
    assert observer_metrics({"judgments": {"observers": {"simulated": simulated}}}) == ["fsim", "ssim"]


def test_iri_run_options_are_no_iri_setting():
    cfg = validate_config(load("config.yaml"), SCHEMA)
    assert iri_run_options(cfg) == {"max_batch": 1024, "log_every": 100, "distances": ["ssim", "fsim"]}
    assert not {"max_batch", "log_every", "distances"} & set(iri_settings(cfg, "regfree"))
