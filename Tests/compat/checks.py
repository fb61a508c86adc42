"""Shared helpers of the SDK compatibility suites: one printed line per check, exit on the first failure."""
import sys

passed = 0


def check(operation, condition, detail=""):
    """Records one check of an SDK operation; prints `ok` or `FAIL` with the operation's name."""
    global passed
    if not condition:
        print(f"FAIL {operation} {detail}")
        sys.exit(1)
    passed += 1
    print(f"ok   {operation}")


def summary(name):
    print(f"{name}: {passed} passed, 0 failed")
