#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""meson install and the systemd units, checked offline (TAP).

`meson install --destdir TMP` of the build under test lays down exactly the
expected tree; the installed binaries run from it; the installed units pass
`systemd-analyze verify` in that tree as root (--root: their ExecStart
binaries must be there, every key known), with a broken copy of each
refused as a negative control; they stay hardened (`systemd-analyze
security --offline`) and carry the privileges docs/deploy.md lists.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("VIGIL_BUILD_DIR")
SYSTEMD_UNITS = "/lib/systemd/system"  # the host's own units (Debian's systemd package)
DEFENDER_CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE",
                 "CAP_DAC_READ_SEARCH", "CAP_KILL"}
# Exposure ceilings (0 best, 10 worst): a unit that loses a protection fails here.
EXPOSURE_MAX = {"vigil-console.service": 2.0, "vigil-defender.service": 4.5}

n = 0
failed = 0


def ok(cond, what, detail=""):
    global n, failed
    n += 1
    if cond:
        print(f"ok {n} - {what}")
    else:
        failed += 1
        print(f"not ok {n} - {what}")
        for line in str(detail).splitlines():
            print(f"#   {line}")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def options():
    out = run(["meson", "introspect", BUILD, "--buildoptions"])
    if out.returncode != 0:
        raise SystemExit(f"Bail out! meson introspect: {out.stderr}")
    return {o["name"]: o["value"] for o in json.loads(out.stdout)}


def expected_tree(o):
    """What the documented install rules give for this build's options."""
    prefix = o["prefix"]
    bindir = os.path.join(prefix, o["bindir"])
    etc = os.path.join(prefix, o["sysconfdir"])
    doc = os.path.join(prefix, o["datadir"], "doc", "vigil")
    unitdir = o["systemd_system_unit_dir"] or (
        SYSTEMD_UNITS if prefix == "/usr" else os.path.join(prefix, "lib/systemd/system"))
    sysusers = o["sysusers_dir"] or (
        "/usr/lib/sysusers.d" if prefix == "/usr" else os.path.join(prefix, "lib/sysusers.d"))
    docs = ["README.md", "api.md", "delivery.md", "deploy.md", "events.md", "learning.md",
            "link-analysis.md", "operations.md", "outputs.md", "performance.md",
            "reliability.md", "rules.md", "ui.md"]
    tree = {os.path.join(bindir, b) for b in ("vigil-console", "vigil-defender", "vigilctl")}
    tree |= {os.path.join(unitdir, u) for u in ("vigil-console.service", "vigil-defender.service")}
    tree |= {os.path.join(sysusers, "vigil.conf"), os.path.join(etc, "vigil/defender.conf.example")}
    tree |= {os.path.join(doc, d) for d in docs}
    return tree, bindir, etc, unitdir


def unit_keys(path):
    """The unit's [Service] settings as {key: [values]}."""
    keys, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
    return keys


def verify(root, units):
    return run(["systemd-analyze", "verify", f"--root={root}"] + units, cwd="/")


