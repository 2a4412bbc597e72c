"""noisyarl: noisy adversarial representation learning for image obfuscation.

The package follows the flow data -> obfuscator -> adversarial training -> attacks -> report:
``noisyarl.data``, ``noisyarl.models``, ``noisyarl.methods``, ``noisyarl.training``,
``noisyarl.attacks`` and ``noisyarl.evaluation``.
"""

__version__ = "0.1.0"
