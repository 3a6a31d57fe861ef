"""Model zoo: build a model from its architecture record, a plain dict that loads as data."""

from __future__ import annotations

import torch
import torch.nn as nn

from smoea.errors import SmoeaError
from smoea.models.resnet import build_cifar_mobilenetv2, build_cifar_resnet
from smoea.models.vgg import build_vgg, vgg_filters

MODELS = ("vgg14", "vgg16", "resnet20", "resnet56", "mobilenetv2", "torchvision:NAME")
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# torchvision classifiers with auxiliary heads: their training-mode outputs are tuples that a
# plain loss cannot read; the heads serve only training and are left out (docs/models.md says so)
AUX_HEADS = ("googlenet", "inception_v3")


def make_arch(name: str, width: float, num_classes: int, in_channels: int, image_size: int) -> dict:
    """The architecture record of a fresh model: everything needed to rebuild it."""
    _check_name(name)
    if not width > 0:
        raise SmoeaError(f"--width must be positive, got {width}")
    if name.startswith("torchvision:") and in_channels != 3:
        raise SmoeaError(f"{name} takes 3-channel images; this data set has {in_channels}")
    arch = {
        "name": name,
        "width": width,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
    }
    if name in ("vgg14", "vgg16"):
        arch["filters"] = vgg_filters(width)
        arch["hidden"] = max(1, round(512 * width)) if name == "vgg16" else None
    return arch


def _check_name(name) -> None:
    if name in MODELS[:-1]:
        return
    if isinstance(name, str) and name.startswith("torchvision:"):
        import torchvision

        if name.split(":", 1)[1] in torchvision.models.list_models(torchvision.models):
            return
        raise SmoeaError(f"unknown torchvision model {name!r} (see torchvision.models)")
    raise SmoeaError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def build_model(arch: dict) -> nn.Module:
    """Rebuild a model (fresh weights) from its architecture record, pruned shapes included."""
    name = arch.get("name")
    _check_name(name)
    if name in ("vgg14", "vgg16"):
        model = build_vgg(
            list(arch["filters"]),
            arch["num_classes"],
            arch["in_channels"],
            arch["image_size"],
            head="mlp" if name == "vgg16" else "linear",
            hidden=arch.get("hidden"),
        )
    elif name in ("resnet20", "resnet56"):
        depth = int(name[len("resnet") :])
        model = build_cifar_resnet(depth, arch["width"], arch["num_classes"], arch["in_channels"])
    elif name == "mobilenetv2":
        model = build_cifar_mobilenetv2(arch["width"], arch["num_classes"], arch["in_channels"])
    else:
        model = _torchvision_model(name.split(":", 1)[1], arch["num_classes"])
    if arch.get("shapes"):
        apply_shapes(model, arch["shapes"])
    if name.startswith("torchvision:"):
        _check_runs(model, arch)
    return model


def _torchvision_model(short: str, num_classes: int) -> nn.Module:
    import torchvision

    extra = {"aux_logits": False, "init_weights": True} if short in AUX_HEADS else {}
    return torchvision.models.get_model(short, weights=None, num_classes=num_classes, **extra)


def _check_runs(model: nn.Module, arch: dict) -> None:
    """One line, not a traceback, when a model cannot take the data's image size."""
    c, size = arch["in_channels"], arch["image_size"]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, c, size, size))
    except (RuntimeError, ValueError, AssertionError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SmoeaError(
            f"{arch['name']} cannot run on {c}x{size}x{size} images ({reason}); "
            "a larger --image-size may fit it"
        ) from None
    finally:
        model.train(was_training)


def load_pretrained(model: nn.Module, name: str) -> int:
    """torchvision's DEFAULT weights for `name` into `model`, but for layers whose shape differs
    (a head for other classes stays new). Returns how many tensors were left new."""
    if not name.startswith("torchvision:"):
        raise SmoeaError(f"--weights DEFAULT is for torchvision:NAME models, not {name}")
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name.split(":", 1)[1]).DEFAULT
        state = weights.get_state_dict(progress=False)
    except Exception as exc:  # offline, no such weights, a broken download
        raise SmoeaError(
            f"--weights DEFAULT: cannot fetch torchvision's weights for {name} "
            f"({type(exc).__name__}); is this machine offline? Pass --weights FILE instead"
        ) from None
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return len(own) - len(fitting)


def conv_filters(model: nn.Module) -> list[int]:
    """Output channels of every Conv2d, in module order."""
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


def module_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Channel counts of every convolution, norm and linear layer, by module name: with the
    model's name and options, all that a pruned model's file needs to rebuild it as data."""
    shapes = {}
    for name, m in model.named_modules():
        shape = module_shapes_of(m)
        if shape is not None:
            shapes[name] = shape
    return shapes


def apply_shapes(model: nn.Module, shapes: dict[str, list[int]]) -> None:
    """Replace layers whose saved channel counts differ with empty ones of the saved size."""
    for name, m in list(model.named_modules()):
        shape = shapes.get(name)
        if shape is None or shape == module_shapes_of(m):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _resized(m, shape))


def module_shapes_of(m: nn.Module) -> list[int] | None:
    if isinstance(m, nn.Conv2d):
        return [m.in_channels, m.out_channels, m.groups]
    if isinstance(m, NORMS):
        return [m.num_features]
    if isinstance(m, nn.Linear):
        return [m.in_features, m.out_features]
    return None


def _resized(m: nn.Module, shape: list[int]) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        cin, cout, groups = shape
        return nn.Conv2d(
            cin,
            cout,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            groups=groups,
            bias=m.bias is not None,
            padding_mode=m.padding_mode,
        )
    if isinstance(m, NORMS):
        return type(m)(shape[0], m.eps, m.momentum, m.affine, m.track_running_stats)
    return nn.Linear(shape[0], shape[1], bias=m.bias is not None)
