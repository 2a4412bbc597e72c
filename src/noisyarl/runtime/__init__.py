"""Where a step runs: devices, precision and memory format, processes under torchrun.

Below both :mod:`noisyarl.methods` (a defence's ``train_step`` takes a :class:`StepContext`)
and :mod:`noisyarl.training` (the loop builds it), so neither imports the other for it.
"""

from noisyarl.runtime.context import PRECISIONS, StepContext
from noisyarl.runtime.device import describe_device, resolve_channels_last, resolve_device
from noisyarl.runtime.distributed import DistributedEnv, current_env

__all__ = ["PRECISIONS", "DistributedEnv", "StepContext", "current_env", "describe_device",
           "resolve_channels_last", "resolve_device"]
