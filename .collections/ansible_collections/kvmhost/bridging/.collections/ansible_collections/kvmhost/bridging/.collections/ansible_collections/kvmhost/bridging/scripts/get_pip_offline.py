"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test creates its sanity virtualenvs without pip and runs a "get-pip"
script fetched from a host this network cannot reach. scripts/setup.sh copies
this file to ~/.ansible/test/cache/get_pip_<version>.py and puts a pip wheel from
PyPI beside it; ansible-test then runs this file with pip's install options
(the same command-line contract as get-pip.py), and it installs pip from that
wheel.
"""

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WHEELS = os.path.join(HERE, "kvmb-wheels")


def main():
    found = sorted(glob.glob(os.path.join(WHEELS, "pip-*.whl")))
    if not found:
        sys.exit("no pip wheel in %s; run scripts/setup.sh" % WHEELS)
    sys.path.insert(0, found[-1])
    from pip._internal.cli.main import main as pip_main

    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if "--no-setuptools" not in sys.argv[1:] and not any(a.startswith("setuptools") for a in args):
        args.append("setuptools")
    if "--no-wheel" not in sys.argv[1:] and not any(a.startswith("wheel") for a in args):
        args.append("wheel")
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall", "--find-links", WHEELS, *args]))


if __name__ == "__main__":
    main()
