"""See inside a step: an op-level profiler (`mt.profile()`), FLOP counts per op, MINITRANSFER_DEBUG=1|2."""
from minitransfer.profiler.costs import op_flops
from minitransfer.profiler.peak import measured_peak_flops
from minitransfer.profiler.session import Profile, debug_from_environment, profile

debug_from_environment()  # MINITRANSFER_DEBUG is read once, when minitransfer is imported

__all__ = ["profile", "Profile", "op_flops", "measured_peak_flops"]
