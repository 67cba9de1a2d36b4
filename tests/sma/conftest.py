"""Fixtures of the SIP media application tests: the PSTN lab of tests/pstn (carriers,
pjsua2 callers, tones) is shared, see flowlab.py."""

from flowlab import load_pstn

_pstn = load_pstn()
pstn_tones = _pstn.pstn_tones
pstn_tools = _pstn.pstn_tools
pstn_lab = _pstn.pstn_lab
