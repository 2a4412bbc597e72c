"""Attacks on a frozen client, one family behind :class:`~noisyarl.attacks.base.Attack`.

Every attack sees the client through a :class:`~noisyarl.attacks.view.ZView` (z exactly as the
server receives it), trains until its validation score stops improving
(:func:`~noisyarl.attacks.base.fit_until_plateau`; a model-free attack trains nothing) and
returns a typed :class:`~noisyarl.attacks.base.AttackResult` that round-trips to JSON. A new
attack is one module with an :class:`Attack` subclass and one line of :data:`ATTACKS`; a run
then runs it when the config lists it in ``attacks.extra`` (its own settings in
``attacks.options.NAME``).
"""

from noisyarl.attacks.base import (
    Attack,
    AttackResult,
    AttackSettings,
    ImageRecovery,
    LearningCurve,
    strongest_recovery,
)
from noisyarl.attacks.black_box import BlackBoxAttack
from noisyarl.attacks.distance_correlation import (
    DistanceCorrelationAttack,
    DistanceCorrelationResult,
)
from noisyarl.attacks.identity import IdentityAttack, IdentityResult
from noisyarl.attacks.leakage import LeakageAttack, LeakageResult, run_leakage_attack
from noisyarl.attacks.reconstruction import (
    ReconstructionAttack,
    ReconstructionResult,
    run_reconstruction_attack,
)
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.attacks.white_box import InversionResult, WhiteBoxAttack

#: name -> attack. The leakage attack's attacker models are in
#: :data:`noisyarl.attacks.attackers.ATTACKERS`.
ATTACKS: dict[str, type[Attack]] = {
    LeakageAttack.name: LeakageAttack,
    ReconstructionAttack.name: ReconstructionAttack,
    IdentityAttack.name: IdentityAttack,
    WhiteBoxAttack.name: WhiteBoxAttack,
    BlackBoxAttack.name: BlackBoxAttack,
    DistanceCorrelationAttack.name: DistanceCorrelationAttack,
}

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackResult",
    "AttackSettings",
    "AttackTarget",
    "DistanceCorrelationResult",
    "IdentityResult",
    "ImageRecovery",
    "InversionResult",
    "LeakageResult",
    "LearningCurve",
    "ReconstructionResult",
    "ZView",
    "run_leakage_attack",
    "run_reconstruction_attack",
    "strongest_recovery",
]
