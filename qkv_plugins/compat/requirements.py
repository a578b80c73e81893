"""The lowest torch the package runs on, checked at import."""
import torch

# torch.serialization.add_safe_globals (2.4) lets mmengine checkpoints load
# with weights_only=True, which every checkpoint path here enforces.
MIN_TORCH = (2, 4)


def torch_version() -> tuple:
    return tuple(int(v) for v in torch.__version__.split('+')[0].split('.')[:2])


def check_torch() -> None:
    """ImportError naming the requirement unless torch >= MIN_TORCH."""
    if torch_version() < MIN_TORCH:
        raise ImportError(
            f'qkv_plugins needs torch >= {".".join(map(str, MIN_TORCH))} '
            '(weights-only loading of mmengine checkpoints needs '
            f'torch.serialization.add_safe_globals); found torch '
            f'{torch.__version__}')
