"""Text model specs: Keras-tutorial-style layer lists such as "conv32 maxpool drop0.25 flatten dense256 drop0.5".

Grammar (tokens separated by spaces or commas, case-insensitive; full reference in docs/model-spec.md):

    conv<N>[x<K>][s<S>]   Conv2d to N channels, K x K kernel (default 3), stride S (default 1), padding (K-1)//2
                          ("same" for odd K at stride 1), followed by the current activation.
    dense<N>              Linear to N features, followed by the current activation. On an image it flattens first.
    bn                    BatchNorm (2d on images, 1d on vectors). Right after conv/dense it goes BEFORE that
                          layer's activation (conv -> BN -> ReLU), and the conv then has no bias.
    relu gelu silu tanh sigmoid elu leakyrelu
                          Right after a conv/dense (or its bn): replaces that layer's activation.
                          Anywhere else: inserts an activation layer.
    act=<name>|act=none   Sets the activation that following conv/dense layers get (default relu).
    maxpool[<K>][s<S>]    Max pooling, window K (default 2), stride S (default K). avgpool likewise.
    drop<P>               Dropout with probability P in [0, 1). sdrop<P>: Dropout2d (whole channels; images only).
                          A drop<P> that is the last token and comes after a vector becomes the head dropout.
    flatten | gap | gmp   Image -> vector: flatten all C*H*W values / global average pool / global max pool.

A spec that never turns the image into a vector gets a global average pool appended. The linear head
(features -> classes) is added by SortnetModel, so the spec describes only the body.

Usage:
    body, num_features, head_dropout = build_spec_body("conv32 maxpool flatten dense128 drop0.5", 1, 28)
"""
from __future__ import annotations

import difflib
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from torch import nn

from sortnet.errors import SortnetError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leakyrelu": nn.LeakyReLU,  # negative slope 0.01 (PyTorch default)
}
SIMPLE = ("bn", "flatten", "gap", "gmp")

# One regex per numbered layer kind; names are the Layer fields they fill.
_PATTERNS = {
    "conv": re.compile(r"conv(?P<n>\d+)(?:x(?P<k>\d+))?(?:s(?P<s>\d+))?"),
    "dense": re.compile(r"dense(?P<n>\d+)"),
    "maxpool": re.compile(r"maxpool(?P<k>\d+)?(?:s(?P<s>\d+))?"),
    "avgpool": re.compile(r"avgpool(?P<k>\d+)?(?:s(?P<s>\d+))?"),
    "drop": re.compile(r"drop(?P<p>\d*\.?\d+)"),
    "sdrop": re.compile(r"sdrop(?P<p>\d*\.?\d+)"),
    "act=": re.compile(r"act=(?P<act>[a-z]+)"),
}
# What each keyword needs, for "conv needs a width, e.g. conv32" style hints.
_NEEDS = {
    "conv": "conv needs a width (output channels), e.g. conv32 or conv64x5s2",
    "dense": "dense needs a width (output features), e.g. dense128",
    "drop": "drop needs a probability, e.g. drop0.25",
    "sdrop": "sdrop needs a probability, e.g. sdrop0.1",
    "act=": "act= needs an activation name or none, e.g. act=gelu",
    "maxpool": "maxpool takes an optional window and stride, e.g. maxpool, maxpool3 or maxpool3s2",
    "avgpool": "avgpool takes an optional window and stride, e.g. avgpool or avgpool3s2",
}
_EXAMPLES = {"conv": "conv32", "dense": "dense128", "drop": "drop0.25", "sdrop": "sdrop0.1", "act=": "act=gelu"}
KEYWORDS = sorted(set(_PATTERNS) | set(SIMPLE) | set(ACTIVATIONS))
# Names from Keras / PyTorch tutorials, used only to suggest the spec keyword.
_ALIASES = {
    "batchnorm": "bn", "batchnormalization": "bn", "dropout": "drop", "fc": "dense", "linear": "dense",
    "maxpooling": "maxpool", "avgpooling": "avgpool", "averagepooling": "avgpool", "pool": "maxpool",
    "globalaveragepooling": "gap", "globalmaxpooling": "gmp", "swish": "silu", "conv2d": "conv",
}


class SpecError(SortnetError, ValueError):
    """A spec string that cannot be parsed or built; the message names the token and its position."""


@dataclass(frozen=True)
class Layer:
    """One parsed token. pos is 1-based; n = width, k = kernel/window, s = stride, p = dropout, act = name."""

    kind: str  # conv dense maxpool avgpool drop sdrop act= bn flatten gap gmp, or an activation name
    text: str
    pos: int
    n: int = 0
    k: int = 0
    s: int = 0
    p: float = 0.0
    act: str = ""


def _split(spec: str) -> list[str]:
    return spec.lower().replace(",", " ").split()


def _where(tokens: list[str], pos: int) -> str:
    """The spec with a caret line under token pos (1-based), for error messages."""
    line = " ".join(tokens)
    start = sum(len(t) + 1 for t in tokens[: pos - 1])
    return f"\n  {line}\n  {' ' * start}{'^' * len(tokens[pos - 1])}"


