"""torch.hub entry points: ``torch.hub.load(DIR, "jepa_wm_pusht", source="local")`` → ``(model, preprocessor)``.

DIR is this repository's folder. Every function takes ``checkpoint=`` / ``encoder_checkpoint=`` (local files or
URLs instead of the release's), ``stats=`` / ``dataset=`` (normalisation where the release has none), ``num_heads=``
(the attention head count, which no tensor records; default: the release's) and ``device=``; see
``jepa_wms.hub.load``.
"""

dependencies = ["torch", "yaml"]


def _entry(name: str):
    def load_model(**kwargs):
        from jepa_wms.hub import load

        return load(name, **kwargs)

    load_model.__name__ = name
    load_model.__doc__ = f"The released {name} world model as (model, preprocessor)."
    return load_model


jepa_wm_droid = _entry("jepa_wm_droid")
jepa_wm_metaworld = _entry("jepa_wm_metaworld")
jepa_wm_pusht = _entry("jepa_wm_pusht")
jepa_wm_pointmaze = _entry("jepa_wm_pointmaze")
jepa_wm_wall = _entry("jepa_wm_wall")
dino_wm_droid = _entry("dino_wm_droid")
dino_wm_metaworld = _entry("dino_wm_metaworld")
dino_wm_pusht = _entry("dino_wm_pusht")
dino_wm_pointmaze = _entry("dino_wm_pointmaze")
dino_wm_wall = _entry("dino_wm_wall")
vjepa2_ac_droid = _entry("vjepa2_ac_droid")
vjepa2_ac_oss = _entry("vjepa2_ac_oss")
