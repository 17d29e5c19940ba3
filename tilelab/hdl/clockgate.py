"""Clock gating: a clock domain that ticks only on the cycles its unit has work.

A gated domain's clock is the parent clock ANDed with an enable that is captured on the parent
clock's falling edge (a clock-gating cell: the enable cannot change while the clock is high, so
the gated clock has no glitches). A unit clocked by it keeps every register while the enable is
low, as in hardware, and an event-driven or compiled simulator skips the unit's logic on those
cycles: Verilator evaluates a domain's sequential logic, and the combinational logic that reads
only its registers, only when its clock rises. That makes simulation cost follow activity: an
idle router of a large mesh costs nearly nothing.

The enable must be high on every cycle in which any of the unit's registers could change (its
inputs are valid, it holds state that is still moving, its reset is asserted). The caller
computes it from the unit's own status outputs and inputs; :func:`gated_domain` adds the reset.
"""

from amaranth.hdl import ClockDomain, ClockSignal, ResetSignal, Signal

__all__ = ["gated_domain"]


def gated_domain(m, name, enable, *, domain="sync"):
    """Add to ``m`` a local clock domain ``name`` clocked by ``domain`` on cycles where ``enable`` is high.

    Parameters
    ----------
    m : Module
        The module the domain (and its gating cell) belongs to; it is local to ``m`` and its
        submodules.
    name : str
        The new domain (the gating cell's falling-edge domain is ``name + "_gate"``); its name
        must differ from every domain of ``m``'s parents and submodules.
    enable : Value
        High on every cycle in which the domain's registers may change; it must be a function of
        signals that change only at the rising edge of ``domain`` (registers of ``domain``, or of
        other domains derived from it). The domain's reset enables it as well.
    domain : str
        The parent domain: the gated domain shares its clock edges and its reset.

    Returns
    -------
    ClockDomain
        The gated domain.
    """
    latch = ClockDomain(f"{name}_gate", clk_edge="neg", reset_less=True, local=True)
    m.domains += latch
    m.d.comb += latch.clk.eq(ClockSignal(domain))
    on = Signal(init=1, name=f"{name}_clk_en")
    m.d[latch.name] += on.eq(enable | ResetSignal(domain))
    cd = ClockDomain(name, local=True)
    m.domains += cd
    m.d.comb += [cd.clk.eq(ClockSignal(domain) & on), cd.rst.eq(ResetSignal(domain))]
    return cd
