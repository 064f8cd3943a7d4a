#!/usr/bin/env python3
"""Rehearse the Dockerfile's runtime stage without a Docker engine.

Reads the Dockerfile (so the rehearsal cannot drift from it) and:
  1. builds the release binary with the build stage's own `swift build` command;
  2. makes a root filesystem of the runtime stage's Debian release holding only
     the packages its `apt-get install` names (mmdebstrap, minbase variant, as
     debian:*-slim is), cached as a tarball between runs on one machine;
  3. runs the stage's `useradd`, copies in what its COPY lines copy, sets its ENV;
  4. starts the ENTRYPOINT as the stage's USER (chroot --userspec, in a new PID
     and mount namespace), then checks: GET /healthz answers 200, the HEALTHCHECK
     command exits 0, the process runs as that uid, every shared library
     resolves inside the image, and SIGTERM ends it with exit status 0.

Prints what it checked. Needs root (chroot, unshare), mmdebstrap and network
access to the Debian mirror on a cache miss.
"""
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIRROR = os.environ.get("REHEARSAL_MIRROR", "http://deb.debian.org/debian")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "hailuo-hook")
SCRATCH = os.path.join(ROOT, ".build-static")


def say(text):
    print(f"rehearsal: {text}", flush=True)


def fail(text):
    print(f"rehearsal: FAILED: {text}", flush=True)
    sys.exit(1)


def stages(path):
    """The Dockerfile's instructions (continuations joined), split by FROM."""
    lines, current = [], ""
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append((current + line).strip())
        current = ""
    result = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "FROM":
            result.append({"from": rest.split()[0], "steps": []})
        elif result:
            result[-1]["steps"].append((keyword.upper(), rest.strip()))
    return result


def commands(run_line):
    """A RUN line's shell commands, split on &&."""
    return [c.strip() for c in run_line.split("&&") if c.strip()]


def runtime_plan():
    build, runtime = stages(os.path.join(ROOT, "Dockerfile"))[:2]
    image = runtime["from"]
    if not image.startswith("debian:"):
        fail(f"the runtime stage is {image}; this rehearsal makes Debian root filesystems only")
    suite = image.split(":")[1].split("-")[0]
    swift_build = next(c for kw, rest in build["steps"] if kw == "RUN" for c in commands(rest) if c.startswith("swift build"))
    packages, setup, copies, env, user, healthcheck, entrypoint = [], [], [], {}, "root", None, None
    for keyword, rest in runtime["steps"]:
        if keyword == "RUN":
            for command in commands(rest):
                words = shlex.split(command)
                if words[:2] == ["apt-get", "install"]:
                    packages += [w for w in words[2:] if not w.startswith("-")]
                elif words[0] in ("useradd", "groupadd", "mkdir", "chown", "chmod"):
                    setup.append(words)
        elif keyword == "COPY":
            words = shlex.split(rest)
            copies.append((any(w.startswith("--from=") for w in words), [w for w in words if not w.startswith("--")]))
        elif keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
        elif keyword == "USER":
            user = rest
        elif keyword == "HEALTHCHECK":
            healthcheck = json.loads(rest[rest.index("CMD") + 3:].strip())
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(rest)
    return suite, swift_build, packages, setup, copies, env, user, healthcheck, entrypoint