def _unknown(token: str, pos: int, tokens: list[str]) -> SpecError:
    """Error for a token that is no layer: suggest the closest keyword, keeping the user's numbers."""
    word = re.split(r"(?<=[a-z=])(?=\d)", token)[0]  # "cnv32" -> "cnv", "conv2d" -> "conv"
    suffix = token[len(word):]
    if word in _NEEDS:  # right keyword, wrong or missing numbers
        return SpecError(f"unknown layer '{token}' at position {pos}: did you mean "
                         f"'{_EXAMPLES.get(word, word)}'? {_NEEDS[word]}{_where(tokens, pos)}")
    close = difflib.get_close_matches(word, KEYWORDS, n=1, cutoff=0.6)
    guess = _ALIASES.get(word) or (close[0] if close else "")
    hint = "."
    if guess:
        keeps_number = guess in _PATTERNS and guess != "act=" and suffix
        hint = f": did you mean '{guess + suffix if keeps_number else _EXAMPLES.get(guess, guess)}'?"
        if guess in _EXAMPLES and not suffix:
            hint += f" {_NEEDS[guess]}."
    return SpecError(f"unknown layer '{token}' at position {pos}{hint} "
                     f"Known layers: {', '.join(KEYWORDS)}.{_where(tokens, pos)}")


def _parse_token(token: str, pos: int, tokens: list[str]) -> Layer:
    if token in SIMPLE or token in ACTIVATIONS:
        return Layer(token, token, pos)
    for kind, pattern in _PATTERNS.items():
        m = pattern.fullmatch(token)
        if m is None:
            continue
        g = m.groupdict()
        if any(g.get(key) is not None and int(g[key]) < 1 for key in ("n", "k", "s")):
            raise SpecError(f"'{token}' at position {pos}: widths, kernels and strides must be at least 1"
                            f"{_where(tokens, pos)}")
        layer = Layer(kind, token, pos, n=int(g.get("n") or 0), k=int(g.get("k") or 0),
                      s=int(g.get("s") or 0), p=float(g.get("p") or 0.0), act=g.get("act") or "")
        _check_values(layer, tokens)
        return layer
    raise _unknown(token, pos, tokens)


def _check_values(layer: Layer, tokens: list[str]) -> None:
    """Checks that need no shape: 0 <= p < 1 and known act= names."""
    where = f"'{layer.text}' at position {layer.pos}"
    if layer.kind in ("drop", "sdrop") and not 0.0 <= layer.p < 1.0:
        raise SpecError(f"{where}: dropout probability must be in [0, 1), e.g. drop0.5 for 50%"
                        f"{_where(tokens, layer.pos)}")
    if layer.kind == "act=" and layer.act not in ACTIVATIONS and layer.act not in ("none", "linear"):
        close = difflib.get_close_matches(layer.act, list(ACTIVATIONS), n=1)
        hint = f" did you mean 'act={close[0]}'?" if close else ""
        raise SpecError(f"{where}: unknown activation '{layer.act}';{hint} choose one of "
                        f"{', '.join(ACTIVATIONS)} or none{_where(tokens, layer.pos)}")


def parse_spec(spec: str) -> list[Layer]:
    """Tokens of spec as Layers (syntax and number ranges checked; shapes are checked by build_spec_body)."""
    tokens = _split(spec)
    if not tokens:
        raise SpecError("empty model spec: give layers such as 'conv32 maxpool flatten dense128'")
    return [_parse_token(t, i, tokens) for i, t in enumerate(tokens, start=1)]


def looks_like_spec(text: str) -> bool:
    """True when text is meant as a spec: it has several tokens, or its one token is a valid layer."""
    tokens = _split(text)
    if len(tokens) > 1:
        return True
    try:
        return len(tokens) == 1 and _parse_token(tokens[0], 1, tokens) is not None
    except SpecError:
        return False


_NEEDS_IMAGE = "needs an image, but the spec is already a vector here; move it before flatten/gap/gmp"


