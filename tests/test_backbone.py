"""SSL backbone: fairseq layer semantics, both loaders, truncation, batching, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.tiny_models import (
    ERAS,
    HIDDEN,
    NUM_LAYERS,
    one_torch_thread,
    save_fairseq,
    save_hf,
    tiny_model,
)
from w2vu.errors import W2vuError
from w2vu.features.backbone import Backbone, SslBackbone, load_backbone
from w2vu.features.mfcc import MfccBackbone

LENGTHS = (16000, 12345, 8000, 3333, 400, 399, 0)


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def waves() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.3 * rng.standard_normal(n) + 0.05).astype(np.float32) for n in LENGTHS]


@pytest.fixture(scope="module", params=[True, False], ids=["preLN-layernorm", "postLN-groupnorm"])
def model(request):
    return tiny_model(stable=request.param, seed=3)


@pytest.fixture(scope="module")
def hf_folder(model, tmp_path_factory):
    return save_hf(model, tmp_path_factory.mktemp("hf") / "tiny", do_normalize=True)


def fairseq_layer(model, wave: np.ndarray, layer: int, normalize: bool) -> np.ndarray:
    """fairseq's `layer=L` computed by hand: blocks 0..L, no final encoder norm afterwards."""
    x = torch.from_numpy(wave)[None]
    if normalize:
        x = F.layer_norm(x, x.shape[1:], eps=1e-5)
    with torch.inference_mode():
        h, _ = model.feature_projection(model.feature_extractor(x).transpose(1, 2))
        h = h + model.encoder.pos_conv_embed(h)
        if not model.config.do_stable_layer_norm:
            h = model.encoder.layer_norm(h)
        for block in model.encoder.layers[: layer + 1]:
            h = block(h)
    return h[0].numpy()


def full_hidden_states(model, wave: np.ndarray, normalize: bool):
    x = torch.from_numpy(wave)[None]
    if normalize:
        x = F.layer_norm(x, x.shape[1:], eps=1e-5)
    with torch.inference_mode():
        return model(x, output_hidden_states=True)


@pytest.mark.parametrize("layer", range(NUM_LAYERS))
def test_hf_folder_gives_fairseq_layer(model, hf_folder, waves, layer):
    backbone = load_backbone(hf_folder, layer, device="cpu")
    assert backbone.normalize  # from preprocessor_config.json
    assert len(backbone.model.encoder.layers) == layer + 1  # later blocks are never run
    feats = backbone.extract(waves[:1])[0]
    want = fairseq_layer(model, waves[0], layer, normalize=True)
    np.testing.assert_allclose(feats, want, atol=1e-5, rtol=0)
    out = full_hidden_states(model, waves[0], normalize=True)
    if layer < NUM_LAYERS - 1:  # fairseq layer=L ≡ HF hidden_states[L+1] (reference §7)
        np.testing.assert_allclose(feats, out.hidden_states[layer + 1][0].numpy(), atol=1e-5,
                                   rtol=0)
    elif model.config.do_stable_layer_norm:  # the last layer comes without the final norm
        assert np.abs(feats - out.last_hidden_state[0].numpy()).max() > 1e-2