def root_filesystem(suite, packages):
    key = hashlib.sha256(f"{suite} {' '.join(sorted(packages))} {MIRROR}".encode()).hexdigest()[:12]
    tarball = os.path.join(CACHE, f"rootfs-{suite}-{key}.tar")
    if os.path.exists(tarball):
        say(f"root filesystem from the cache: {tarball}")
        return tarball
    os.makedirs(CACHE, exist_ok=True)
    say(f"mmdebstrap {suite} (minbase) with {', '.join(packages)} ...")
    started = time.time()
    partial = tarball[:-4] + ".partial.tar"  # mmdebstrap picks the format from the name
    subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--include=" + ",".join(packages), suite, partial, MIRROR], check=True)
    os.rename(partial, tarball)
    say(f"root filesystem made in {time.time() - started:.0f} s, cached at {tarball}")
    return tarball


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_container(rootfs, binary, env, user, healthcheck, entrypoint, extra_env, tls_ca=None):
    """Starts the image's ENTRYPOINT as a container runtime would, checks it, stops it."""
    port = free_port()
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/var/lib/hailuo-hook"}
    environment.update(env)
    environment["HAILUO_HOOK_PORT"] = str(port)  # as `docker run -e HAILUO_HOOK_PORT=...` would
    environment.update(extra_env)
    uid, _, gid = user.partition(":")
    userspec = f"{uid}:{gid or uid}"
    env_args = ["env", "-i"] + [f"{k}={v}" for k, v in environment.items()]
    # As a container runtime does: a PID and mount namespace of its own with its own /proc
    # (Swift reads the command line from /proc/self/cmdline), then the image's root and user.
    start = 'root="$0"; user="$1"; shift; mount -t proc proc "$root/proc" && exec chroot --userspec="$user" "$root" "$@"'
    server = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
                               "sh", "-c", start, rootfs, userspec] + env_args + entrypoint,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    scheme = "https" if tls_ca else "http"
    url = f"{scheme}://127.0.0.1:{port}/healthz"
    context = ssl.create_default_context(cafile=tls_ca) if tls_ca else None
    answer = None
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                answer = (response.status, response.read().decode())
                break
        except OSError:
            if server.poll() is not None:
                break
            time.sleep(0.1)
    if answer is None:
        server.kill()
        fail(f"/healthz never answered; the server said:\n{server.communicate()[0]}")
    say(f"GET {url} -> {answer[0]} {answer[1]}")
    if answer[0] != 200:
        fail("healthz did not answer 200")

    # The server process inside the namespace: the child of unshare's fork, then chroot's exec.
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    serving = None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
            if cmdline and cmdline[0].decode() == binary and os.path.realpath(os.readlink(f"/proc/{pid}/root")) == os.path.realpath(rootfs):
                serving = pid
        except OSError:
            continue
    if serving is None:
        fail("cannot find the server process")
    status = open(f"/proc/{serving}/status").read()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    say(f"the server runs as uid {uids[0]} (real, effective, saved, fs: {' '.join(uids)}), pid {serving}")
    if set(uids) != {uid}:
        fail(f"expected uid {uid}")

    # As `docker exec` runs a HEALTHCHECK: inside the server's namespaces and root, as its user.
    check = subprocess.run(["nsenter", "--target", serving, "--pid", "--mount", "--root", "--wd",
                            "--setuid", uid, "--setgid", gid or uid] + env_args + healthcheck, capture_output=True, text=True)
    say(f"HEALTHCHECK {' '.join(healthcheck)} -> exit {check.returncode} {check.stdout.strip()} {check.stderr.strip()}".rstrip())
    if check.returncode != 0:
        fail("the HEALTHCHECK command failed")

    os.kill(int(serving), signal.SIGTERM)
    try:
        output, _ = server.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        fail("SIGTERM did not stop the server within 20 s")
    say(f"SIGTERM -> exit {server.returncode}")
    last = [line for line in output.splitlines() if line.strip()][-3:]
    for line in last:
        say("  log: " + line)
    if server.returncode != 0:
        fail("the server did not exit 0 on SIGTERM")
    journal = env.get("HAILUO_HOOK_JOURNAL")
    if journal:
        path = os.path.join(rootfs, journal.lstrip("/"))
        if not os.path.exists(path):
            fail(f"no journal at {journal}")
        owner = os.stat(path).st_uid
        say(f"journal {journal} written by uid {owner}")


