"""Release preparation against OpenSSL: ``python -m bench.release_prepare``.

``lib.release.bundle.prepare`` encrypts the champion pair, splits each ciphertext and writes
the parts atomically (temp file, fsync, rename). Its floor is one pass of AES over the same bytes
plus the fsynced write, which ``openssl enc`` does in C. Contenders, on the same warm files (a
100 MB ``azaion.onnx``-sized file and a 40 MB ``azaion.pt``-sized one), medians of 3:

- ``openssl enc -aes-256-cbc`` of both files into a file, then ``sync`` (the baseline);
- ``prepare`` with ``aes-256-cbc`` and with ``aes-256-gcm``, each from an empty folder;
- ``prepare`` again over kept parts (a re-run: it decrypts to prove the parts still match).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from azaion_assets.lib.release.bundle import Split, prepare
from bench.timing import median_seconds

KEY = "bench-model-key-0123456789"
LIMITS = Split(3072, 0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--mb", type=int, nargs=2, default=[100, 40], help="file sizes in MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-release-", dir=args.workdir))
    try:
        sources = {}
        for name, mb in zip(("azaion.onnx", "azaion.pt"), args.mb, strict=True):
            path = work / name
            path.write_bytes(os.urandom(mb << 20))
            sources[name] = path
        total_mb = sum(args.mb)
        key_hex = hashlib.sha256(KEY.encode()).hexdigest()

        def openssl() -> None:
            for path in sources.values():
                iv = os.urandom(16).hex()
                out = work / "openssl.out"
                cmd = ["openssl", "enc", "-aes-256-cbc", "-K", key_hex, "-iv", iv]
                subprocess.run([*cmd, "-in", str(path), "-out", str(out)], check=True)
            subprocess.run(["sync"], check=True)

        def fresh(scheme: str) -> Callable[[], object]:
            def run() -> object:
                out = work / f"out-{scheme}"
                shutil.rmtree(out, ignore_errors=True)
                return prepare(sources, out, "2026-11-25", KEY, scheme, LIMITS, "models")  # type: ignore[arg-type]

            return run

        cbc_args = (sources, work / "out-kept", "2026-11-25", KEY, "aes-256-cbc", LIMITS, "models")

        def rerun() -> object:
            manifest = prepare(*cbc_args)
            assert manifest["reused"] == list(sources), "the re-run did not reuse the parts"
            return manifest

        repeat = args.repeat
        results = [("openssl enc -aes-256-cbc + sync (baseline)", median_seconds(openssl, repeat))]
        results.append(("prepare, aes-256-cbc", median_seconds(fresh("aes-256-cbc"), args.repeat)))
        results.append(("prepare, aes-256-gcm", median_seconds(fresh("aes-256-gcm"), args.repeat)))
        prepare(*cbc_args)  # the parts the re-runs find
        results.append(("prepare again, parts reused (verified)", median_seconds(rerun, repeat)))
        base = results[0][1]
        print(f"release preparation of {total_mb} MB (medians of {args.repeat})")
        print("| contender | seconds | MB/s | ratio to openssl |\n|---|---:|---:|---:|")
        for name, seconds in results:
            print(f"| {name} | {seconds:.2f} | {total_mb / seconds:.0f} | {seconds / base:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
