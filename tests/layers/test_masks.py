import pytest
import torch

from jepa_wms.layers import frame_causal_mask


def _brute_force(num_frames, tokens, past):
    nq, nk = num_frames * tokens, (past + num_frames) * tokens
    mask = torch.zeros(nq, nk, dtype=torch.bool)
    for i in range(nq):
        for j in range(nk):
            mask[i, j] = j // tokens <= past + i // tokens
    return mask


@pytest.mark.parametrize(("num_frames", "tokens", "past"), [(1, 1, 0), (4, 3, 0), (3, 5, 2), (1, 4, 3), (2, 1, 6)])
def test_matches_brute_force(num_frames, tokens, past):
    mask = frame_causal_mask(num_frames, tokens, past_frames=past)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, _brute_force(num_frames, tokens, past))


def test_full_attention_inside_a_frame_and_none_to_the_future():
    mask = frame_causal_mask(3, 2)
    assert mask[2:4, 2:4].all()  # frame 1 sees all of frame 1
    assert not mask[0:2, 2:].any()  # frame 0 sees nothing later
    assert mask[4:, :].all()  # the last frame sees everything


def test_invalid_sizes_raise():
    with pytest.raises(ValueError, match="num_frames"):
        frame_causal_mask(0, 4)
    with pytest.raises(ValueError, match="tokens_per_frame"):
        frame_causal_mask(2, 0)
    with pytest.raises(ValueError, match="past_frames"):
        frame_causal_mask(2, 2, past_frames=-1)
