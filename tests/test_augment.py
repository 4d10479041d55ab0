"""Batch augmentation keeps picture and flow in register and flow in camera pixels."""
import torch

from training.augment import AugmentConfig, augment


def _batch(b=4, h=32, w=48):
    frame = torch.zeros(b, 3, h, w)
    flow = torch.zeros(b, 2, h, w)
    frame[:, :, 8:16, 4:12] = 1.0  # a bright square, moving right at 5 px
    flow[:, 0, 8:16, 4:12] = 5.0
    return frame, flow, torch.full((b, 100), 0.1)


def test_mirror_moves_picture_and_flow_together_and_negates_u():
    frame, flow, wave = _batch()
    f, fl, wv = augment(frame, flow, wave, AugmentConfig(flip=1.0, crop=1.0, brightness=0.0, gain_db=0.0))
    assert torch.equal(f, frame.flip(-1))
    assert torch.equal(fl[:, 0], -flow[:, 0].flip(-1)) and torch.equal(fl[:, 1], flow[:, 1].flip(-1))
    assert torch.equal(wv, wave)


def test_crop_keeps_the_moving_region_on_the_bright_region_and_values_in_pixels():
    frame, flow, wave = _batch()
    g = torch.Generator().manual_seed(0)
    f, fl, _ = augment(frame, flow, wave, AugmentConfig(flip=0.0, crop=0.6, brightness=0.0, gain_db=0.0), g)
    moving = fl[:, 0] > 2.5
    bright = f[:, 0] > 0.5
    assert (moving == bright).float().mean() > 0.97
    assert fl.max() <= 5.0 + 1e-5 and torch.isclose(fl.max(), torch.tensor(5.0))


def test_gain_and_brightness_stay_in_range_and_vary():
    frame, flow, wave = _batch(b=64)
    f, _, wv = augment(frame, flow, wave, AugmentConfig(flip=0.0, crop=1.0), torch.Generator().manual_seed(1))
    ratios = wv[:, 0] / 0.1
    assert ratios.min() >= 10 ** (-6 / 20) - 1e-6 and ratios.max() <= 10 ** (6 / 20) + 1e-6
    assert ratios.std() > 0.1 and 0 <= f.min() and f.max() <= 1


def test_a_box_mask_gets_the_pictures_mirror_and_crop_and_stays_binary():
    frame, flow, wave = _batch(b=16)
    mask = (frame[:, 0] > 0.5).float()
    g = torch.Generator().manual_seed(3)
    f, _, _, m = augment(frame, flow, wave, AugmentConfig(flip=0.5, crop=0.6, brightness=0.0), g, mask=mask)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert ((m > 0.5) == (f[:, 0] > 0.5)).float().mean() > 0.97
    g = torch.Generator().manual_seed(3)
    f2, fl2, wv2 = augment(frame, flow, wave, AugmentConfig(flip=0.5, crop=0.6, brightness=0.0), g)
    assert torch.equal(f, f2)  # the mask changes nothing else
