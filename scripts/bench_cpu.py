"""The CPU line every benchmark prints first: model, family, CPU count and the vector ISAs the
speed-ups depend on. The machine's generation changes between sessions (AMD Zen 1 / Zen 3,
Intel with AVX-512), so a ratio means nothing without it."""

import os


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
    except OSError:
        pass
    return info


def flags():
    return set(_cpuinfo().get("flags", "").split())


def has_vnni():
    f = flags()
    return "avx512_vnni" in f or "avx_vnni" in f


def describe():
    info = _cpuinfo()
    f = set(info.get("flags", "").split())
    isa = [x for x in ("avx2", "avx512f", "avx_vnni", "avx512_vnni", "amx_int8") if x in f]
    text = (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}; "
            f"{' '.join(isa) or 'no avx2'}), {os.cpu_count()} CPUs")
    if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "23":
        text += (" -- AMD Zen 1/2: ONE vector integer-multiply pipe (vs two FMA pipes), so int8 on"
                 " AVX2 is not expected to reach 2x fp32 here; the numbers below are what it measured")
    return text
