"""smoea: filter pruning of CNNs by sub-network multi-objective evolution."""

__version__ = "0.1.0"

from smoea.checkpoint import load, save  # noqa: E402
from smoea.data import TensorData  # noqa: E402
from smoea.pipeline import prune  # noqa: E402
from smoea.prune_config import PruneConfig  # noqa: E402
from smoea.train import TrainConfig  # noqa: E402

__all__ = ["load", "save", "prune", "PruneConfig", "TrainConfig", "TensorData", "__version__"]