@dataclass
class _Builder:
    """Walks the layers tracking the shape: (C, H, W) while an image, F once a vector (image is False)."""

    tokens: list[str]
    c: int
    h: int
    w: int
    image: bool = True
    act: str = "relu"  # what conv/dense get; "none" for linear layers
    pending: str | None = None  # activation owed by the last conv/dense, not yet emitted
    modules: list[tuple[str, nn.Module]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def features(self) -> int:
        return self.c * self.h * self.w if self.image else self.c

    def add(self, kind: str, module: nn.Module) -> None:
        """Append module named like conv1, bn2, relu3 (stable names: the spec rebuilds the same state_dict)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.modules.append((f"{kind}{self.counts[kind]}", module))

    def flush(self) -> None:
        """Emit the activation a conv/dense still owes (deferred so that a following bn can go before it)."""
        if self.pending is not None and self.pending not in ("none", "linear"):
            self.add(self.pending, ACTIVATIONS[self.pending]())
        self.pending = None

    def fail(self, layer: Layer, why: str) -> SpecError:
        return SpecError(f"{layer.text} at position {layer.pos} {why}{_where(self.tokens, layer.pos)}")

    def to_vector(self, kind: str) -> None:
        """Image -> vector by flatten / gap / gmp."""
        if kind == "flatten":
            self.add("flatten", nn.Flatten())
            self.c, self.image = self.features, False
            return
        pool = nn.AdaptiveAvgPool2d(1) if kind == "gap" else nn.AdaptiveMaxPool2d(1)
        self.add(kind, nn.Sequential(pool, nn.Flatten()))
        self.image = False

    def shrink(self, layer: Layer, k: int, s: int, pad: int) -> None:
        """New H, W after a k x k window with stride s and padding pad; error if it would drop below 1 px."""
        h = (self.h + 2 * pad - k) // s + 1
        w = (self.w + 2 * pad - k) // s + 1
        if h < 1 or w < 1:
            raise self.fail(layer, f"would shrink {self.h}x{self.w} below 1 px; use a larger --img-size, "
                                   "fewer pools/strides or a smaller kernel")
        self.h, self.w = h, w


def _conv(b: _Builder, layer: Layer, bias: bool) -> None:
    k, s = layer.k or 3, layer.s or 1
    pad = (k - 1) // 2  # "same" size for odd k at stride 1
    b.shrink(layer, k, s, pad)
    b.add("conv", nn.Conv2d(b.c, layer.n, k, stride=s, padding=pad, bias=bias))
    b.c, b.pending = layer.n, b.act


def _dense(b: _Builder, layer: Layer, bias: bool) -> None:
    if b.image:  # dense on an image flattens it first, like Keras MLP tutorials' Flatten()
        b.to_vector("flatten")
    b.add("dense", nn.Linear(b.c, layer.n, bias=bias))
    b.c, b.pending = layer.n, b.act


def _pool(b: _Builder, layer: Layer) -> None:
    if not b.image:
        raise b.fail(layer, _NEEDS_IMAGE)
    k = layer.k or 2
    b.shrink(layer, k, layer.s or k, 0)
    b.add("pool", nn.MaxPool2d(k, layer.s or k) if layer.kind == "maxpool" else nn.AvgPool2d(k, layer.s or k))


def _step(b: _Builder, layer: Layer, next_kind: str) -> None:
    """Apply one layer to the builder (pending activation already handled by the caller)."""
    kind = layer.kind
    if kind in ("conv", "flatten", "gap", "gmp", "sdrop") and not b.image:
        raise b.fail(layer, _NEEDS_IMAGE)
    if kind == "conv":
        _conv(b, layer, bias=next_kind != "bn")  # BN's shift makes a conv bias redundant
    elif kind == "dense":
        _dense(b, layer, bias=next_kind != "bn")
    elif kind in ("maxpool", "avgpool"):
        _pool(b, layer)
    elif kind in ("flatten", "gap", "gmp"):
        b.to_vector(kind)
    elif kind == "bn":
        b.add("bn", nn.BatchNorm2d(b.c) if b.image else nn.BatchNorm1d(b.c))
    elif kind == "drop":
        b.add("drop", nn.Dropout(layer.p))  # element-wise, as Keras Dropout on conv maps
    elif kind == "sdrop":
        b.add("drop", nn.Dropout2d(layer.p))
    elif kind == "act=":
        b.act = layer.act
    else:  # a bare activation not owned by a conv/dense: its own layer
        b.add(kind, ACTIVATIONS[kind]())


def build_spec_body(spec: str, in_channels: int, img_size: int) -> tuple[nn.Sequential, int, float]:
    """(body, num_features, head_dropout) for spec on [B, in_channels, img_size, img_size] normalized input."""
    layers = parse_spec(spec)
    b = _Builder(_split(spec), in_channels, img_size, img_size)
    head_dropout = 0.0
    last = layers[-1]
    if last.kind == "drop" and len(layers) > 1 and _ends_in_vector(layers[:-1]):
        head_dropout, layers = last.p, layers[:-1]  # the final drop<P> is SortnetModel's head dropout
    for i, layer in enumerate(layers):
        if layer.kind in ACTIVATIONS and b.pending is not None:
            b.pending = layer.kind  # replaces the activation of the conv/dense just before
            b.flush()  # emitted here, so a bn written after it stays after it
            continue
        if layer.kind != "bn":  # a bn sits between a conv/dense and its activation
            b.flush()
        _step(b, layer, layers[i + 1].kind if i + 1 < len(layers) else "")
    b.flush()
    if b.image:  # the spec must end in a vector for the linear head
        b.to_vector("gap")
    return nn.Sequential(OrderedDict(b.modules)), b.features, head_dropout


def _ends_in_vector(layers: list[Layer]) -> bool:
    """Whether the image has become a vector by the end of layers (flatten/gap/gmp or a dense)."""
    return any(layer.kind in ("flatten", "gap", "gmp", "dense") for layer in layers)