@pytest.mark.parametrize("era", ERAS)
def test_fairseq_pt_equals_hf_folder(model, hf_folder, waves, tmp_path, era):
    pt = save_fairseq(model, tmp_path / "tiny.pt", era=era, normalize=True)
    layer = NUM_LAYERS - 2
    from_pt = load_backbone(pt, layer, device="cpu")
    from_hf = load_backbone(hf_folder, layer, device="cpu")
    assert from_pt.normalize and from_pt.dim == from_hf.dim == HIDDEN
    for a, b in zip(from_pt.extract(waves), from_hf.extract(waves)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_batched_equals_one_at_a_time(model, hf_folder, waves):
    backbone = load_backbone(hf_folder, 2, device="cpu")
    assert backbone.batched == (model.config.feat_extract_norm == "layer")
    together = backbone.extract(waves)
    alone = [backbone.extract([w])[0] for w in waves]
    for wave, a, b in zip(waves, together, alone):
        assert a.shape == b.shape == (backbone.num_frames(len(wave)), HIDDEN)
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_frame_counts_and_interface(hf_folder, waves):
    backbone = load_backbone(hf_folder, 0, device="cpu")
    assert isinstance(backbone, Backbone) and isinstance(MfccBackbone(), Backbone)
    assert backbone.frame_rate == 50.0
    for n in (0, 399, 400, 719, 720, 16000, 16080, 160000):
        assert backbone.num_frames(n) == (0 if n < 400 else (n - 400) // 320 + 1)
    feats = backbone.extract(waves)
    assert [len(f) for f in feats] == [backbone.num_frames(n) for n in LENGTHS]


def test_normalize_flag_follows_model_and_can_be_switched_off(model, tmp_path, waves):
    folder = save_hf(model, tmp_path / "plain", do_normalize=False)
    assert not load_backbone(folder, 1, device="cpu").normalize
    pt = save_fairseq(model, tmp_path / "n.pt", normalize=True)
    backbone = load_backbone(pt, 1, device="cpu", normalize=False)
    assert not backbone.normalize
    np.testing.assert_allclose(backbone.extract(waves[:1])[0],
                               fairseq_layer(model, waves[0], 1, normalize=False), atol=1e-5)
    backbone.normalize = True
    np.testing.assert_allclose(backbone.extract(waves[:1])[0],
                               fairseq_layer(model, waves[0], 1, normalize=True), atol=1e-5)


def test_user_errors_name_the_problem(hf_folder, tmp_path, model):
    with pytest.raises(W2vuError, match=f"layer {NUM_LAYERS} does not exist.*0..{NUM_LAYERS - 1}"):
        load_backbone(hf_folder, NUM_LAYERS, device="cpu")
    pt = save_fairseq(model, tmp_path / "m.pt")
    with pytest.raises(W2vuError, match="layer -1 does not exist"):
        load_backbone(pt, -1, device="cpu")
    with pytest.raises(W2vuError, match="no such model"):
        load_backbone(tmp_path / "missing", 0, device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(W2vuError, match="no config.json"):
        load_backbone(tmp_path / "empty", 0, device="cpu")
    from safetensors.torch import load_file, save_file

    broken = save_hf(model, tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    del weights["encoder.layers.0.attention.q_proj.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(W2vuError, match="lacks 1 tensors.*layers.0.attention.q_proj.weight"):
        load_backbone(broken, 1, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(W2vuError, match="no CUDA GPU"):
            SslBackbone(tiny_model(True), 0, normalize=False, device="cuda")


def _tiny_family(kind: str):
    """Tiny random HuBERT / WavLM / data2vec-audio / CTC-head models (same sizes as above)."""
    import transformers as tf

    sizes = dict(hidden_size=HIDDEN, num_hidden_layers=NUM_LAYERS, num_attention_heads=2,
                 intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=4)
    torch.manual_seed(5)
    if kind == "hubert-preLN":
        return tf.HubertModel(tf.HubertConfig(**sizes, do_stable_layer_norm=True,
                                              feat_extract_norm="layer"))
    if kind == "wavlm-preLN":
        return tf.WavLMModel(tf.WavLMConfig(**sizes, do_stable_layer_norm=True,
                                            feat_extract_norm="layer", num_buckets=16,
                                            max_bucket_distance=50))
    if kind == "data2vec-audio":
        return tf.Data2VecAudioModel(tf.Data2VecAudioConfig(
            **{**sizes, "num_conv_pos_embeddings": 5}, conv_pos_kernel_size=5))
    return tf.Wav2Vec2ForCTC(tf.Wav2Vec2Config(**sizes, vocab_size=12))


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")  # WavLM in torch
@pytest.mark.parametrize("kind", ["hubert-preLN", "wavlm-preLN", "data2vec-audio", "ctc-head"])
def test_other_model_families_give_hidden_states(kind, tmp_path, waves):
    model = _tiny_family(kind).eval()
    folder = save_hf(model, tmp_path / kind, do_normalize=False)
    base = getattr(model, "wav2vec2", model)
    layer = 1
    backbone = load_backbone(folder, layer, device="cpu")
    assert len(backbone.model.encoder.layers) == layer + 1
    assert backbone.batched == (kind in ("hubert-preLN", "wavlm-preLN"))
    together = backbone.extract(waves[:3])
    with torch.inference_mode():
        for wave, feats in zip(waves[:3], together):
            out = base(torch.from_numpy(wave)[None], output_hidden_states=True)
            np.testing.assert_allclose(feats, out.hidden_states[layer + 1][0].numpy(),
                                       atol=1e-4, rtol=0)
