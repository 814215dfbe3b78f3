"""HeatmapCodec: one object encodes and decodes, round-trips through its record, refuses bad pairs."""

from __future__ import annotations

import numpy as np
import pytest

from rsn_lightning.codec import CodecError, HeatmapCodec


@pytest.mark.parametrize("target_type,decode", [("kernel", "authors"), ("unbiased", "dark"), ("gaussian", "sign")])
def test_encode_then_decode_finds_the_joints(target_type, decode):
    codec = HeatmapCodec((192, 256), target_type=target_type, decode=decode)
    joints = np.array([[40.3, 61.7], [100.0, 200.5], [151.2, 20.9]])
    targets, weight = codec.encode(joints, np.ones(3))
    assert targets.shape == (5, 3, 64, 48) and weight.tolist() == [1, 1, 1]
    coords, scores = codec.decode(targets[-1][None])
    # the kernel targets quantise to the 4-pixel cell (+ the quarter shift); DARK recovers sub-cell positions
    tol = 1.0 if target_type == "unbiased" else 4.0
    assert np.abs(coords[0] - joints).max() < tol
    # score = raw map value / 255 + 0.5 at the decoded cell: 1.5 on the peak cell of cell-centred targets
    assert (scores > 1.3).all() and (scores <= 1.5 + 1e-6).all()
    if target_type != "unbiased":
        assert np.allclose(scores, 1.5)


def test_record_round_trip_is_plain_values():
    codec = HeatmapCodec((96, 128), target_type="unbiased", decode="dark", sigma=2.0, blur_kernel=9)
    record = codec.to_dict()
    assert all(isinstance(v, (list, str, int, float)) for v in record.values())
    assert HeatmapCodec.from_dict(record) == codec
    assert codec.replace(blur_kernel=5).blur_kernel == 5


@pytest.mark.parametrize("decode", ["authors", "sign"])
def test_unbiased_targets_with_a_quarter_shift_decoder_are_refused(decode):
    with pytest.raises(CodecError, match="codec.target_type='unbiased' cannot be decoded with"):
        HeatmapCodec(target_type="unbiased", decode=decode)


@pytest.mark.parametrize("kwargs,key", [
    ({"decode": "argmax"}, "codec.decode"), ({"target_type": "x"}, "codec.target_type"),
    ({"input_size": (190, 256)}, "codec.input_size"), ({"blur_kernel": 4}, "codec.blur_kernel"),
    ({"kernels": (15, 10)}, "codec.kernels"),
])
def test_bad_values_name_their_key(kwargs, key):
    with pytest.raises(CodecError, match=key):
        HeatmapCodec(**kwargs)


def test_heatmaps_of_another_size_are_refused():
    with pytest.raises(CodecError, match="heatmaps of size"):
        HeatmapCodec((192, 256)).decode(np.zeros((1, 17, 32, 24)))
