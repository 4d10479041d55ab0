"""ResNet-18 trunk: torchvision's parameter names, strides, pooling and width."""
import pytest
import torch

from flowgrad.backbones import resnet18


def torchvision_resnet18_names():
    """Parameter/buffer names of torchvision.models.resnet18 (fc excluded), written out by structure."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    names = ["conv1.weight"] + [f"bn1.{b}" for b in bn]
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}."
            names += [p + "conv1.weight"] + [p + f"bn1.{b}" for b in bn]
            names += [p + "conv2.weight"] + [p + f"bn2.{b}" for b in bn]
            if layer > 1 and block == 0:
                names += [p + "downsample.0.weight"] + [p + f"downsample.1.{b}" for b in bn]
    return names


def test_parameter_names_and_count_match_torchvision():
    net = resnet18()
    assert list(net.state_dict()) == torchvision_resnet18_names()
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in fc
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 513_000


@pytest.mark.parametrize("stride,grid", [(2, 7), (1, 14)])
def test_layer4_stride(stride, grid):
    net = resnet18(layer4_stride=stride, pool="none", width=0.25)
    assert net(torch.rand(1, 3, 224, 224)).shape == (1, 128, grid, grid)


def test_pooling_and_channels():
    x = torch.rand(2, 4, 64, 64)
    net_avg = resnet18(in_channels=4, pool="avg", width=0.5).eval()
    net_max = resnet18(in_channels=4, pool="max", width=0.5).eval()
    net_max.load_state_dict(net_avg.state_dict())
    feats = net_avg.features(x)
    torch.testing.assert_close(net_avg(x), feats.mean(dim=(2, 3)))
    torch.testing.assert_close(net_max(x), feats.amax(dim=(2, 3)))
    assert net_avg.conv1.weight.shape == (32, 4, 7, 7)


def test_bad_options_and_inputs():
    with pytest.raises(ValueError, match="layer4_stride"):
        resnet18(layer4_stride=3)
    with pytest.raises(ValueError, match="pool"):
        resnet18(pool="mean")
    with pytest.raises(ValueError, match="expected input"):
        resnet18(in_channels=1, width=0.25)(torch.rand(1, 3, 64, 64))