def main():
    if BUILD is None:
        print("Bail out! VIGIL_BUILD_DIR is not set (meson test sets it)")
        return 1
    if shutil.which("systemd-analyze") is None or not os.path.isdir(SYSTEMD_UNITS):
        print("1..0 # SKIP systemd-analyze or the host's systemd units are missing"
              " (deploy/install-deps.sh installs systemd)")
        return 0
    o = options()
    tree, bindir, etc, unitdir = expected_tree(o)
    root = tempfile.mkdtemp(prefix="vigil-install-")
    try:
        out = run(["meson", "install", "-C", BUILD, "--destdir", root, "--no-rebuild", "--quiet"])
        ok(out.returncode == 0, "meson install --destdir", out.stdout + out.stderr)
        got = set()
        for d, _, files in os.walk(root):
            got |= {os.path.join(d, f)[len(root):] for f in files}
        ok(got == tree, "the installed tree is the expected one",
           f"missing: {sorted(tree - got)}\nunexpected: {sorted(got - tree)}")

        for b in ("vigil-console", "vigil-defender", "vigilctl"):
            out = run([root + os.path.join(bindir, b), "--version"],
                      env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
            ok(out.returncode == 0 and "0." in out.stdout, f"installed {b} runs (libnng found)",
               out.stdout + out.stderr)

        units = ["vigil-console.service", "vigil-defender.service"]
        for u in units:
            keys = unit_keys(root + os.path.join(unitdir, u))
            start = keys.get("ExecStart", [""])[0].split()
            ok(start and start[0] == os.path.join(bindir, u.replace(".service", "")),
               f"{u}: ExecStart is the installed binary", start)
            ok(keys.get("Type") == ["notify"], f"{u}: Type=notify", keys.get("Type"))
            ok(keys.get("NoNewPrivileges") == ["yes"], f"{u}: NoNewPrivileges")
            ok(keys.get("ProtectSystem") == ["strict"], f"{u}: ProtectSystem=strict")
        dkeys = unit_keys(root + os.path.join(unitdir, "vigil-defender.service"))
        ok("--config" in dkeys["ExecStart"][0] and
           os.path.join(etc, "vigil/defender.conf") in dkeys["ExecStart"][0],
           "the defender reads its configuration beside the installed example", dkeys["ExecStart"])
        caps = set(dkeys.get("CapabilityBoundingSet", [""])[0].split())
        ok(caps == DEFENDER_CAPS, "the defender's capabilities are the documented ones",
           f"unit: {sorted(caps)}")
        ckeys = unit_keys(root + os.path.join(unitdir, "vigil-console.service"))
        ok(ckeys.get("CapabilityBoundingSet") == [""] and ckeys.get("User") == ["vigil"],
           "the console runs as user vigil with no capability", ckeys.get("CapabilityBoundingSet"))

        # verify --root resolves paths inside the tree: give it the host's
        # own units (targets the units name) and /bin/kill (ExecReload).
        shutil.copytree(SYSTEMD_UNITS, root + SYSTEMD_UNITS, symlinks=True, dirs_exist_ok=True)
        os.makedirs(root + "/bin", exist_ok=True)
        shutil.copy2(shutil.which("kill") or "/bin/kill", root + "/bin/kill")
        out = verify(root, units)
        ok(out.returncode == 0 and out.stdout + out.stderr == "",
           "systemd-analyze verify passes both units without a word", out.stdout + out.stderr)

        # Negative controls: the same check refuses a misspelled key and a
        # missing binary, so the pass above means something.
        src = root + os.path.join(unitdir, "vigil-defender.service")
        with open(src) as f:
            text = f.read()
        bad = root + os.path.join(unitdir, "vigil-broken-key.service")
        with open(bad, "w") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
        out = verify(root, ["vigil-broken-key.service"])
        ok("Unknown key" in out.stderr + out.stdout, "verify refuses a misspelled key",
           out.stdout + out.stderr)
        bad = root + os.path.join(unitdir, "vigil-broken-exec.service")
        with open(bad, "w") as f:
            f.write(text.replace("/vigil-defender ", "/vigil-defender-missing "))
        out = verify(root, ["vigil-broken-exec.service"])
        ok(out.returncode != 0 and "not executable" in out.stderr + out.stdout,
           "verify refuses a unit whose binary is not installed", out.stdout + out.stderr)
        for f in ("vigil-broken-key.service", "vigil-broken-exec.service"):
            os.unlink(root + os.path.join(unitdir, f))

        for u in units:
            out = run(["systemd-analyze", "security", "--offline=true", f"--root={root}", u],
                      cwd="/")
            level = None
            for line in out.stdout.splitlines():
                if "Overall exposure level" in line:
                    level = float(line.split(":")[1].split()[0])
            ok(level is not None and level <= EXPOSURE_MAX[u],
               f"{u}: exposure {level} at most {EXPOSURE_MAX[u]}", out.stdout[-2000:] + out.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
