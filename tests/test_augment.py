import torch

from iriflow.augment import AUGMENTATIONS, build_augmentation, colour_jitter, gaussian_blur

DEFS = {
    "none": {"kind": "none"},
    "shift": {"kind": "standard", "crop_pad": 3, "flip": False, "jitter": 0.0, "rotation": 0.0},
    "standard": {"kind": "standard", "crop_pad": 4, "flip": True, "jitter": 0.25, "rotation": 2.0},
    "simclr": {"kind": "simclr_views"},
    "adv": {"kind": "adversarial", "base": "standard", "attack": {"norm": "l2", "eps": 1.0}},
}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registry_has_every_kind():
    assert set(AUGMENTATIONS) == {"none", "standard", "simclr_views", "adversarial"}


def test_none_is_identity_and_adversarial_keeps_its_attack():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(build_augmentation("none", DEFS)(x, gen()), x)
    adv = build_augmentation("adv", DEFS)
    assert adv.attack == {"norm": "l2", "eps": 1.0}
    assert torch.equal(adv(x, gen(3)), build_augmentation("standard", DEFS)(x, gen(3)))


def test_crop_padding_is_an_integer_shift_with_zero_fill():
    x = torch.rand(16, 1, 12, 12) + 0.1  # strictly positive pixels
    out = build_augmentation("shift", DEFS)(x, gen())
    for i in range(16):
        # every output is the input shifted by whole pixels: find the shift
        found = False
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                shifted = torch.zeros_like(x[i])
                ys, yd = (slice(max(0, -dy), 12 - max(0, dy)), slice(max(0, dy), 12 - max(0, -dy)))
                xs, xd = (slice(max(0, -dx), 12 - max(0, dx)), slice(max(0, dx), 12 - max(0, -dx)))
                shifted[:, ys, xs] = x[i][:, yd, xd]
                if torch.allclose(out[i], shifted, atol=1e-5):
                    found = True
        assert found, f"sample {i} is not an integer shift"


def test_augmentations_are_seeded_batched_and_in_range():
    x = torch.rand(32, 3, 16, 16)
    for name in ("standard", "simclr"):
        aug = build_augmentation(name, DEFS)
        a, b, c = aug(x, gen(1)), aug(x, gen(1)), aug(x, gen(2))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
        # per-sample randomness: samples are not all transformed alike
        assert not torch.allclose((a - x)[0], (a - x)[1])


def test_grayscale_inputs_are_safe():
    x = torch.rand(8, 1, 28, 28)
    for name in ("standard", "simclr"):
        out = build_augmentation(name, DEFS)(x, gen())
        assert out.shape == (8, 1, 28, 28) and torch.isfinite(out).all()


def test_colour_jitter_factors():
    x = torch.full((2, 3, 4, 4), 0.5)
    x[:, 0] = 0.2
    # with zero strength the jitter is the identity
    assert torch.allclose(colour_jitter(x, (0, 0, 0, 0), gen()), x, atol=1e-6)
    # saturation 0 -> 1 range: the grey value is kept
    out = colour_jitter(x, (0.0, 0.0, 1.0, 0.0), gen())
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    out_grey = (out * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)
    assert torch.allclose(grey, out_grey, atol=1e-5)


def test_blur_preserves_mean_and_smooths():
    x = torch.zeros(2, 1, 20, 20)
    x[:, :, 10, 10] = 1.0
    out = gaussian_blur(x, torch.tensor([1.0, 1.0]), torch.tensor([True, False]))
    assert torch.equal(out[1], x[1])  # not applied
    assert out[0].max() < 0.5 and abs(out[0].sum().item() - 1.0) < 1e-4