def main():
    if os.geteuid() != 0:
        fail("needs root (chroot and unshare)")
    suite, swift_build, packages, setup, copies, env, user, healthcheck, entrypoint = runtime_plan()
    say(f"runtime stage: debian {suite}; packages: {' '.join(packages)}; USER {user}; ENTRYPOINT {entrypoint}; HEALTHCHECK {healthcheck}")

    build = shlex.split(swift_build) + ["--scratch-path", SCRATCH]
    say("building as the Dockerfile does: " + " ".join(build))
    started = time.time()
    subprocess.run(build, cwd=ROOT, check=True)
    bin_path = subprocess.run(build[:2] + ["-c", "release", "--static-swift-stdlib", "--scratch-path", SCRATCH, "--show-bin-path"],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    say(f"built in {time.time() - started:.0f} s: {bin_path}/hailuo-hook ({os.path.getsize(bin_path + '/hailuo-hook') // (1 << 20)} MiB)")

    tarball = root_filesystem(suite, packages)
    rootfs = os.path.join(ROOT, ".build-static", "rootfs")
    if os.path.exists(rootfs):
        subprocess.run(["rm", "-rf", "--one-file-system", rootfs], check=True)
    os.makedirs(rootfs)
    subprocess.run(["tar", "-C", rootfs, "--numeric-owner", "-xf", tarball], check=True)
    for words in setup:
        subprocess.run(["chroot", rootfs] + words, check=True)
        say("ran in the image: " + " ".join(words))
    # The build stage's /out is the release folder's binary and resources.
    for from_build, words in copies:
        sources, target = words[:-1], words[-1]
        for source in sources:
            if from_build:
                local = os.path.join(bin_path, os.path.basename(source))
            else:
                local = os.path.join(ROOT, source)
            destination = os.path.join(rootfs, target.lstrip("/"))
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            if os.path.isdir(local):
                shutil.copytree(local, destination, dirs_exist_ok=True)
            else:
                shutil.copy2(local, destination)
            say(f"copied {source} -> {target}")

    versions = subprocess.run(["chroot", rootfs, "dpkg-query", "-W", "-f", "${Package} ${Version}\n"] + packages,
                              capture_output=True, text=True, check=True).stdout.split("\n")
    total = subprocess.run(["chroot", rootfs, "dpkg-query", "-W", "-f", "${Package}\n"], capture_output=True, text=True, check=True).stdout.split()
    say(f"runtime packages: {', '.join(v for v in versions if v)}; {len(total)} packages in the image in all (minbase)")

    binary = "/" + entrypoint[0].lstrip("/")
    ldd = subprocess.run(["chroot", rootfs, "ldd", binary], capture_output=True, text=True)
    missing = [line.strip() for line in ldd.stdout.splitlines() if "not found" in line]
    if ldd.returncode != 0 or missing:
        fail(f"shared libraries missing in the image: {missing or ldd.stderr}")
    say(f"every shared library of {binary} resolves in the image ({len(ldd.stdout.splitlines())} entries)")

    run_container(rootfs, binary, env, user, healthcheck, entrypoint, {})

    # Again on HTTPS: a certificate pair mounted into the image, as a user would with -v.
    certificates = os.path.join(ROOT, ".build-static", "certificates")
    subprocess.run(["sh", os.path.join(ROOT, "Tests", "tls", "make-certs.sh"), certificates], check=True)
    secrets = os.path.join(rootfs, "run", "secrets")
    os.makedirs(secrets, exist_ok=True)
    uid, _, gid = user.partition(":")
    for name in ("server.pem", "server.key"):
        shutil.copy2(os.path.join(certificates, name), os.path.join(secrets, name))
        os.chown(os.path.join(secrets, name), int(uid), int(gid or uid))
    os.chmod(os.path.join(secrets, "server.key"), 0o600)
    run_container(rootfs, binary, env, user, healthcheck, entrypoint,
                  {"HAILUO_HOOK_TLS_CERT": "/run/secrets/server.pem", "HAILUO_HOOK_TLS_KEY": "/run/secrets/server.key"},
                  tls_ca=os.path.join(certificates, "ca.pem"))
    say("passed")


if __name__ == "__main__":
    main()
